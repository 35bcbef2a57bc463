// The RPC server: exposes the modules this process hosts on POST /rpc/<module>/<operation> to other
// AutoBot processes holding the internal token, restoring the caller's request context. A plain Node
// request handler, which the gateway's HTTP server calls before express: a lifted module serves every
// call of its callers, and express's router and the browser-facing middleware cost it about a quarter
// of its CPU per call. The body is read by body-parser's JSON parser, as express would.
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import type { Logger } from 'pino';
import type { AnyContract, Download, Operations, UploadBody } from '../contract/define.js';
import { ContractError, toContractError } from '../contract/errors.js';
import { newRequestId, runWithContext, type RequestContext } from '../context/request-context.js';
import { bearerMatches, decodeActor, headers, HEALTH_OPERATION, RPC_PREFIX } from './wire.js';
import { writeNdjson } from './ndjson-response.js';
import { binaryHeaders, decodeHeaderJson, downloadHeadHeader, settleBody, uploadBodyOf, writeDownload } from './binary-wire.js';

export interface HostedPort {
  contract: AnyContract;
  port: Record<string, unknown>;
}

export interface RpcServerOptions {
  /** Without a token the RPC surface refuses every call. */
  internalToken: string | undefined;
  hosted: (moduleId: string) => HostedPort | undefined;
  logger: Logger;
  bodyLimit?: string;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A client's X-Request-ID when it is safe to echo and log (short, no spaces or markup); else undefined. */
export function acceptedRequestId(given: string | undefined): string | undefined {
  return given !== undefined && REQUEST_ID.test(given) ? given : undefined;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}

function sendError(res: ServerResponse, err: ContractError, requestId: string): void {
  if (res.headersSent) return;
  sendJson(res, err.status, { error: { ...err.toBody(), requestId } });
}

/** A request header's single value (a repeated header counts as absent). */
function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

function contextOf(req: IncomingMessage, requestId: string): RequestContext {
  const deadlineRaw = Number(header(req, headers.deadline));
  const actor = decodeActor(header(req, headers.actor));
  const idempotencyKey = header(req, headers.idempotencyKey);
  const clientAddress = header(req, headers.clientAddress);
  return {
    requestId,
    ...(actor ? { actor } : {}),
    ...(Number.isFinite(deadlineRaw) && deadlineRaw > 0 ? { deadline: deadlineRaw } : {}),
    ...(idempotencyKey ? { idempotencyKey } : {}),
    ...(clientAddress ? { clientAddress } : {}),
  };
}

/**
 * A client's mistake as the HTTP layer reports it (body-parser, the router's parameter decoding, zlib
 * on a corrupt compressed body), as a contract error; undefined for anything else. `type` is
 * body-parser's stable discriminator; `status` is what http-errors and the router set.
 */
export function clientErrorOf(err: unknown): ContractError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { type, status, statusCode, code } = err as { type?: unknown; status?: unknown; statusCode?: unknown; code?: unknown };
  if (type === 'entity.too.large') return new ContractError('payload_too_large', 'Request body is too large');
  if (type === 'entity.parse.failed') return new ContractError('invalid_input', 'Malformed JSON body', [{ path: '', message: 'body is not valid JSON' }]);
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return new ContractError('unsupported_media_type', 'Unsupported body encoding');
  if (type === 'request.aborted') return new ContractError('invalid_input', 'Request aborted by the client');
  // zlib's errors carry codes like Z_DATA_ERROR and no HTTP status: the body claimed a compression it has not.
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new ContractError('invalid_input', 'The body is not validly compressed (Content-Encoding)', [{ path: '', message: 'corrupt compressed body' }]);
  }
  const httpStatus = typeof status === 'number' ? status : typeof statusCode === 'number' ? statusCode : undefined;
  if (httpStatus === undefined || httpStatus < 400 || httpStatus > 499) return undefined;
  const message = err instanceof Error && err.message ? err.message : 'Bad request';
  switch (httpStatus) {
    case 401:
      return new ContractError('unauthenticated', message);
    case 403:
      return new ContractError('forbidden', message);
    case 404:
      return new ContractError('not_found', message);
    case 413:
      return new ContractError('payload_too_large', message);
    case 415:
      return new ContractError('unsupported_media_type', message);
    case 429:
      return new ContractError('rate_limited', message);
    default:
      return new ContractError('invalid_input', message);
  }
}

/** `/rpc/<module>/<operation>`, an optional trailing slash and query. */
const RPC_PATH = /^\/rpc\/([^/?#]+)\/([^/?#]+)\/?(?:\?.*)?$/;

function segment(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** Whether the gateway should hand this request to the RPC handler instead of express. */
export function isRpcRequest(url: string | undefined): boolean {
  return url !== undefined && (url === RPC_PREFIX || url.startsWith(`${RPC_PREFIX}/`) || url.startsWith(`${RPC_PREFIX}?`));
}

/** The RPC server as a Node request handler, for every request whose URL passes `isRpcRequest`. */
export function createRpcHandler(opts: RpcServerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const json = express.json({ limit: opts.bodyLimit ?? '10mb' });
  const fail = (res: ServerResponse, requestId: string) => (err: unknown) => {
    opts.logger.error({ err }, 'rpc request failed');
    sendError(res, toContractError(err), requestId);
  };
  return (req, res) => {
    const requestId = acceptedRequestId(header(req, headers.requestId)) ?? newRequestId();
    res.setHeader(headers.requestId, requestId);
    // Authenticate before reading the body: a caller without the internal credential must not make us
    // buffer and parse up to `bodyLimit` of JSON.
    if (!opts.internalToken || !bearerMatches(header(req, 'authorization'), opts.internalToken)) {
      sendError(res, new ContractError('unauthenticated', 'internal credential required'), requestId);
      return;
    }
    const path = req.method === 'POST' ? RPC_PATH.exec(req.url ?? '') : null;
    const moduleId = path && segment(path[1]!);
    const operation = path && segment(path[2]!);
    if (!moduleId || !operation) {
      sendError(res, new ContractError('not_found', 'use POST /rpc/<module>/<operation>'), requestId);
      return;
    }
    // An upload's body is the caller's stream, handed to the operation unread (its input is in a header).
    if (header(req, binaryHeaders.uploadInput) !== undefined) {
      dispatch(req, res, moduleId, operation, undefined, requestId, opts).catch(fail(res, requestId));
      return;
    }
    json(req as never, res as never, (err?: unknown) => {
      if (err) {
        // A malformed or oversized body: the error envelope, never an HTML page the binding cannot read.
        sendError(res, clientErrorOf(err) ?? toContractError(err), requestId);
        return;
      }
      const input = ((req as { body?: { input?: unknown } }).body ?? undefined)?.input;
      dispatch(req, res, moduleId, operation, input, requestId, opts).catch(fail(res, requestId));
    });
  };
}

async function dispatch(req: IncomingMessage, res: ServerResponse, moduleId: string, operation: string, input: unknown, requestId: string, opts: RpcServerOptions): Promise<void> {
  // The caller hung up (stopped a stream, cancelled its call, or died): abort the handler's signal at
  // once, instead of waiting for its next chunk to fail on a closed socket.
  const hangUp = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) hangUp.abort(new ContractError('unavailable', 'the caller closed the connection', { cancelled: true }));
  });
  const ctx: RequestContext = { ...contextOf(req, requestId), signal: hangUp.signal };
  const hosted = opts.hosted(moduleId);
  if (!hosted) {
    sendError(res, new ContractError('unavailable', `module "${moduleId}" is not hosted here`), requestId);
    return;
  }
  const fn = hosted.port[operation];
  const op = (hosted.contract.operations as Operations)[operation];
  if (typeof fn !== 'function' || (!op && operation !== HEALTH_OPERATION)) {
    sendError(res, new ContractError('not_found', `unknown operation ${moduleId}.${operation}`), requestId);
    return;
  }
  await runWithContext(ctx, async () => {
    if (op?.kind === 'upload') {
      await uploadIn(req, res, fn as (i: unknown, b: UploadBody) => Promise<unknown>, requestId);
      return;
    }
    if (op?.kind === 'download') {
      await downloadOut(res, fn as (i: unknown) => Promise<Download>, input, requestId);
      return;
    }
    if (op?.kind === 'stream') {
      await streamOut(res, (fn as (i: unknown) => AsyncIterable<unknown>)(input), requestId, opts.logger);
      return;
    }
    try {
      const result = await (fn as (i: unknown) => Promise<unknown>)(input);
      sendJson(res, 200, { result: result === undefined ? null : result });
    } catch (err) {
      sendError(res, toContractError(err), requestId);
    }
  });
}

/** An upload: the input from its header, the request itself as the body; answered like a unary call. */
async function uploadIn(req: IncomingMessage, res: ServerResponse, fn: (i: unknown, b: UploadBody) => Promise<unknown>, requestId: string) {
  let answer: () => void;
  try {
    const result = await fn(decodeHeaderJson(header(req, binaryHeaders.uploadInput)), uploadBodyOf(req));
    answer = () => sendJson(res, 200, { result: result === undefined ? null : result });
  } catch (err) {
    answer = () => sendError(res, toContractError(err), requestId);
  }
  await settleBody(req, res);
  answer();
}

/** A download: the head in a header, the bytes as the body. */
async function downloadOut(res: ServerResponse, fn: (i: unknown) => Promise<Download>, input: unknown, requestId: string) {
  let download: Download;
  try {
    download = await fn(input);
  } catch (err) {
    sendError(res, toContractError(err), requestId);
    return;
  }
  await writeDownload(res, download, { [binaryHeaders.downloadHead]: downloadHeadHeader(download) });
}

/** Resolves when the socket can take more, or when the caller has gone (then nobody will drain it). */
async function streamOut(res: ServerResponse, source: AsyncIterable<unknown>, requestId: string, logger: Logger) {
  const err = await writeNdjson(res, source[Symbol.asyncIterator](), {
    line: (chunk) => ({ chunk }),
    last: { end: true },
    failed: (ce) => ({ error: { ...ce.toBody(), requestId } }),
    refuse: (ce) => sendError(res, ce, requestId),
  });
  if (err?.code === 'internal') logger.error({ err: err.cause ?? err }, 'stream failed');
}
