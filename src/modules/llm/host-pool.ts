// The Ollama hosts of OLLAMA_URL, probed periodically, and the routing rule: among usable hosts that
// have the model, the fewest requests in flight; on a tie, one where the model is already loaded (no
// load wait); then round-robin. An unknown model and "no host" are told apart so callers get 400 with
// the models that exist, or 503 at once.
import type { Logger } from 'pino';
import { ContractError } from '../../kernel/contract/errors.js';
import type { LlmSettings } from './contract.js';
import type { LlmMetrics } from './llm-metrics.js';
import { canonicalModel, OllamaHost } from './ollama-host.js';

/** Probes answer quickly or the host counts as down; never longer than this. */
const PROBE_TIMEOUT_MS = 2_000;
/** An unknown model triggers a fresh look at the hosts (it may just have been pulled), at most this often. */
const REFRESH_ON_MISS_MS = 2_000;

export class HostPool {
  readonly hosts: OllamaHost[];
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private lastMissRefresh = 0;
  private rotation = 0;
  private intervalMs: number;
  private stopped = false;

  constructor(
    urls: readonly string[],
    private readonly settings: () => LlmSettings,
    private readonly metrics: LlmMetrics,
    private readonly logger: Logger,
  ) {
    const s = settings();
    this.intervalMs = s.probeIntervalMs;
    this.hosts = [...new Set(urls)].map((u) => new OllamaHost(u, { resetMs: s.breakerResetMs, failures: s.breakerFailures }));
    for (const h of this.hosts) this.metrics.inFlight.labels(h.label).set(0);
  }

  /** First probe (bounded), then one every `probeIntervalMs`. */
  async start(): Promise<void> {
    this.stopped = false;
    // Settings were loaded after the pool was built: take their interval and breaker options now.
    this.intervalMs = this.settings().probeIntervalMs;
    this.reconfigure();
    await this.probeAll();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const h of this.hosts) h.close();
  }

  /** Applies changed settings: probe interval and breaker options. */
  reconfigure(): void {
    const s = this.settings();
    for (const h of this.hosts) h.reconfigure({ resetMs: s.breakerResetMs, failures: s.breakerFailures });
    if (s.probeIntervalMs !== this.intervalMs) {
      this.intervalMs = s.probeIntervalMs;
      if (this.timer) {
        clearTimeout(this.timer);
        this.schedule();
      }
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.probeAll()
        .catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'probing the ollama hosts failed'))
        .finally(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Probes every host at once; concurrent callers share one round. */
  probeAll(): Promise<void> {
    this.probing ??= (async () => {
      try {
        await Promise.all(
          this.hosts.map(async (h) => {
            const was = h.status;
            await h.probe(Math.min(PROBE_TIMEOUT_MS, this.intervalMs));
            if (was !== h.status) {
              const log = h.status === 'up' ? this.logger.info.bind(this.logger) : this.logger.warn.bind(this.logger);
              log({ host: h.label, status: h.status, error: h.lastError ?? undefined, models: h.models.size }, 'ollama host status');
            }
          }),
        );
      } finally {
        this.probing = undefined;
      }
    })();
    return this.probing;
  }

  /** Every model some up host has, sorted, as users name them. */
  knownModels(): string[] {
    const names = new Set<string>();
    for (const h of this.hosts) if (h.status === 'up') for (const m of h.models.values()) names.add(m.name);
    return [...names].sort();
  }

  /**
   * Hosts to try for `model`, best first. Throws `invalid_input` for a model no reachable host has (after
   * one fresh probe, at most every few seconds), `unavailable` when no host can be reached at all.
   */
  async route(model: string, field = 'model'): Promise<OllamaHost[]> {
    let candidates = this.candidates(model);
    if (candidates.length === 0 && Date.now() - this.lastMissRefresh > REFRESH_ON_MISS_MS) {
      this.lastMissRefresh = Date.now();
      await this.probeAll();
      candidates = this.candidates(model);
    }
    if (candidates.length > 0) return candidates;
    const reachable = this.hosts.filter((h) => h.status === 'up');
    if (reachable.length === 0) {
      this.metrics.errors.labels('none', 'no_host').inc();
      throw new ContractError('unavailable', 'no Ollama host is reachable', { hosts: this.hosts.map((h) => ({ url: h.label, error: h.lastError })) });
    }
    const elsewhere = this.hosts.some((h) => h.has(model));
    if (elsewhere || reachable.every((h) => !h.usable())) {
      // The model exists, but only on hosts that are down or refused by their breaker.
      this.metrics.errors.labels('none', 'no_host').inc();
      throw new ContractError('unavailable', `no reachable Ollama host can serve "${model}" right now`);
    }
    this.metrics.errors.labels('none', 'unknown_model').inc();
    const known = this.knownModels();
    throw new ContractError('invalid_input', `unknown model "${model}"; available: ${known.join(', ') || 'none'}`, [
      { path: field, message: `unknown model; available: ${known.join(', ') || 'none'}` },
    ]);
  }

  private candidates(model: string): OllamaHost[] {
    const m = canonicalModel(model);
    const usable = this.hosts.filter((h) => h.usable() && h.status === 'up' && h.has(m));
    const n = this.hosts.length;
    const start = this.rotation++ % n;
    const order = new Map(this.hosts.map((h, i) => [h, (i - start + n) % n]));
    return usable.sort(
      (a, b) =>
        a.inFlight - b.inFlight ||
        Number(b.isLoaded(m)) - Number(a.isLoaded(m)) ||
        order.get(a)! - order.get(b)!,
    );
  }

  get(label: string): OllamaHost | undefined {
    return this.hosts.find((h) => h.label === label);
  }
}
