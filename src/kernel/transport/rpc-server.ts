// The RPC server: exposes the modules this process hosts on POST /rpc/<module>/<operation> to other
// AutoBot processes holding the internal token, restoring the caller's request context.
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from 'pino';
import type { AnyContract, Operations } from '../contract/define.js';
import { ContractError, toContractError } from '../contract/errors.js';
import { newRequestId, runWithContext, type RequestContext } from '../context/request-context.js';
import { bearerMatches, decodeActor, headers, HEALTH_OPERATION } from './wire.js';
import { writeNdjson } from './ndjson-response.js';

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

function sendError(res: Response, err: ContractError, requestId: string): void {
  if (res.headersSent) return;
  res.status(err.status).json({ error: { ...err.toBody(), requestId } });
}

function contextOf(req: Request): RequestContext {
  const requestId = req.header(headers.requestId) || newRequestId();
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

/** What body-parser throws (`type` is its stable discriminator). */
function bodyParserError(err: unknown): ContractError | undefined {
  const type = (err as { type?: unknown } | null)?.type;
  if (type === 'entity.too.large') return new ContractError('payload_too_large', 'request body too large');
  if (type === 'entity.parse.failed') return new ContractError('invalid_input', 'request body is not valid JSON');
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new ContractError('unsupported_media_type', 'unsupported request body encoding');
  }
  return undefined;
}

export function createRpcRouter(opts: RpcServerOptions): Router {
  const router = express.Router();

  // Authenticate before reading the body: a caller without the internal credential must not make us
  // buffer and parse up to `bodyLimit` of JSON.
  router.use((req: Request, res: Response, next: NextFunction) => {
    const requestId = req.header(headers.requestId) || newRequestId();
    res.setHeader(headers.requestId, requestId);
    if (!opts.internalToken || !bearerMatches(req.header('authorization'), opts.internalToken)) {
      sendError(res, new ContractError('unauthenticated', 'internal credential required'), requestId);
      return;
    }
    next();
  });
  router.use(express.json({ limit: opts.bodyLimit ?? '10mb' }));

  router.post('/:module/:operation', async (req: Request, res: Response) => {
    // The caller hung up (stopped a stream, cancelled its call, or died): abort the handler's signal at
    // once, instead of waiting for its next chunk to fail on a closed socket.
    const hangUp = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) hangUp.abort(new ContractError('unavailable', 'the caller closed the connection', { cancelled: true }));
    });
    const ctx: RequestContext = { ...contextOf(req), signal: hangUp.signal };
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
    const input = (req.body as { input?: unknown } | undefined)?.input;
    await runWithContext(ctx, async () => {
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
    sendError(res, new ContractError('not_found', 'use POST /rpc/<module>/<operation>'), newRequestId());
  });

  // Without this, a malformed or oversized body gets express's HTML error page, which the HTTP binding
  // can only read as a malformed answer (`internal`) instead of the real code.
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    const ce = bodyParserError(err);
    if (!ce) {
      next(err);
      return;
    }
    sendError(res, ce, String(res.getHeader(headers.requestId) ?? req.header(headers.requestId) ?? newRequestId()));
  });
  return router;
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
