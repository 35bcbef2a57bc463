// The llm module's operations over the host pool: chat generation (streamed, whole, or as the REST
// NDJSON), model description, embeddings, and what the probes know about models and hosts.
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { CallInfo, Handlers, Port } from '../../kernel/contract/define.js';
import { ContractError, isContractError } from '../../kernel/contract/errors.js';
import { currentContext } from '../../kernel/context/request-context.js';
import { MetricsToken, ModuleLogger, ProcessConfigToken } from '../../kernel/module/tokens.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import type { Metrics } from '../../kernel/metrics/metrics.js';
import type { AppConfig } from '../../kernel/config/app-config.js';
import { configContract } from '../config/contract.js';
import { completeInput, embedInput, llmContract, llmSettings, type completionRequest } from './contract.js';
import { generate, type GenerateChunk, type GenerateInput } from './generation.js';
import { HostPool } from './host-pool.js';
import { LlmMetrics } from './llm-metrics.js';
import { canonicalModel, describeFailure, NotHostFault, type OllamaHost, withOllamaSignal } from './ollama-host.js';
import type { z } from 'zod';

type CompleteInput = z.output<typeof completeInput>;
type EmbedInput = z.output<typeof embedInput>;

/** How long a model's description (from /api/show) is reused. */
const DESCRIBE_TTL_MS = 60_000;
const SHOW_TIMEOUT_MS = 10_000;

function messagesOf(input: { messages?: GenerateInput['messages'] | undefined; prompt?: string | undefined }): GenerateInput['messages'] {
  return input.messages ?? [{ role: 'user', content: input.prompt ?? '' }];
}

/** Pulls the context length out of /api/show's model_info (`<architecture>.context_length`). */
export function contextLengthOf(modelInfo: unknown): number | undefined {
  if (typeof modelInfo !== 'object' || modelInfo === null) return undefined;
  const info = modelInfo as Record<string, unknown>;
  const arch = info['general.architecture'];
  const direct = typeof arch === 'string' ? info[`${arch}.context_length`] : undefined;
  if (typeof direct === 'number' && direct > 0) return direct;
  for (const [k, v] of Object.entries(info)) if (k.endsWith('.context_length') && typeof v === 'number' && v > 0) return v;
  return undefined;
}

@injectable()
export class LlmService implements Handlers<typeof llmContract> {
  readonly settings: SettingsHolder<typeof llmSettings>;
  readonly pool: HostPool;
  readonly metrics: LlmMetrics;
  private readonly described = new Map<string, { at: number; value: { model: string; contextLength: number; capabilities: string[] } }>();

  constructor(
    @inject(ModuleLogger) logger: Logger,
    @inject(MetricsToken) metrics: Metrics,
    @inject(ProcessConfigToken) config: AppConfig,
    @inject(configContract.token) configPort: Port<typeof configContract>,
  ) {
    this.settings = new SettingsHolder(llmSettings, async () => (await configPort.getModuleSettings({ module: llmContract.id })).settings, logger);
    this.metrics = new LlmMetrics(metrics);
    this.pool = new HostPool(config.OLLAMA_URL, () => this.settings.current(), this.metrics, logger);
  }

  private deps() {
    return { pool: this.pool, metrics: this.metrics, settings: () => this.settings.current() };
  }

  generate(input: GenerateInput, call: CallInfo): AsyncIterable<GenerateChunk> {
    return generate(this.deps(), input, call.signal);
  }

  async complete(input: CompleteInput, call: CallInfo) {
    let content = '';
    const toolCalls: { name: string; arguments: Record<string, unknown> }[] = [];
    for await (const chunk of generate(this.deps(), { messages: messagesOf(input), model: input.model, options: input.options }, call.signal)) {
      if (chunk.type === 'delta') content += chunk.delta;
      else if (chunk.type === 'toolCalls') toolCalls.push(...chunk.toolCalls);
      else return { content, model: chunk.model, host: chunk.host, ...(toolCalls.length ? { toolCalls } : {}), ...(chunk.doneReason ? { doneReason: chunk.doneReason } : {}), usage: chunk.usage };
    }
    throw new ContractError('unavailable', 'the generation ended without its final answer');
  }

  async *completeStream(input: z.output<typeof completionRequest>, call: CallInfo) {
    for await (const chunk of generate(this.deps(), { messages: messagesOf(input), model: input.model, options: input.options }, call.signal)) {
      if (chunk.type === 'delta') yield { delta: chunk.delta };
      else if (chunk.type === 'toolCalls') yield { toolCalls: chunk.toolCalls };
      else yield { done: true as const, model: chunk.model, host: chunk.host, ...(chunk.doneReason ? { doneReason: chunk.doneReason } : {}), usage: chunk.usage };
    }
  }

  async describeModel(input: { model?: string | undefined }, call: CallInfo) {
    const s = this.settings.current();
    const model = input.model ?? s.defaultModel;
    const key = canonicalModel(model);
    const hit = this.described.get(key);
    if (hit && Date.now() - hit.at < DESCRIBE_TTL_MS) return { ...hit.value, model };
    const show = await this.onHosts(model, call.signal, SHOW_TIMEOUT_MS, (host) => host.client.show({ model }));
    const max = contextLengthOf(show.model_info) ?? s.contextLengthFallback;
    // Ollama uses num_ctx, not the model's maximum, when the options set it: that is the real window.
    const numCtx = s.defaultOptions.num_ctx;
    const contextLength = typeof numCtx === 'number' && numCtx > 0 ? Math.min(numCtx, max) : max;
    const value = { model, contextLength, capabilities: Array.isArray(show.capabilities) ? show.capabilities.filter((c) => typeof c === 'string') : [] };
    this.described.set(key, { at: Date.now(), value });
    return value;
  }

  async embed(input: EmbedInput, call: CallInfo) {
    const s = this.settings.current();
    const model = input.model ?? s.defaultEmbeddingModel;
    const res = await this.onHosts(model, call.signal, s.requestTimeoutMs, (host) =>
      host.client.embed({ model, input: input.input, ...(s.keepAlive ? { keep_alive: s.keepAlive } : {}) }),
    );
    const embeddings = res.embeddings;
    return { model, dimensions: embeddings[0]?.length ?? 0, embeddings };
  }

  listModels() {
    const items = this.pool.hosts.flatMap((h) =>
      h.status !== 'up'
        ? []
        : [...h.models.values()].map((m) => ({
            id: m.name,
            provider: 'ollama' as const,
            host: h.label,
            ...(m.size !== undefined ? { size: m.size } : {}),
            loaded: h.isLoaded(m.name),
            ...(m.family ? { family: m.family } : {}),
            ...(m.parameterSize ? { parameterSize: m.parameterSize } : {}),
            ...(m.quantization ? { quantization: m.quantization } : {}),
            ...(m.modifiedAt ? { modifiedAt: m.modifiedAt } : {}),
          })),
    );
    return { items, nextCursor: null };
  }

  listProviders() {
    const actor = currentContext()?.actor;
    // Reached without the gateway (another module, a remote caller), the operation checks the role itself.
    if (actor?.type === 'user' && !actor.roles.includes('admin')) throw new ContractError('forbidden', 'this needs the admin role');
    const hosts = this.pool.hosts.map((h) => ({
      url: h.label,
      status: h.status,
      breaker: h.breakerState(),
      inFlight: h.inFlight,
      version: h.version,
      models: [...h.models.values()].map((m) => m.name),
      loaded: [...h.loaded],
      lastProbeAt: h.lastProbeAt,
      lastError: h.lastError,
    }));
    const up = hosts.filter((h) => h.status === 'up').length;
    const status = up === hosts.length ? ('up' as const) : up === 0 ? ('down' as const) : ('degraded' as const);
    return { items: [{ id: 'ollama' as const, status, hosts }] };
  }

  /**
   * A unary request routed like chat: the best host first, the next one after a connection error, a
   * 5xx or a timeout; 4xx answers are the caller's (400 invalid_input).
   */
  private async onHosts<T>(model: string, signal: AbortSignal, timeoutMs: number, fn: (host: OllamaHost) => Promise<T>): Promise<T> {
    const hosts = await this.pool.route(model);
    let last = 'none usable';
    for (const host of hosts) {
      if (!host.usable()) continue;
      const timeout = AbortSignal.timeout(timeoutMs);
      const both = AbortSignal.any([signal, timeout]);
      host.inFlight++;
      this.metrics.inFlight.labels(host.label).inc();
      try {
        return await host.attempt(async () => {
          try {
            return await withOllamaSignal(both, () => fn(host));
          } catch (err) {
            // The caller's abort and the caller's mistakes say nothing about the host's health.
            if (signal.aborted || isClientError(err)) throw new NotHostFault(err);
            throw err;
          }
        });
      } catch (caught) {
        const err = caught instanceof NotHostFault ? caught.cause : caught;
        if (signal.aborted) throw new ContractError('unavailable', 'cancelled by the caller', { cancelled: true });
        const status = (err as { status_code?: unknown }).status_code;
        if (isClientError(err)) {
          const message = (err as { error?: string }).error ?? `HTTP ${status}`;
          throw new ContractError('invalid_input', `Ollama refused the request: ${message}`, [{ path: 'model', message }]);
        }
        if (isContractError(err)) throw err;
        last = describeFailure(err, timeout);
        const reason = timeout.aborted ? 'request_timeout' : typeof status === 'number' ? (status === 404 ? 'model_missing' : 'http_5xx') : 'connection';
        this.metrics.errors.labels(host.label, reason).inc();
        host.lastError = last;
      } finally {
        host.inFlight--;
        this.metrics.inFlight.labels(host.label).dec();
      }
    }
    throw new ContractError('unavailable', `no Ollama host could answer: ${last}`);
  }

  close(): void {
    this.pool.stop();
  }
}

/** A 4xx from Ollama other than 404 (a host without the model, which another host may have). */
function isClientError(err: unknown): boolean {
  const status = (err as { status_code?: unknown } | null)?.status_code;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 404;
}
