// Stopping a stream at once. An async generator queues `return()` behind a pending `next()`, so a
// consumer that stops while the producer is still thinking (an LLM before its next token) would only
// be heard at the next chunk or at the idle timeout. This wrapper acts on `return()` and on an abort
// immediately: it aborts the producer's signal (which closes sockets, HTTP requests, …), settles the
// pending `next()`, and lets the inner generator unwind in the background.
import { ContractError } from '../contract/errors.js';

/** The reason a stream ends when its caller's signal aborts: the signal's own contract error, if any. */
export function cancelledError(signal: AbortSignal): ContractError {
  const reason: unknown = signal.reason;
  if (reason instanceof ContractError) return reason;
  return new ContractError('unavailable', 'cancelled by the caller', { cancelled: true });
}

/**
 * Wraps `inner`, whose producer stops when `controller` aborts. `return()` aborts and answers done;
 * an abort from elsewhere (the caller's signal, linked by the caller) rejects the pending `next()`.
 */
export function cancellable<T>(inner: AsyncIterator<T>, controller: AbortController): AsyncIterableIterator<T> {
  const signal = controller.signal;
  let returned = false;
  let aborted: Promise<never> | undefined;
  const whenAborted = (): Promise<never> =>
    (aborted ??= new Promise<never>((_, reject) => {
      const fail = () => reject(returned ? DONE : cancelledError(signal));
      if (signal.aborted) fail();
      else signal.addEventListener('abort', fail, { once: true });
    }));
  const settle = (err: unknown): IteratorResult<T> => {
    if (err === DONE) return { done: true, value: undefined };
    throw err;
  };
  const it: AsyncIterableIterator<T> = {
    async next() {
      if (returned) return { done: true, value: undefined };
      if (signal.aborted) return settle(returned ? DONE : cancelledError(signal));
      const pending = inner.next();
      // The losing side of the race must not surface as an unhandled rejection.
      pending.catch(() => undefined);
      try {
        return await Promise.race([pending, whenAborted()]);
      } catch (err) {
        return settle(err);
      }
    },
    async return(value?: unknown) {
      if (!returned) {
        returned = true;
        controller.abort();
        // Queued behind any pending next() in a generator; it runs once the producer unwinds.
        void inner.return?.(value as T)?.catch(() => undefined);
      }
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}

const DONE = Symbol('done');

/** Aborts `controller` when `parent` aborts; returns the unlink function. */
export function linkSignal(parent: AbortSignal | undefined, controller: AbortController): () => void {
  if (!parent) return () => undefined;
  if (parent.aborted) {
    controller.abort(parent.reason);
    return () => undefined;
  }
  const onAbort = () => controller.abort(parent.reason);
  parent.addEventListener('abort', onAbort, { once: true });
  return () => parent.removeEventListener('abort', onAbort);
}
