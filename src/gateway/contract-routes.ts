// Mounts every contract's route declarations on the REST surface: authentication and role gate,
// rate-limit class, deadline, input built from the request and validated by the operation's schema
// (inside the binding), status and body from the declaration. The gateway knows no module.
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { AnyContract, Download, Operations, RouteDef, RouteRequest, UploadBody } from '../kernel/contract/define.js';
import { ContractError, toContractError } from '../kernel/contract/errors.js';
import { currentContext, runWithContext, type Actor, type RequestContext } from '../kernel/context/request-context.js';
import { bearerMatches } from '../kernel/transport/wire.js';
import { writeNdjson } from '../kernel/transport/ndjson-response.js';
import { settleBody, uploadBodyOf, writeDownload } from '../kernel/transport/binary-wire.js';
import { bearerToken } from './authenticator.js';
import type { Credentials } from './credentials.js';
import { sendError } from './error-envelope.js';
import type { RateLimits } from './rate-limit.js';
import { wantsEventStream, writeSse } from './sse-response.js';

export interface ContractRoutesOptions {
  /** Where the REST surface lives, e.g. /api/v1. */
  prefix: string;
  contracts: AnyContract[];
  /** Body handling (content-type check, JSON parser), applied only to routes that take a body. */
  bodyParsers: RequestHandler[];
  port: (moduleId: string) => Record<string, unknown> | undefined;
  credentials: Credentials;
  internalToken: string | undefined;
  rateLimits: RateLimits;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function defaultInput(req: RouteRequest, route?: RouteDef): unknown {
  // The body's fields are the operation's fields: a body of null, a string or an array names none of
  // them, and must not pass as an empty change.
  if (req.body !== undefined && !isPlainObject(req.body)) {
    const what = req.body === null ? 'null' : Array.isArray(req.body) ? 'an array' : `a ${typeof req.body}`;
    throw new ContractError('invalid_input', `the body must be a JSON object, not ${what}`, [{ path: '', message: `expected an object${route ? ` for ${route.method} ${route.path}` : ''}` }]);
  }
  return { ...req.query, ...(isPlainObject(req.body) ? req.body : {}), ...req.params };
}

/** Synchronous for public and internal routes, so the hot public path awaits nothing it does not need. */
function authorise(route: RouteDef, req: Request, opts: ContractRoutesOptions): Actor | undefined | Promise<Actor | undefined> {
  const authorization = req.header('authorization');
  switch (route.auth) {
    case 'public':
      return undefined;
    case 'internal':
      if (!opts.internalToken || !bearerMatches(authorization, opts.internalToken)) {
        throw new ContractError('unauthenticated', 'internal credential required');
      }
      return { type: 'service', name: 'internal' };
    case 'user':
    case 'admin':
      return authenticated(route, bearerToken(authorization), req.ip, opts.credentials);
  }
}

async function authenticated(route: RouteDef, token: string | undefined, address: string | undefined, credentials: Credentials): Promise<Actor> {
  const actor = await credentials.actorFor(token, address);
  if (route.auth === 'admin' && !(actor.type === 'user' && actor.roles.includes('admin'))) {
    throw new ContractError('forbidden', 'this needs the admin role');
  }
  return actor;
}

/**
 * Mounts the routes straight on the app with their full paths: one routing layer per route instead of
 * nested routers, and no body parsing for routes that take no body (the hot GET path stays short).
 */
export function mountContractRoutes(app: Express, opts: ContractRoutesOptions): void {
  for (const contract of opts.contracts) {
    for (const route of contract.routes) {
      const op = (contract.operations as Operations)[route.operation]!;
      const status = route.status ?? 200;
      const timeoutMs = route.timeoutMs ?? op.timeoutMs;
      const limitClass = route.rateLimit ?? 'default';
      // Who is calling and whether they may, before a byte of the body is read: a caller without a valid
      // credential must not make us buffer and parse up to the body limit.
      const gate = (req: Request, res: Response, next: NextFunction) => {
        res.locals.route = route.path;
        const refuse = (err: unknown) => sendError(res, toContractError(err));
        const admit = (actor: Actor | undefined) => {
          res.locals.actor = actor;
          if (limitClass === 'none') next();
          else opts.rateLimits.consume(limitClass, actor?.type === 'user' ? `user:${actor.id}` : `ip:${req.ip}`, res).then(() => next(), refuse);
        };
        let pending: ReturnType<typeof authorise>;
        try {
          pending = authorise(route, req, opts);
        } catch (err) {
          refuse(err);
          return;
        }
        if (pending instanceof Promise) pending.then(admit, refuse);
        else admit(pending);
      };
      const handle = async (req: Request, res: Response) => {
        try {
          const actor = res.locals.actor as Actor | undefined;
          const port = opts.port(contract.id);
          const fn = port?.[route.operation] as ((input: unknown) => unknown) | undefined;
          if (!fn) throw new ContractError('unavailable', `module "${contract.id}" is not bound`);
          if (op.kind === 'upload') {
            await handleUpload(req, res, route, fn, { ...currentContext()!, ...(actor ? { actor } : {}), deadline: Date.now() + timeoutMs }, status);
            return;
          }
          const request: RouteRequest = { params: req.params as Record<string, string>, query: req.query as Record<string, unknown>, body: req.body };
          const input = route.input ? route.input(request) : defaultInput(request, route);
          // A client that hangs up aborts the work done for it (a generation, a search) down every call.
          const hangUp = new AbortController();
          res.on('close', () => {
            if (!res.writableFinished) hangUp.abort(new ContractError('unavailable', 'the client closed the connection', { cancelled: true }));
          });
          const ctx = { ...currentContext()!, ...(actor ? { actor } : {}), deadline: Date.now() + timeoutMs, signal: hangUp.signal };
          if (op.kind === 'download') {
            // Bytes, not JSON: the deadline bounds the head, the body streams at the reader's pace.
            await writeDownload(res, (await runWithContext(ctx, () => fn(input))) as Download);
            return;
          }
          if (route.sse && wantsEventStream(req)) {
            // The same input, answered as server-sent events by the route's stream operation; its own
            // timeout bounds the stream (a chat turn outlives the 202 answer's deadline).
            const sse = port?.[route.sse] as ((input: unknown) => AsyncIterable<unknown>) | undefined;
            if (!sse) throw new ContractError('unavailable', `module "${contract.id}" is not bound`);
            const sseCtx = { ...ctx, deadline: Date.now() + (contract.operations as Operations)[route.sse]!.timeoutMs };
            await writeSse(res, runWithContext(sseCtx, () => sse(input)), sseCtx, (ce) => sendError(res, ce));
            return;
          }
          if (route.stream?.when(request)) {
            // The same path answered as NDJSON by the route's stream operation (`stream: true` in the
            // body, as Ollama's and OpenAI's completion APIs do); its own timeout bounds the stream.
            const streamOp = route.stream.operation;
            const streamFn = port?.[streamOp] as ((input: unknown) => AsyncIterable<unknown>) | undefined;
            if (!streamFn) throw new ContractError('unavailable', `module "${contract.id}" is not bound`);
            const streamCtx = { ...ctx, deadline: Date.now() + (contract.operations as Operations)[streamOp]!.timeoutMs };
            await streamNdjson(res, runWithContext(streamCtx, () => streamFn(input)), streamCtx);
            return;
          }
          if (op.kind === 'stream') {
            await streamNdjson(res, runWithContext(ctx, () => fn(input)) as AsyncIterable<unknown>, ctx);
            return;
          }
          const result = await runWithContext(ctx, () => fn(input));
          if (status === 204) res.status(204).end();
          else res.status(status).json(result);
        } catch (err) {
          sendError(res, toContractError(err));
        }
      };
      const method = route.method.toLowerCase() as 'get' | 'post' | 'put' | 'patch' | 'delete';
      const takesBody = route.method === 'POST' || route.method === 'PUT' || route.method === 'PATCH';
      // An upload's body is handed to the operation as a stream, never parsed here.
      app[method](`${opts.prefix}${route.path}`, gate, ...(takesBody && op.kind !== 'upload' ? opts.bodyParsers : []), handle);
    }
  }
}

/**
 * An upload route: the input from the path and query, the request itself (authenticated, unread) as the
 * operation's body. Whatever the outcome, the rest of an unread body is settled before answering, so
 * the client gets the answer (a 413 naming the limit) rather than a reset connection.
 */
async function handleUpload(
  req: Request,
  res: Response,
  route: RouteDef,
  fn: (input: unknown, body?: UploadBody) => unknown,
  ctx: RequestContext,
  status: number,
): Promise<void> {
  let answer: () => void;
  try {
    const request: RouteRequest = { params: req.params as Record<string, string>, query: req.query as Record<string, unknown>, body: undefined };
    const input = route.input ? route.input(request) : defaultInput(request, route);
    const result = await runWithContext(ctx, () => fn(input, uploadBodyOf(req)));
    answer = () => (status === 204 ? res.status(204).end() : res.status(status).json(result));
  } catch (err) {
    answer = () => sendError(res, toContractError(err));
  }
  await settleBody(req, res);
  answer();
}

/** A body that is not JSON is refused up front rather than silently read as empty. */
export function requireJson(req: Request, _res: Response, next: NextFunction): void {
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  if (hasBody && !req.is('application/json')) {
    next(new ContractError('unsupported_media_type', `send application/json, not ${req.headers['content-type'] ?? 'an untyped body'}`));
    return;
  }
  next();
}

async function streamNdjson(res: Response, source: AsyncIterable<unknown>, ctx: RequestContext): Promise<void> {
  // Every pull runs in the request's context: the producer's work belongs to this request.
  const inner = runWithContext(ctx, () => source[Symbol.asyncIterator]());
  const iterator: AsyncIterator<unknown> = {
    next: () => runWithContext(ctx, () => inner.next()),
    return: async (value?: unknown) => (inner.return ? inner.return(value) : { done: true, value }),
  };
  await writeNdjson(res, iterator, {
    line: (chunk) => chunk,
    failed: (ce) => ({ error: { ...ce.toBody(), requestId: ctx.requestId } }),
    refuse: (ce) => sendError(res, ce),
  });
}
