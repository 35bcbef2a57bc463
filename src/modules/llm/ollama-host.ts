// One Ollama host: its `ollama` client, what the last probe saw (up or down, models installed and
// loaded), requests in flight, and a circuit breaker that stops sending it work after failures.
//
// Abort: ollama 0.6.4 only gives streamed requests an AbortController (`abort()` on the iterator);
// `show`, `embed`, `list` take no signal. So every client here gets a fetch that also obeys a per-call
// signal: aborting it aborts undici's request, which destroys the socket to Ollama at once (a connection
// in the middle of a response cannot be reused), and Ollama stops generating when its client goes away.
import CircuitBreaker from 'opossum';
import { Ollama } from 'ollama';

/** The signal of the request being started (set only while `withOllamaSignal` runs its callback). */
let starting: AbortSignal | undefined;

/**
 * Runs `fn`, a call of the client, so that the requests it starts are aborted when `signal` aborts.
 * The client calls fetch synchronously from its methods (no await before it), so the signal is handed
 * over in a variable for the length of the call, not through AsyncLocalStorage: that one costs every
 * promise created anywhere in the process a propagation step. Should a later client defer its fetch,
 * the fetch below refuses to run without a signal, and the cancellation tests fail loudly.
 */
export function withOllamaSignal<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const outer = starting;
  starting = signal;
  try {
    return fn();
  } finally {
    starting = outer;
  }
}

const signalledFetch: typeof fetch = (input, init) => {
  const own = starting;
  if (!own) return Promise.reject(new Error('ollama client fetched outside withOllamaSignal: its requests could not be cancelled'));
  const given = init?.signal ?? undefined;
  return fetch(input, { ...init, signal: given ? AbortSignal.any([own, given]) : own });
};

/**
 * The client keeps every streamed request in a list until its final `done` line, and never drops one
 * that was aborted or failed: in a long-running server that list would only grow. `forget` drops it.
 */
export class HostClient extends Ollama {
  forget(stream: object): void {
    const i = this.ongoingStreamedRequests.indexOf(stream as (typeof this.ongoingStreamedRequests)[number]);
    if (i >= 0) this.ongoingStreamedRequests.splice(i, 1);
  }

  streamsHeld(): number {
    return this.ongoingStreamedRequests.length;
  }
}

/** Ollama accepts a name without a tag as `:latest`; so do we, when matching. */
export function canonicalModel(name: string): string {
  const last = name.slice(name.lastIndexOf('/') + 1);
  return last.includes(':') ? name : `${name}:latest`;
}

/** The URL shown to admins and in metrics: without credentials. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

export interface InstalledModel {
  name: string;
  size?: number;
  family?: string;
  parameterSize?: string;
  quantization?: string;
  modifiedAt?: string;
}

export type HostStatus = 'up' | 'down' | 'unknown';

export interface BreakerOptions {
  resetMs: number;
  failures: number;
}

/** Thrown by an attempt's action when the failure is not the host's fault (caller abort, 4xx). */
export class NotHostFault extends Error {
  constructor(override readonly cause: unknown) {
    super('not a host fault');
  }
}

export class OllamaHost {
  readonly url: string;
  readonly label: string;
  readonly client: HostClient;
  status: HostStatus = 'unknown';
  version: string | null = null;
  models = new Map<string, InstalledModel>();
  loaded = new Set<string>();
  lastProbeAt: string | null = null;
  lastError: string | null = null;
  inFlight = 0;
  private breaker: CircuitBreaker<[() => Promise<unknown>], unknown>;
  private breakerOptions: BreakerOptions;

  constructor(url: string, breaker: BreakerOptions) {
    this.url = url.replace(/\/$/, '');
    this.label = displayUrl(this.url);
    this.client = new HostClient({ host: this.url, fetch: signalledFetch });
    this.breakerOptions = breaker;
    this.breaker = this.makeBreaker(breaker);
  }

  private makeBreaker(opts: BreakerOptions): CircuitBreaker<[() => Promise<unknown>], unknown> {
    return new CircuitBreaker(async (action: () => Promise<unknown>) => action(), {
      timeout: false,
      resetTimeout: opts.resetMs,
      volumeThreshold: opts.failures,
      errorThresholdPercentage: 50,
      rollingCountTimeout: 30_000,
      // Not the host's fault: does not count against it.
      errorFilter: (err: unknown) => err instanceof NotHostFault,
    });
  }

  /** New breaker settings take effect for later requests; the current state is kept unless changed. */
  reconfigure(opts: BreakerOptions): void {
    if (this.breakerOptions.resetMs === opts.resetMs && this.breakerOptions.failures === opts.failures) return;
    this.breakerOptions = opts;
    this.breaker.shutdown();
    this.breaker = this.makeBreaker(opts);
  }

  breakerState(): 'closed' | 'open' | 'halfOpen' {
    return this.breaker.opened ? 'open' : this.breaker.halfOpen ? 'halfOpen' : 'closed';
  }

  /** Up (or not probed yet) and its breaker lets requests through. */
  usable(): boolean {
    return this.status !== 'down' && !this.breaker.opened;
  }

  has(model: string): boolean {
    return this.models.has(canonicalModel(model));
  }

  isLoaded(model: string): boolean {
    return this.loaded.has(canonicalModel(model));
  }

  /** Runs the part of a request that says whether the host works (up to the first token) through its breaker. */
  async attempt<T>(action: () => Promise<T>): Promise<T> {
    return (await this.breaker.fire(action)) as T;
  }

  /** Asks /api/version, /api/tags and /api/ps; any failure marks the host down. */
  async probe(timeoutMs: number): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const [version, tags, ps] = await withOllamaSignal(signal, () =>
        Promise.all([this.client.version(), this.client.list(), this.client.ps()]),
      );
      this.version = version.version;
      this.models = new Map(
        tags.models.map((m) => [
          canonicalModel(m.name),
          {
            name: m.name,
            size: m.size,
            family: m.details?.family,
            parameterSize: m.details?.parameter_size,
            quantization: m.details?.quantization_level,
            modifiedAt: m.modified_at === undefined ? undefined : String(m.modified_at),
          },
        ]),
      );
      this.loaded = new Set(ps.models.map((m) => canonicalModel(m.name)));
      this.status = 'up';
      this.lastError = null;
    } catch (err) {
      this.status = 'down';
      this.lastError = describeFailure(err, signal);
    } finally {
      this.lastProbeAt = new Date().toISOString();
    }
  }

  close(): void {
    this.breaker.shutdown();
  }
}

/** A short, log-safe reason for a failed request to Ollama. */
export function describeFailure(err: unknown, signal?: AbortSignal): string {
  if (signal?.aborted) return 'no answer in time';
  const e = err as { status_code?: number; error?: string; cause?: { code?: string; message?: string }; message?: string };
  if (typeof e?.status_code === 'number') return `HTTP ${e.status_code}: ${e.error ?? e.message ?? ''}`.trim();
  if (e?.cause?.code) return e.cause.code;
  return e?.message ?? String(err);
}
