// A multipart/form-data upload body as an async sequence of parts, parsed with busboy while it streams
// (never buffered), with the request's limits enforced as bytes arrive. Modules with upload operations
// use it on the UploadBody they are handed: files, documents.
//
// A file part's stream must be consumed (or resumed) before the next part is asked for: busboy holds
// the request back until it is, which is what keeps memory bounded.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import busboy from 'busboy';
import type { UploadBody } from '../contract/define.js';
import { ContractError } from '../contract/errors.js';
import { readableOf } from './binary-wire.js';

export type MultipartPart =
  | { kind: 'file'; field: string; fileName: string; mimeType: string; stream: Readable }
  | { kind: 'field'; field: string; value: string };

export interface MultipartLimits {
  /** Bytes of the whole body. */
  maxBodyBytes: number;
  /** Named in the 413 when the body is larger (e.g. `files.maxRequestBytes`). */
  bodyLimitName: string;
  maxFiles: number;
  /** Named in the 413 when there are more files (e.g. `documents.maxFilesPerUpload`). */
  filesLimitName: string;
  maxFields?: number;
  maxFieldBytes?: number;
}

class ByteLimit extends Transform {
  private seen = 0;
  constructor(
    private readonly max: number,
    private readonly tooLarge: () => ContractError,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) done(this.tooLarge());
    else done(null, chunk);
  }
}

export function bodyTooLarge(limitName: string, max: number): ContractError {
  return new ContractError('payload_too_large', `the request body exceeds ${limitName} (${max} bytes)`, { limit: limitName, maxBytes: max });
}

export async function* multipartParts(body: UploadBody, limits: MultipartLimits): AsyncGenerator<MultipartPart> {
  const tooLarge = () => bodyTooLarge(limits.bodyLimitName, limits.maxBodyBytes);
  // Refused before a byte is read when the client said up front how much it sends.
  if (body.contentLength !== undefined && body.contentLength > limits.maxBodyBytes) throw tooLarge();
  let bb: busboy.Busboy;
  try {
    bb = busboy({
      headers: { 'content-type': body.contentType },
      defParamCharset: 'utf8',
      limits: {
        files: limits.maxFiles,
        fields: limits.maxFields ?? 50,
        fieldSize: limits.maxFieldBytes ?? 16 * 1024,
        parts: limits.maxFiles + (limits.maxFields ?? 50),
        fieldNameSize: 200,
      },
    });
  } catch (err) {
    throw new ContractError('invalid_input', `not a multipart form: ${(err as Error).message}`, [{ path: 'body', message: 'expected multipart/form-data with a boundary' }]);
  }

  const queue: MultipartPart[] = [];
  let failure: ContractError | undefined;
  let closed = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  let handedOut: MultipartPart | undefined;
  const fail = (err: ContractError) => {
    failure ??= err;
    // A consumer reading the current file must learn of it too, or it would wait for an end that never comes.
    if (handedOut?.kind === 'file' && !handedOut.stream.readableEnded) handedOut.stream.destroy(failure);
    notify();
  };

  bb.on('file', (field, stream, info) => {
    queue.push({ kind: 'file', field, fileName: info.filename ?? '', mimeType: info.mimeType, stream });
    notify();
  });
  bb.on('field', (field, value, info) => {
    if (info.valueTruncated) {
      fail(new ContractError('invalid_input', `field "${field}" is too long`, [{ path: field, message: 'too long' }]));
      return;
    }
    queue.push({ kind: 'field', field, value });
    notify();
  });
  bb.on('filesLimit', () =>
    fail(new ContractError('payload_too_large', `more than ${limits.maxFiles} files in one request (${limits.filesLimitName})`, { limit: limits.filesLimitName, maxFiles: limits.maxFiles })),
  );
  bb.on('fieldsLimit', () => fail(new ContractError('payload_too_large', 'too many form fields', { limit: 'fields' })));
  bb.on('partsLimit', () => fail(new ContractError('payload_too_large', 'too many form parts', { limit: 'parts' })));
  bb.on('error', (err: Error) => fail(new ContractError('invalid_input', `malformed multipart body: ${err.message}`, [{ path: 'body', message: err.message }])));
  bb.on('close', () => {
    closed = true;
    notify();
  });

  const source = readableOf(body.stream);
  const counter = new ByteLimit(limits.maxBodyBytes, tooLarge);
  counter.on('error', (err) => fail(err instanceof ContractError ? err : new ContractError('invalid_input', 'the upload broke off')));
  source.on('error', () => fail(new ContractError('invalid_input', 'the upload broke off')));
  source.on('aborted', () => fail(new ContractError('invalid_input', 'the upload broke off')));
  source.pipe(counter).pipe(bb);

  try {
    for (;;) {
      // A file the consumer left unread would hold busboy (and the request) forever.
      if (handedOut?.kind === 'file' && !handedOut.stream.readableEnded) handedOut.stream.resume();
      handedOut = undefined;
      while (!queue.length && !failure && !closed) await new Promise<void>((r) => (wake = r));
      if (failure) throw failure;
      const next = queue.shift();
      if (!next) return;
      handedOut = next;
      yield next;
      if (failure) throw failure;
    }
  } finally {
    // Stop feeding busboy; whatever is left of the body is the caller's to settle.
    source.unpipe(counter);
    counter.unpipe(bb);
    bb.removeAllListeners('file');
    for (const part of queue) if (part.kind === 'file') part.stream.resume();
    if (handedOut?.kind === 'file' && !handedOut.stream.readableEnded) handedOut.stream.resume();
  }
}
