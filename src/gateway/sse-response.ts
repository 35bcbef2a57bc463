// Server-sent events for routes that declare `sse`: when the request sends `Accept: text/event-stream`,
// the route's stream operation answers instead, and each chunk `{event, data}` becomes one SSE message
// with the same event names and payloads socket.io clients get.
import type { Request, Response } from 'express';
import { ContractError, toContractError } from '../kernel/contract/errors.js';
import { runWithContext, type RequestContext } from '../kernel/context/request-context.js';

export function wantsEventStream(req: Request): boolean {
  return (req.header('accept') ?? '').toLowerCase().includes('text/event-stream');
}

/** The SSE framing of one message; `data` is one line of JSON (JSON.stringify never emits a newline). */
export function sseMessage(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function drained(res: Response): Promise<void> {
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

/**
 * Streams `source` as `text/event-stream`. A failure before the first chunk is an ordinary error
 * response (status and envelope); after it, an `error` event. The caller going away stops the producer.
 */
export async function writeSse(
  res: Response,
  source: AsyncIterable<unknown>,
  ctx: RequestContext,
  refuse: (err: ContractError) => void,
): Promise<ContractError | undefined> {
  const iterator = runWithContext(ctx, () => source[Symbol.asyncIterator]());
  const next = () => runWithContext(ctx, () => iterator.next());
  let gone = false;
  res.on('close', () => {
    if (res.writableFinished) return;
    gone = true;
    void iterator.return?.(undefined)?.catch(() => undefined);
  });
  try {
    let item = await next();
    if (gone) return undefined;
    res.status(200);
    res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    res.setHeader('cache-control', 'no-cache, no-transform');
    // Proxies such as nginx would otherwise buffer the stream.
    res.setHeader('x-accel-buffering', 'no');
    // No flushHeaders(): the first event is at hand, and leaves with the head in one write.
    while (!item.done && !gone) {
      const chunk = item.value as { event?: unknown; data?: unknown };
      if (typeof chunk?.event !== 'string') throw new ContractError('internal', 'an SSE chunk must be {event, data}');
      if (!res.write(sseMessage(chunk.event, chunk.data ?? null))) await drained(res);
      if (gone) break;
      item = await next();
    }
    if (!gone) res.end();
    return undefined;
  } catch (err) {
    const ce = toContractError(err);
    if (!res.headersSent) refuse(ce);
    else if (!gone) res.end(sseMessage('error', { error: { ...ce.toBody(), requestId: ctx.requestId } }));
    return ce;
  }
}
