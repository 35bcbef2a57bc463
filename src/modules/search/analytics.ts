// Search analytics: every query counted (by mode, with or without results, degraded or not) and timed,
// in the kernel's /metrics registry for dashboards, and in Redis for the admin summary across every
// instance (counters, the latest latencies, the most frequent queries and zero-result queries).
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { Counter, Histogram } from 'prom-client';
import type { Metrics } from '../../kernel/metrics/metrics.js';
import { MetricsToken, ModuleRedis } from '../../kernel/module/tokens.js';

const TOP_KEPT = 10_000;
const QUERY_CHARS = 200;

export interface QueryRecord {
  operation: 'documents' | 'semantic' | 'retrieve';
  mode: string;
  query: string;
  results: number;
  degraded: boolean;
  ms: number;
}

function percentile(sorted: number[], p: number): number | null {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

@injectable()
export class SearchAnalytics {
  private readonly queries: Counter<'operation' | 'mode' | 'outcome'>;
  private readonly latency: Histogram<'mode'>;
  samples = 2000;

  constructor(
    @inject(ModuleRedis) private readonly redis: Redis,
    @inject(MetricsToken) metrics: Metrics,
  ) {
    const registers = [metrics.registry];
    // Two app instances in one test process share no registry; one process registers once.
    this.queries =
      (metrics.registry.getSingleMetric('autobot_search_queries_total') as Counter<'operation' | 'mode' | 'outcome'> | undefined) ??
      new Counter({
        name: 'autobot_search_queries_total',
        help: 'Search queries by operation, mode and outcome (results, zero_results, degraded)',
        labelNames: ['operation', 'mode', 'outcome'],
        registers,
      });
    this.latency =
      (metrics.registry.getSingleMetric('autobot_search_latency_seconds') as Histogram<'mode'> | undefined) ??
      new Histogram({
        name: 'autobot_search_latency_seconds',
        help: 'Time to answer a search query, by mode',
        labelNames: ['mode'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers,
      });
  }

  /** Never slows or fails the query it describes. */
  record(r: QueryRecord): void {
    const outcome = r.degraded ? 'degraded' : r.results ? 'results' : 'zero_results';
    this.queries.labels(r.operation, r.mode, outcome).inc();
    this.latency.labels(r.mode).observe(r.ms / 1000);
    const q = r.query.trim().toLowerCase().replace(/\s+/g, ' ').slice(0, QUERY_CHARS);
    const m = this.redis
      .multi()
      .hincrby('analytics:counts', 'queries', 1)
      .hincrby('analytics:counts', `mode:${r.mode}`, 1)
      .lpush('analytics:latency', r.ms.toFixed(3))
      .ltrim('analytics:latency', 0, this.samples - 1)
      .zincrby('analytics:queries', 1, q)
      .zremrangebyrank('analytics:queries', 0, -TOP_KEPT - 1);
    if (r.degraded) m.hincrby('analytics:counts', 'degraded', 1);
    if (!r.results) m.hincrby('analytics:counts', 'zero', 1).zincrby('analytics:zero', 1, q).zremrangebyrank('analytics:zero', 0, -TOP_KEPT - 1);
    void m.exec().catch(() => undefined);
  }

  async summary() {
    const [counts, lat, top, zero] = await Promise.all([
      this.redis.hgetall('analytics:counts'),
      this.redis.lrange('analytics:latency', 0, -1),
      this.redis.zrevrange('analytics:queries', 0, 19, 'WITHSCORES'),
      this.redis.zrevrange('analytics:zero', 0, 19, 'WITHSCORES'),
    ]);
    const ms = lat.map(Number).sort((a, b) => a - b);
    const rows = (flat: string[]) => {
      const out: { query: string; count: number }[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) out.push({ query: flat[i]!, count: Number(flat[i + 1]) });
      return out;
    };
    const byMode: Record<string, number> = {};
    for (const [k, v] of Object.entries(counts)) if (k.startsWith('mode:')) byMode[k.slice(5)] = Number(v);
    const round = (n: number | null) => (n === null ? null : Math.round(n * 100) / 100);
    return {
      queries: Number(counts.queries ?? 0),
      zeroResultQueries: Number(counts.zero ?? 0),
      degradedQueries: Number(counts.degraded ?? 0),
      byMode,
      latencyMs: {
        samples: ms.length,
        average: ms.length ? round(ms.reduce((a, b) => a + b, 0) / ms.length) : null,
        p50: round(percentile(ms, 50)),
        p95: round(percentile(ms, 95)),
        p99: round(percentile(ms, 99)),
      },
      topQueries: rows(top),
      topZeroResultQueries: rows(zero),
    };
  }
}
