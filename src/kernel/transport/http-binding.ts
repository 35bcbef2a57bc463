// The HTTP binding: a client generated from a contract. Same port type, same validation and error
// codes as the local binding; in addition it carries the request context in headers, retries only
// idempotent operations, and guards each target module with a circuit breaker.
import http from 'node:http';
import https from 'node:https';
import CircuitBreaker from 'opossum';
import type {
  AnyContract,
  Download,
  DownloadOperation,
  HealthReport,
  Operation,
  Port,
  StreamOperation,
  UnaryOperation,
  UploadBody,
  UploadOperation,
} from '../contract/define.js';
import { checkBodyType, downloadHeadSchema } from '../contract/binary.js';
import { binaryHeaders, decodeHeaderJson, encodeHeaderJson, readableOf } from './binary-wire.js';
import { ContractError, contractErrorFromBody, isContractError } from '../contract/errors.js';
import { parseInput, issuesOf } from '../contract/validation.js';
import { currentContext, effectiveDeadline } from '../context/request-context.js';
import type { Metrics } from '../metrics/metrics.js';
import { cancellable, cancelledError, linkSignal } from './cancellable-stream.js';
import { contextHeaders, HEALTH_OPERATION, RPC_PREFIX } from './wire.js';
import { keepAliveAgent, keepAliveHttpsAgent } from './keep-alive-agent.js';

export interface HttpBindingOptions {
  /** Base URL of an instance hosting the module, looked up per call (registry or configuration). */
  resolveUrl: () => string | undefined;
  internalToken: string;
  metrics?: Metrics;
  retries?: number;
  breaker?: { resetTimeoutMs?: number; volumeThreshold?: number; errorThresholdPercentage?: number };
  healthTimeoutMs?: number;
}

export interface BreakerState {
  state: 'closed' | 'open' | 'half-open';
}

const agents = {
  http: keepAliveAgent(64),
  https: keepAliveHttpsAgent(64),
};

interface Attempt {
  res: http.IncomingMessage;
}

/** Errors that say the target is not there (as opposed to an answer from it). */
function isTransportFailure(err: unknown): boolean {
  return isContractError(err) && (err.code === 'unavailable' || err.code === 'timeout') && err.details === TRANSPORT;
}
const TRANSPORT = Object.freeze({ transport: true });

function send(url: URL, body: string | UploadBody, hdrs: Record<string, string>, deadline: number, signal?: AbortSignal): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const wait = deadline - Date.now();
    if (wait <= 0) {
      reject(new ContractError('timeout', 'deadline passed before the call', TRANSPORT));
      return;
    }
    if (signal?.aborted) {
      reject(cancelledError(signal));
      return;
    }
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, {
      method: 'POST',
      agent: url.protocol === 'https:' ? agents.https : agents.http,
      headers:
        typeof body === 'string'
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...hdrs }
          : // An upload streams its body as it arrives (chunked unless its length is known).
            { 'content-type': body.contentType, ...(body.contentLength !== undefined ? { 'content-length': body.contentLength } : {}), ...hdrs },
    });
    // The signal destroys the request, and with it the connection, whenever it aborts: before the
    // answer, or while a stream is being read. The server sees the socket close and stops the handler.
    // Not through http.request's own `signal` option: that one stays armed after the answer was read and
    // its socket went back to the pool, and a late abort then destroys a finished response with an error
    // nobody listens to (an uncaught exception). Here the abort is disarmed once the exchange is over.
    if (signal) {
      // Destroyed without an error: once the answer has begun, the socket's error listener is gone and an
      // error would be uncaught; the reader sees the body end short, the caller learns why from the signal.
      const onAbort = () => {
        req.destroy();
        reject(cancelledError(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    const timer = setTimeout(() => {
      req.destroy(new ContractError('timeout', `no answer from ${url.host} within ${wait} ms`, TRANSPORT));
    }, wait);
    req.on('response', (res) => {
      clearTimeout(timer);
      // Whoever reads the body sees its errors; this keeps one that lands between reads from being uncaught.
      res.on('error', () => undefined);
      resolve({ res });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      // A cancelled call is the caller's choice, not a sign of the target's health (not a transport failure).
      if (signal?.aborted) {
        reject(cancelledError(signal));
        return;
      }
      reject(
        isContractError(err)
          ? err
          : new ContractError('unavailable', `cannot reach ${url.host}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, TRANSPORT),
      );
    });
    if (typeof body === 'string') req.end(body);
    else {
      // The server may answer (a refusal) before the whole body went out: the answer wins, a broken pipe
      // after it is no news; a source that fails before the answer fails the call.
      readableOf(body.stream).on('error', (err) => req.destroy(err)).pipe(req);
    }
  });
}

async function readJson(res: http.IncomingMessage, deadline: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    res.destroy(new Error('deadline'));
  }, Math.max(0, deadline - Date.now()));
  try {
    for await (const c of res) chunks.push(c as Buffer);
  } catch {
    throw timedOut
      ? new ContractError('timeout', 'deadline passed while reading the answer', TRANSPORT)
      : new ContractError('unavailable', 'connection lost while reading the answer', TRANSPORT);
  } finally {
    clearTimeout(timer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    throw new ContractError('internal', 'malformed answer from remote module');
  }
}

/**
 * The lines of an NDJSON answer. `idleMs` bounds each wait for the next chunk of bytes, and the clock
 * only runs while we wait for the remote producer, not while the consumer holds a line (as in the local
 * binding). Lines already received are taken synchronously (`take`), so a burst of chunks costs no
 * extra asynchronous step per line; `fill` waits for more bytes.
 */
class NdjsonLines {
  private readonly source: AsyncIterator<string>;
  private buffered = '';
  private ended = false;

  constructor(
    res: http.IncomingMessage,
    private readonly idleMs: () => number,
    private readonly what: string,
  ) {
    res.setEncoding('utf8');
    this.source = res[Symbol.asyncIterator]() as AsyncIterator<string>;
  }

  /** The next complete non-blank line received, or undefined: then `fill`. */
  take(): string | undefined {
    for (;;) {
      const nl = this.buffered.indexOf('\n');
      if (nl < 0) {
        if (!this.ended || !this.buffered.trim()) return undefined;
        // The body ended without a newline after its last line.
        const last = this.buffered;
        this.buffered = '';
        return last;
      }
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      if (line.trim()) return line;
    }
  }

  /** Waits for more of the body; false once it has ended. */
  async fill(): Promise<boolean> {
    if (this.ended) return false;
    const wait = this.idleMs();
    if (wait <= 0) throw new ContractError('timeout', `${this.what}: deadline passed`);
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      this.source.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ContractError('timeout', `${this.what}: no chunk within ${wait} ms`)), wait);
      }),
    ]).finally(() => clearTimeout(timer));
    if (next.done) this.ended = true;
    else this.buffered += next.value;
    return true;
  }
}

/** A download's body as it arrives; a connection that breaks off (or a short body) is an error, not an end. */
async function* remoteBytes(res: http.IncomingMessage, size: number | undefined, what: string): AsyncGenerator<Uint8Array> {
  let seen = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      seen += chunk.length;
      yield chunk;
    }
  } catch {
    throw new ContractError('unavailable', `download from ${what} broke off`);
  } finally {
    if (!res.complete) res.destroy();
  }
  if (!res.complete || (size !== undefined && seen !== size)) throw new ContractError('unavailable', `download from ${what} broke off`);
}

export function createHttpBinding<C extends AnyContract>(contract: C, opts: HttpBindingOptions): Port<C> & { readonly $breaker: () => BreakerState } {
  const moduleId = contract.id;
  const retries = opts.retries ?? 2;
  const healthTimeoutMs = opts.healthTimeoutMs ?? 1000;

  const target = (operation: string): URL => {
    const base = opts.resolveUrl();
    if (!base) throw new ContractError('unavailable', `module "${moduleId}" has no reachable instance`, TRANSPORT);
    return new URL(`${RPC_PREFIX}/${moduleId}/${operation}`, base.endsWith('/') ? base : `${base}/`);
  };

  // One breaker per target module: it opens on transport failures only, never on answers such as not_found.
  const breaker = new CircuitBreaker(
    async (operation: string, body: string | UploadBody, hdrs: Record<string, string>, deadline: number, signal?: AbortSignal) => {
      return send(target(operation), body, hdrs, deadline, signal);
    },
    {
      timeout: false,
      resetTimeout: opts.breaker?.resetTimeoutMs ?? 2000,
      volumeThreshold: opts.breaker?.volumeThreshold ?? 3,
      errorThresholdPercentage: opts.breaker?.errorThresholdPercentage ?? 50,
      rollingCountTimeout: 10_000,
      errorFilter: (err: unknown) => !isTransportFailure(err),
    },
  );

  /**
   * `deadline` travels to the callee as the context deadline; `answerBy` bounds the wait for the answer's
   * head and the retries. They differ for streams: the context deadline bounds the whole stream, while
   * the first chunk must come within the operation's timeout.
   */
  const fire = async (
    operation: string,
    input: unknown,
    deadline: number,
    idempotent: boolean,
    answerBy: number = deadline,
    signal: AbortSignal | undefined = currentContext()?.signal,
    upload?: UploadBody,
  ): Promise<Attempt> => {
    // An upload's input rides in a header, its body is the stream (see binary-wire.ts).
    const body = upload ?? JSON.stringify({ input });
    const hdrs = {
      authorization: `Bearer ${opts.internalToken}`,
      ...contextHeaders(currentContext(), deadline),
      ...(upload ? { [binaryHeaders.uploadInput]: encodeHeaderJson(input) } : {}),
    };
    for (let attempt = 0; ; attempt++) {
      // Checked before the breaker: a caller out of time says nothing about the target's health.
      if (answerBy <= Date.now()) throw new ContractError('timeout', `${moduleId}.${operation}: deadline passed before the call`);
      try {
        return (await breaker.fire(operation, body, hdrs, answerBy, signal)) as Attempt;
      } catch (err) {
        const ce = isContractError(err)
          ? err
          : new ContractError('unavailable', `module "${moduleId}" is unavailable (circuit open)`);
        const backoff = 25 * 3 ** attempt;
        const again =
          !signal?.aborted &&
          idempotent &&
          attempt < retries && ce.retryable && !breaker.opened && Date.now() + backoff < answerBy && isTransportFailure(ce);
        if (!again) throw ce.details === TRANSPORT ? new ContractError(ce.code, ce.message) : ce;
        await new Promise((r) => setTimeout(r, backoff));
      }
    }
  };

  const unary = (name: string, op: UnaryOperation) => async (rawInput: unknown) => {
    const done = opts.metrics?.timeOperation(moduleId, name, 'remote');
    try {
      const input = parseInput(op.input, rawInput);
      const deadline = effectiveDeadline(op.timeoutMs);
      const { res } = await fire(name, input, deadline, op.idempotent);
      const body = (await readJson(res, deadline)) as { result?: unknown; error?: unknown } | undefined;
      if (res.statusCode !== 200) throw contractErrorFromBody(body?.error);
      const out = op.output.safeParse(body?.result);
      if (!out.success) throw new ContractError('internal', `remote ${moduleId}.${name} answered outside its contract`, issuesOf(out.error));
      done?.('ok');
      return out.data;
    } catch (err) {
      const signal = currentContext()?.signal;
      const ce = signal?.aborted
        ? cancelledError(signal)
        : isContractError(err)
          ? err.details === TRANSPORT
            ? new ContractError(err.code, err.message)
            : err
          : new ContractError('internal', 'Internal error');
      done?.(ce.code);
      throw ce;
    }
  };

  const stream = (name: string, op: StreamOperation) => (rawInput: unknown): AsyncIterable<unknown> => ({
    [Symbol.asyncIterator]() {
      // Stopping is immediate: return() or the caller's signal aborts `ac`, which destroys the request
      // (and its connection) at once, even while we wait for the next line; the server notices the
      // closed connection and aborts its handler's signal.
      const ac = new AbortController();
      const unlink = linkSignal(currentContext()?.signal, ac);
      // A stream stopped before it ever ran never reaches its `finally`: unlink on the stop as well.
      ac.signal.addEventListener('abort', unlink, { once: true });
      const produce = async function* () {
        const done = opts.metrics?.timeOperation(moduleId, name, 'remote');
        let outcome = 'ok';
        let res: http.IncomingMessage | undefined;
        try {
          const input = parseInput(op.input, rawInput);
          // As in the local binding: the context deadline bounds the whole stream (and is what the callee
          // gets), timeoutMs bounds each wait for a chunk. Sending now + timeoutMs as the deadline would
          // make the callee cut a healthy stream that merely lasts longer than one chunk's timeout.
          const deadline = effectiveDeadline(24 * 3600_000);
          const idleMs = () => Math.min(op.timeoutMs, deadline - Date.now());
          res = (await fire(name, input, deadline, op.idempotent, Math.min(deadline, Date.now() + op.timeoutMs), ac.signal)).res;
          if (res.statusCode !== 200) {
            const body = (await readJson(res, Date.now() + idleMs())) as { error?: unknown } | undefined;
            throw contractErrorFromBody(body?.error);
          }
          let ended = false;
          const lines = new NdjsonLines(res, idleMs, `${moduleId}.${name}`);
          for (;;) {
            const line = lines.take();
            if (line === undefined) {
              if (await lines.fill()) continue;
              break;
            }
            let msg: { chunk?: unknown; end?: boolean; error?: unknown };
            try {
              msg = JSON.parse(line) as typeof msg;
            } catch {
              throw new ContractError('internal', `remote ${moduleId}.${name} sent a malformed stream line`);
            }
            if (msg.error !== undefined) throw contractErrorFromBody(msg.error);
            if (msg.end) {
              ended = true;
              break;
            }
            const chunk = op.chunk.safeParse(msg.chunk);
            if (!chunk.success) throw new ContractError('internal', `remote ${moduleId}.${name} streamed outside its contract`);
            yield chunk.data;
          }
          if (!ended) throw new ContractError('unavailable', `stream from ${moduleId}.${name} broke off`);
        } catch (err) {
          const ce = ac.signal.aborted
            ? cancelledError(ac.signal)
            : isContractError(err)
              ? err.details === TRANSPORT
                ? new ContractError(err.code, err.message)
                : err
              : new ContractError('unavailable', `stream from ${moduleId}.${name} failed`);
          outcome = ce.code;
          throw ce;
        } finally {
          unlink();
          // Closing the response tells the server to stop producing.
          if (res && !res.complete) res.destroy();
          done?.(outcome);
        }
      };
      return cancellable(produce(), ac);
    },
  });

  const asContractError = (err: unknown): ContractError =>
    isContractError(err) ? (err.details === TRANSPORT ? new ContractError(err.code, err.message) : err) : new ContractError('internal', 'Internal error');

  // The body streams to the callee as it arrives; never retried (a stream cannot be replayed).
  const upload = (name: string, op: UploadOperation) => async (rawInput: unknown, uploadBody: UploadBody) => {
    const done = opts.metrics?.timeOperation(moduleId, name, 'remote');
    try {
      const input = parseInput(op.input, rawInput);
      checkBodyType(op, uploadBody?.contentType);
      const deadline = effectiveDeadline(op.timeoutMs);
      const { res } = await fire(name, input, deadline, false, deadline, currentContext()?.signal, uploadBody);
      const body = (await readJson(res, deadline)) as { result?: unknown; error?: unknown } | undefined;
      if (res.statusCode !== 200) throw contractErrorFromBody(body?.error);
      const out = op.output.safeParse(body?.result);
      if (!out.success) throw new ContractError('internal', `remote ${moduleId}.${name} answered outside its contract`, issuesOf(out.error));
      done?.('ok');
      return out.data;
    } catch (err) {
      const ce = asContractError(err);
      done?.(ce.code);
      throw ce;
    }
  };

  // The deadline bounds the head; the body is the response itself, read at the consumer's pace.
  const download = (name: string, op: DownloadOperation) => async (rawInput: unknown): Promise<Download> => {
    const done = opts.metrics?.timeOperation(moduleId, name, 'remote');
    try {
      const input = parseInput(op.input, rawInput);
      const deadline = effectiveDeadline(op.timeoutMs);
      const { res } = await fire(name, input, deadline, op.idempotent);
      if (res.statusCode !== 200) {
        const body = (await readJson(res, deadline)) as { error?: unknown } | undefined;
        throw contractErrorFromBody(body?.error);
      }
      const head = downloadHeadSchema.safeParse(decodeHeaderJson(res.headers[binaryHeaders.downloadHead]));
      if (!head.success) {
        res.destroy();
        throw new ContractError('internal', `remote ${moduleId}.${name} answered a download without its head`);
      }
      done?.('ok');
      return { ...head.data, body: remoteBytes(res, head.data.size, `${moduleId}.${name}`) };
    } catch (err) {
      const ce = asContractError(err);
      done?.(ce.code);
      throw ce;
    }
  };

  const port: Record<string, unknown> = {};
  for (const [name, op] of Object.entries(contract.operations) as [string, Operation][]) {
    port[name] =
      op.kind === 'unary' ? unary(name, op) : op.kind === 'stream' ? stream(name, op) : op.kind === 'upload' ? upload(name, op) : download(name, op);
  }
  port.$health = async (): Promise<HealthReport> => {
    try {
      const deadline = Date.now() + healthTimeoutMs;
      const { res } = await fire(HEALTH_OPERATION, null, deadline, false);
      const body = (await readJson(res, deadline)) as { result?: HealthReport; error?: unknown } | undefined;
      if (res.statusCode !== 200 || !body?.result) throw contractErrorFromBody(body?.error, 'unavailable');
      return body.result;
    } catch (err) {
      return { status: 'down', detail: err instanceof Error ? err.message : String(err) };
    }
  };
  port.$breaker = (): BreakerState => ({ state: breaker.opened ? 'open' : breaker.halfOpen ? 'half-open' : 'closed' });
  return Object.freeze(port) as Port<C> & { readonly $breaker: () => BreakerState };
}
