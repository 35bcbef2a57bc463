// The RPC server: exposes the modules this process hosts on POST /rpc/<module>/<operation> to other
// AutoBot processes holding the internal token, restoring the caller's request context.
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from 'pino';
import type { AnyContract, Download, Operations, UploadBody } from '../contract/define.js';
import { ContractError, toContractError } from '../contract/errors.js';
import { newRequestId, runWithContext, type RequestContext } from '../context/request-context.js';
import { bearerMatches, decodeActor, headers, HEALTH_OPERATION } from './wire.js';
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

function sendError(res: Response, err: ContractError, requestId: string): void {
  if (res.headersSent) return;
  res.status(err.status).json({ error: { ...err.toBody(), requestId } });
}

function contextOf(req: Request, res: Response): RequestContext {
  const requestId = String(res.getHeader(headers.requestId) ?? '') || newRequestId();
  const deadlineRaw = Number(req.header(headers.deadline));
  const actor = decodeActor(req.header(headers.actor));
  const idempotencyKey = req.header(headers.idempotencyKey);
  const clientAddress = req.header(headers.clientAddress);
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

export function createRpcRouter(opts: RpcServerOptions): Router {
  const router = express.Router();

  // Authenticate before reading the body: a caller without the internal credential must not make us
  // buffer and parse up to `bodyLimit` of JSON.
  router.use((req: Request, res: Response, next: NextFunction) => {
    const requestId = acceptedRequestId(req.header(headers.requestId)) ?? newRequestId();
    res.setHeader(headers.requestId, requestId);
    if (!opts.internalToken || !bearerMatches(req.header('authorization'), opts.internalToken)) {
      sendError(res, new ContractError('unauthenticated', 'internal credential required'), requestId);
      return;
    }
    next();
  });
  const json = express.json({ limit: opts.bodyLimit ?? '10mb' });
  // An upload's body is the caller's stream, handed to the operation unread (its input is in a header).
  router.use((req: Request, res: Response, next: NextFunction) => (req.header(binaryHeaders.uploadInput) !== undefined ? next() : json(req, res, next)));

  router.post('/:module/:operation', async (req: Request, res: Response) => {
    // The caller hung up (stopped a stream, cancelled its call, or died): abort the handler's signal at
    // once, instead of waiting for its next chunk to fail on a closed socket.
    const hangUp = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) hangUp.abort(new ContractError('unavailable', 'the caller closed the connection', { cancelled: true }));
    });
    const ctx: RequestContext = { ...contextOf(req, res), signal: hangUp.signal };
    const moduleId = String(req.params.module);
    const operation = String(req.params.operation);
    const hosted = opts.hosted(moduleId);
    if (!hosted) {
      sendError(res, new ContractError('unavailable', `module "${moduleId}" is not hosted here`), ctx.requestId);
      return;
    }
    const fn = hosted.port[operation];
    const op = (hosted.contract.operations as Operations)[operation];
    if (typeof fn !== 'function' || (!op && operation !== HEALTH_OPERATION)) {
      sendError(res, new ContractError('not_found', `unknown operation ${moduleId}.${operation}`), ctx.requestId);
      return;
    }
    await runWithContext(ctx, async () => {
      if (op?.kind === 'upload') {
        await uploadIn(req, res, fn as (i: unknown, b: UploadBody) => Promise<unknown>, ctx.requestId);
        return;
      }
      const input = (req.body as { input?: unknown } | undefined)?.input;
      if (op?.kind === 'download') {
        await downloadOut(res, fn as (i: unknown) => Promise<Download>, input, ctx.requestId);
        return;
      }
      if (op?.kind === 'stream') {
        await streamOut(res, (fn as (i: unknown) => AsyncIterable<unknown>)(input), ctx.requestId, opts.logger);
        return;
      }
      try {
        const result = await (fn as (i: unknown) => Promise<unknown>)(input);
        res.status(200).json({ result: result === undefined ? null : result });
      } catch (err) {
        sendError(res, toContractError(err), ctx.requestId);
      }
    });
  });

  router.use((_req: Request, res: Response) => {
    sendError(res, new ContractError('not_found', 'use POST /rpc/<module>/<operation>'), String(res.getHeader(headers.requestId) ?? newRequestId()));
  });

  // Without this, a malformed or oversized body gets express's HTML error page, which the HTTP binding
  // can only read as a malformed answer (`internal`) instead of the real code.
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    const ce = clientErrorOf(err);
    if (!ce) {
      next(err);
      return;
    }
    sendError(res, ce, String(res.getHeader(headers.requestId) ?? newRequestId()));
  });
  return router;
}

/** An upload: the input from its header, the request itself as the body; answered like a unary call. */
async function uploadIn(req: Request, res: Response, fn: (i: unknown, b: UploadBody) => Promise<unknown>, requestId: string) {
  let answer: () => void;
  try {
    const result = await fn(decodeHeaderJson(req.header(binaryHeaders.uploadInput)), uploadBodyOf(req));
    answer = () => res.status(200).json({ result: result === undefined ? null : result });
  } catch (err) {
    answer = () => sendError(res, toContractError(err), requestId);
  }
  await settleBody(req, res);
  answer();
}

/** A download: the head in a header, the bytes as the body. */
async function downloadOut(res: Response, fn: (i: unknown) => Promise<Download>, input: unknown, requestId: string) {
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
async function streamOut(res: Response, source: AsyncIterable<unknown>, requestId: string, logger: Logger) {
  const err = await writeNdjson(res, source[Symbol.asyncIterator](), {
    line: (chunk) => ({ chunk }),
    last: { end: true },
    failed: (ce) => ({ error: { ...ce.toBody(), requestId } }),
    refuse: (ce) => sendError(res, ce, requestId),
  });
  if (err?.code === 'internal') logger.error({ err: err.cause ?? err }, 'stream failed');
}
