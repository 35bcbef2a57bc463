// What an operator watches for the LLM: time to first token, tokens per second, duration, errors by
// reason, requests in flight per host. Registered in the kernel's registry, served at /metrics.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Metrics } from '../../kernel/metrics/metrics.js';

export type ErrorReason =
  | 'connection'
  | 'http_5xx'
  | 'model_missing'
  | 'breaker_open'
  | 'first_token_timeout'
  | 'request_timeout'
  | 'after_first_token'
  | 'unknown_model'
  | 'no_host'
  | 'bad_request'
  | 'cancelled';

export class LlmMetrics {
  readonly timeToFirstToken: Histogram<'host' | 'model'>;
  readonly tokensPerSecond: Histogram<'host' | 'model'>;
  readonly duration: Histogram<'host' | 'model' | 'outcome'>;
  readonly errors: Counter<'host' | 'reason'>;
  readonly failovers: Counter<'host'>;
  readonly inFlight: Gauge<'host'>;

  constructor(metrics: Metrics) {
    const registers = [metrics.registry];
    this.timeToFirstToken = new Histogram({
      name: 'autobot_llm_time_to_first_token_seconds',
      help: 'From the call to the first token, failovers included',
      labelNames: ['host', 'model'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    });
    this.tokensPerSecond = new Histogram({
      name: 'autobot_llm_tokens_per_second',
      help: 'Generation speed of completed replies (eval_count / eval_duration as Ollama reports them)',
      labelNames: ['host', 'model'],
      buckets: [1, 5, 10, 20, 30, 50, 75, 100, 150, 250, 500],
      registers,
    });
    this.duration = new Histogram({
      name: 'autobot_llm_generation_duration_seconds',
      help: 'Whole generations, by outcome (ok, stopped, failed)',
      labelNames: ['host', 'model', 'outcome'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    this.errors = new Counter({
      name: 'autobot_llm_errors_total',
      help: 'Failed LLM requests and attempts, by host and reason',
      labelNames: ['host', 'reason'],
      registers,
    });
    this.failovers = new Counter({
      name: 'autobot_llm_failovers_total',
      help: 'Requests moved away from a host before their first token',
      labelNames: ['host'],
      registers,
    });
    this.inFlight = new Gauge({
      name: 'autobot_llm_in_flight',
      help: 'Requests in flight per Ollama host',
      labelNames: ['host'],
      registers,
    });
  }
}
