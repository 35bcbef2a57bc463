// Writes an async iterator as an NDJSON response, one line per chunk: shared by the RPC server (the HTTP
// binding's wire) and the gateway (stream operations on the REST surface), which differ only in framing.
import type { ServerResponse } from 'node:http';
import { type ContractError, toContractError } from '../contract/errors.js';

export interface NdjsonFraming {
  /** The line for one chunk. */
  line: (chunk: unknown) => unknown;
  /** A line after the last chunk, if the wire has one. */
  last?: unknown;
  /** The line reporting a failure once the stream has begun (status and headers are already sent). */
  failed: (err: ContractError) => unknown;
  /** Answers a failure that came before the first chunk, as an ordinary error response. */
  refuse: (err: ContractError) => void;
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Streams `iterator` into `res`; resolves with the failure, if any, for the caller to log. */
export async function writeNdjson(res: ServerResponse, iterator: AsyncIterator<unknown>, framing: NdjsonFraming): Promise<ContractError | undefined> {
  // Watch the response, not the request: since Node 16 a request emits 'close' as soon as its body has
  // been read, which would end every stream after its first chunk. The response closes when the answer
  // is complete or when the caller went away.
  let gone = false;
  res.on('close', () => {
    if (res.writableFinished) return;
    gone = true;
    // Tell the producer nobody reads any more; an async generator runs its `finally` at its next step.
    iterator.return?.(undefined)?.catch(() => undefined);
  });
  try {
    let next = await iterator.next();
    if (gone) return undefined;
    res.statusCode = 200;
    res.setHeader('content-type', 'application/x-ndjson');
    // No flushHeaders(): the first line is at hand, and leaves with the head in one write (one TCP
    // segment, one read at the caller, instead of two).
    while (!next.done && !gone) {
      // Respect backpressure: a slow caller must slow the producer down, not grow our memory.
      if (!res.write(`${JSON.stringify(framing.line(next.value))}\n`)) await drained(res);
      if (gone) break;
      next = await iterator.next();
    }
    if (!gone) res.end(framing.last === undefined ? undefined : `${JSON.stringify(framing.last)}\n`);
    return undefined;
  } catch (err) {
    const ce = toContractError(err);
    if (!res.headersSent) framing.refuse(ce);
    else if (!gone) res.end(`${JSON.stringify(framing.failed(ce))}\n`);
    return ce;
  }
}
