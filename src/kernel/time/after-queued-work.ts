/**
 * A promise that resolves once the microtasks already queued, and those they queue in turn, have run:
 * when a stream has handed on everything that arrived in the current read (the `ollama` client parses a
 * read's lines into parts through promise jobs only). Racing a stream's next() against it tells whether
 * the next item had already arrived (a burst read at once) or must still be waited for. It does not
 * wait for other I/O callbacks of the same event-loop turn (as setImmediate would): nothing waits for
 * unrelated work.
 */
export function afterQueuedWork(): Promise<typeof QUEUED_WORK_DONE> {
  return new Promise((resolve) => process.nextTick(resolve, QUEUED_WORK_DONE));
}

export const QUEUED_WORK_DONE: unique symbol = Symbol('the queued microtasks have run');
