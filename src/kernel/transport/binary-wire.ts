// Uploads and downloads on the wire, shared by the RPC server, the HTTP binding and the gateway.
//   upload   → POST /rpc/<module>/<operation>, the body streamed as sent by the client (its own
//              content-type), the operation's JSON input base64url-encoded in `x-autobot-input`;
//              answered like a unary call.
//   download → POST /rpc/<module>/<operation> with {"input": …} as usual; a 200 answer carries the bytes
//              as its body, with the head (media type, size, file name) in `x-autobot-download`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Download, UploadBody } from '../contract/define.js';
import { contentDisposition, headOf } from '../contract/binary.js';
import { ContractError } from '../contract/errors.js';

export const binaryHeaders = {
  uploadInput: 'x-autobot-input',
  downloadHead: 'x-autobot-download',
} as const;

/** Node's default limit for all headers together is 16 KiB; an upload's input must leave room for the rest. */
export const MAX_UPLOAD_INPUT_BYTES = 8 * 1024;

export function encodeHeaderJson(value: unknown): string {
  const encoded = Buffer.from(JSON.stringify(value ?? null)).toString('base64url');
  if (encoded.length > MAX_UPLOAD_INPUT_BYTES) {
    throw new ContractError('invalid_input', `the input of an upload must stay under ${MAX_UPLOAD_INPUT_BYTES} bytes encoded`);
  }
  return encoded;
}

export function decodeHeaderJson(value: string | string[] | undefined): unknown {
  if (typeof value !== 'string') return undefined;
  try {
    return JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as unknown;
  } catch {
    throw new ContractError('invalid_input', 'malformed upload input header');
  }
}

/** The request as an operation's upload body: streamed, nothing buffered. */
export function uploadBodyOf(req: IncomingMessage): UploadBody {
  const length = Number(req.headers['content-length']);
  return {
    stream: req,
    contentType: req.headers['content-type'] ?? '',
    ...(Number.isFinite(length) && length >= 0 && req.headers['content-length'] !== undefined ? { contentLength: length } : {}),
  };
}

/** A Node Readable over an upload body's stream (the request itself when it already is one). */
export function readableOf(stream: AsyncIterable<Uint8Array>): Readable {
  return stream instanceof Readable ? stream : Readable.from(stream, { objectMode: false });
}

/**
 * Before answering a request whose body was not read to its end (a refusal, an early error): read and
 * discard the rest, within bounds, so the client, which usually sends its whole body before it reads
 * the answer, gets the answer rather than a reset connection. Past the bounds the connection is closed
 * after the answer. Resolves true when the body was read to its end.
 */
export function settleBody(req: IncomingMessage, res: ServerResponse, opts: { maxBytes?: number; maxMs?: number } = {}): Promise<boolean> {
  if (req.complete || req.readableEnded) return Promise.resolve(true);
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const maxMs = opts.maxMs ?? 10_000;
  return new Promise<boolean>((resolve) => {
    let seen = 0;
    const finish = (complete: boolean) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      req.off('close', onEnd);
      if (!complete) {
        req.pause();
        res.setHeader('connection', 'close');
        res.once('finish', () => req.destroy());
      }
      resolve(complete);
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > maxBytes) finish(false);
    };
    const onEnd = () => finish(req.complete);
    const timer = setTimeout(() => finish(false), maxMs);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onEnd);
    req.once('close', onEnd);
    req.resume();
  });
}

/**
 * Answers a download: head as HTTP headers, body streamed with backpressure. When the reader goes away
 * the body's producer is told (its iterator's `return`), so a file handle or a screenshot is released.
 * `extraHeaders` lets the RPC server add the wire's own head.
 */
export async function writeDownload(res: ServerResponse, download: Download, extraHeaders: Record<string, string> = {}): Promise<void> {
  res.statusCode = 200;
  res.setHeader('content-type', download.contentType);
  if (download.size !== undefined) res.setHeader('content-length', String(download.size));
  res.setHeader('content-disposition', contentDisposition(download.disposition, download.fileName));
  res.setHeader('cache-control', 'private, no-store');
  for (const [k, v] of Object.entries(extraHeaders)) res.setHeader(k, v);
  try {
    await pipeline(readableOf(download.body), res);
  } catch {
    // The reader left, or the producer failed after the head was sent: the connection is cut, which
    // is how a client learns that a body is incomplete (its length does not match).
    if (!res.destroyed) res.destroy();
  }
}

export function downloadHeadHeader(download: Download): string {
  return Buffer.from(JSON.stringify(headOf(download))).toString('base64url');
}
