// The local binding: an in-process call that still behaves like a remote one. Input and output are
// validated against the contract, the deadline applies, and whatever the handler throws comes out as
// a contract error, so callers cannot tell (or come to depend on) which side of a wire a module is on.
import type { Logger } from 'pino';
import type {
  AnyContract,
  CallInfo,
  Handlers,
  HealthReport,
  Operations,
  Port,
  StreamOperation,
  UnaryOperation,
  UploadBody,
  UploadOperation,
} from '../contract/define.js';
import { checkBodyType, downloadSchema } from '../contract/binary.js';
import { ContractError, toContractError } from '../contract/errors.js';
import { parseInput, issuesOf } from '../contract/validation.js';
import { currentContext, effectiveDeadline, newRequestId, runWithContext } from '../context/request-context.js';
import type { Metrics } from '../metrics/metrics.js';
import { cancellable, cancelledError, linkSignal } from './cancellable-stream.js';

export interface LocalBindingOptions {
  metrics?: Metrics;
  logger?: Logger;
  /** Recognises failures of shared dependencies (Redis down → `unavailable`) before they become `internal`. */
  classify?: (err: unknown) => ContractError | undefined;
  health?: () => Promise<HealthReport> | HealthReport;
}

type AnyFn = (...args: unknown[]) => unknown;

export function createLocalBinding<C extends AnyContract>(
  contract: C,
  handlers: Handlers<C>,
  opts: LocalBindingOptions = {},
): Port<C> {
  const port: Record<string, unknown> = {};
  for (const [name, op] of Object.entries(contract.operations as Operations)) {
    const handler = (handlers as Record<string, AnyFn | undefined>)[name];
    if (typeof handler !== 'function') throw new Error(`${contract.id}: no handler for operation "${name}"`);
    const bound = handler.bind(handlers);
    port[name] =
      op.kind === 'stream'
        ? streamCall(contract.id, name, op, bound, opts)
        : op.kind === 'download'
          ? // A download is a unary call answering a head and a body: the deadline bounds the head.
            unaryCall(contract.id, name, { ...op, kind: 'unary', output: downloadSchema }, bound, opts)
          : unaryCall(contract.id, name, op, bound, opts);
  }
  port.$health = async (): Promise<HealthReport> => {
    if (!opts.health) return { status: 'ok' };
    try {
      return await opts.health();
    } catch (err) {
      return { status: 'down', detail: err instanceof Error ? err.message : String(err) };
    }
  };
  return Object.freeze(port) as Port<C>;
}

function callContext(deadline: number) {
  const ctx = currentContext();
  return ctx ? { ...ctx, deadline } : { requestId: newRequestId(), deadline };
}

/** Runs `fn` in a context carrying `deadline`; when the caller's context already does, it is reused as is. */
function inDeadline<T>(deadline: number, fn: () => T): T {
  return currentContext()?.deadline === deadline ? fn() : runWithContext(callContext(deadline), fn);
}

function failure(moduleId: string, name: string, err: unknown, logger?: Logger, classify?: LocalBindingOptions['classify']): ContractError {
  const ce = classify?.(err) ?? toContractError(err);
  if (ce.code === 'internal' && ce !== err) logger?.error({ err, module: moduleId, operation: name }, 'operation failed');
  return ce;
}

function unaryCall(moduleId: string, name: string, op: UnaryOperation | UploadOperation, handler: AnyFn, opts: LocalBindingOptions) {
  const { metrics, logger } = opts;
  // An upload's extra argument is its streamed body (UploadBody); the handler gets it before CallInfo.
  return async (rawInput: unknown, ...extra: unknown[]): Promise<unknown> => {
    const done = metrics?.timeOperation(moduleId, name, 'local');
    let timer: NodeJS.Timeout | undefined;
    let unlink: (() => void) | undefined;
    try {
      const input = parseInput(op.input, rawInput);
      if (op.kind === 'upload') checkBodyType(op, (extra[0] as UploadBody | undefined)?.contentType);
      const deadline = effectiveDeadline(op.timeoutMs);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new ContractError('timeout', `${moduleId}.${name}: deadline passed before the call`);
      // Most handlers never look at the signal: create the controller only when one does. It follows
      // the caller's signal (a stopped stream, a closed connection), which calls made by the handler
      // also inherit through the context.
      let ac: AbortController | undefined;
      const parentSignal = currentContext()?.signal;
      const call: CallInfo = {
        get signal() {
          if (!ac) {
            ac = new AbortController();
            unlink = linkSignal(parentSignal, ac);
          }
          return ac.signal;
        },
      };
      const work = inDeadline(deadline, () => handler(input, ...extra.slice(0, op.kind === 'upload' ? 1 : 0), call));
      // A synchronous handler has already finished: no deadline left to race.
      const result = !(work instanceof Promise) ? work : await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            ac?.abort();
            reject(new ContractError('timeout', `${moduleId}.${name} timed out after ${remaining} ms`));
          }, remaining);
        }),
      ]);
      const out = op.output.safeParse(result);
      if (!out.success) {
        logger?.error({ module: moduleId, operation: name, issues: issuesOf(out.error) }, 'output violates contract');
        throw new ContractError('internal', 'Internal error');
      }
      done?.('ok');
      return out.data;
    } catch (err) {
      const ce = failure(moduleId, name, err, logger, opts.classify);
      done?.(ce.code);
      throw ce;
    } finally {
      if (timer) clearTimeout(timer);
      unlink?.();
    }
  };
}

function streamCall(moduleId: string, name: string, op: StreamOperation, handler: AnyFn, opts: LocalBindingOptions) {
  const { metrics, logger } = opts;
  return (rawInput: unknown): AsyncIterable<unknown> => ({
    [Symbol.asyncIterator]() {
      // `stop`: the consumer stopped (return(), acting at once even while a chunk is awaited) or the
      // caller's own signal aborted. `ac`, the handler's signal, follows it and also aborts at the end.
      const stop = new AbortController();
      const unlinkCaller = linkSignal(currentContext()?.signal, stop);
      const ac = new AbortController();
      const unlink = linkSignal(stop.signal, ac);
      // A stream stopped before it ever ran never reaches its `finally`: unlink on the stop as well.
      stop.signal.addEventListener('abort', unlinkCaller, { once: true });
      const produce = async function* () {
        const done = metrics?.timeOperation(moduleId, name, 'local');
        let iterator: AsyncIterator<unknown> | undefined;
        let outcome = 'ok';
        // One idle timer per stream, re-armed for each wait (refresh), instead of a timer and a race of
        // three promises per chunk: a model's reply is hundreds of chunks. It only counts while a chunk
        // is awaited; firing while the consumer holds a chunk does nothing.
        let timer: NodeJS.Timeout | undefined;
        let timerMs = 0;
        let idle: ((err: unknown) => void) | undefined;
        try {
          const input = parseInput(op.input, rawInput);
          // The context deadline bounds the whole stream; timeoutMs bounds each wait for a chunk.
          const ctx = { ...callContext(effectiveDeadline(24 * 3600_000)), signal: ac.signal };
          const source = runWithContext(ctx, () => handler(input, { signal: ac.signal })) as AsyncIterable<unknown>;
          iterator = source[Symbol.asyncIterator]();
          const onIdle = () => idle?.(new ContractError('timeout', `${moduleId}.${name}: no chunk within ${timerMs} ms`));
          for (;;) {
            const wait = Math.min(op.timeoutMs, ctx.deadline - Date.now());
            if (wait <= 0) throw new ContractError('timeout', `${moduleId}.${name}: deadline passed`);
            const it = iterator;
            const next = await new Promise<IteratorResult<unknown>>((resolve, reject) => {
              idle = reject;
              if (timer && timerMs === wait) timer.refresh();
              else {
                clearTimeout(timer);
                timerMs = wait;
                timer = setTimeout(onIdle, wait);
              }
              runWithContext(ctx, () => it.next()).then(resolve, reject);
            });
            idle = undefined;
            if (next.done) break;
            const chunk = op.chunk.safeParse(next.value);
            if (!chunk.success) {
              logger?.error({ module: moduleId, operation: name, issues: issuesOf(chunk.error) }, 'chunk violates contract');
              throw new ContractError('internal', 'Internal error');
            }
            yield chunk.data;
          }
        } catch (err) {
          const ce = stop.signal.aborted ? cancelledError(stop.signal) : failure(moduleId, name, err, logger, opts.classify);
          outcome = ce.code;
          throw ce;
        } finally {
          clearTimeout(timer);
          idle = undefined;
          unlink();
          unlinkCaller();
          ac.abort();
          // Tell the producer nobody reads any more (consumer stopped early, timeout or error).
          void iterator?.return?.(undefined)?.catch(() => undefined);
          done?.(outcome);
        }
      };
      return cancellable(produce(), stop);
    },
  });
}
