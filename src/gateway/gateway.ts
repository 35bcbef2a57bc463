// The edge: express 5 and socket.io on one HTTP server. Generic: it mounts whatever the contracts
// declare and calls ports; it never knows which module is local or remote.
import http from 'node:http';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import cors from 'cors';
import type { Server as SocketServer } from 'socket.io';
import type { AnyContract } from '../kernel/contract/define.js';
import { ContractError, toContractError } from '../kernel/contract/errors.js';
import { newRequestId, runWithContext } from '../kernel/context/request-context.js';
import type { Runtime } from '../kernel/runtime/runtime.js';
import { acceptedRequestId, createRpcHandler, isRpcRequest } from '../kernel/transport/rpc-server.js';
import { bearerMatches, RPC_PREFIX } from '../kernel/transport/wire.js';
import { refuseAll, bearerToken, type Authenticator } from './authenticator.js';
import { Credentials } from './credentials.js';
import { mountContractRoutes, requireJson } from './contract-routes.js';
import { docsRouter } from './docs.js';
import { errorHandler, sendError } from './error-envelope.js';
import { buildOpenApi } from './openapi.js';
import { defaultBudgets, RateLimits } from './rate-limit.js';
import { createSocketServer } from './socket-server.js';
import { mountSocketCommands } from './socket-commands.js';

export interface GatewayOptions {
  runtime: Runtime;
  version: string;
  /** Contracts served besides the modules' (the kernel's system contract). */
  extraContracts: { contract: AnyContract; port: Record<string, unknown> }[];
  authenticate?: Authenticator;
}

export interface Gateway {
  app: express.Express;
  server: http.Server;
  io: SocketServer;
  /** Requests being answered right now (for draining on shutdown). */
  inFlight(): number;
}

export function createGateway(opts: GatewayOptions): Gateway {
  const { runtime } = opts;
  const config = runtime.config;
  const logger = runtime.logger.child({ component: 'gateway' });
  const authenticate = opts.authenticate ?? refuseAll;
  const budgets = { ...defaultBudgets, ...config.AUTOBOT_RATE_LIMITS };
  const credentials = new Credentials(authenticate, runtime.redis(), budgets.authFailures, logger);
  const contracts = [...runtime.contracts(), ...opts.extraContracts.map((e) => e.contract)];
  const extra = new Map(opts.extraContracts.map((e) => [e.contract.id, e.port]));
  const portOf = (id: string) => extra.get(id) ?? runtime.portById(id);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  // Which proxies may tell us the client address (X-Forwarded-For); never all of them.
  app.set('trust proxy', config.AUTOBOT_TRUST_PROXY);

  let inFlight = 0;
  /** Counts a request in flight until its response closes, then observes it under `route()`. */
  const track = (method: string | undefined, res: http.ServerResponse, route: () => string) => {
    inFlight++;
    const start = process.hrtime.bigint();
    res.once('close', () => {
      inFlight--;
      runtime.metrics.observeHttp(method ?? 'GET', route(), res.statusCode, Number(process.hrtime.bigint() - start) / 1e9);
    });
  };
  app.use((req: Request, res: Response, next: NextFunction) => {
    const requestId = acceptedRequestId(req.header('x-request-id')) ?? newRequestId();
    res.setHeader('X-Request-ID', requestId);
    track(req.method, res, () => (res.locals.route as string | undefined) ?? (res.statusCode === 404 ? 'unmatched' : req.path.split('/').slice(0, 2).join('/')));
    runWithContext({ requestId, ...(req.ip ? { clientAddress: req.ip } : {}) }, next);
  });
  // The API answers JSON, never HTML: a short, strict policy (nothing may load, nothing may frame it).
  // The docs viewer, an HTML page, gets helmet's full default set instead.
  const apiHeaders = helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    crossOriginEmbedderPolicy: false,
    crossOriginOpenerPolicy: false,
    originAgentCluster: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false,
  });
  const pageHeaders = helmet();
  app.use((req: Request, res: Response, next: NextFunction) => (req.path.startsWith('/docs') ? pageHeaders : apiHeaders)(req, res, next));
  const corsHeaders = cors({
    origin: config.AUTOBOT_CORS_ORIGINS,
    credentials: true,
    exposedHeaders: ['X-Request-ID', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'Retry-After'],
  });
  // CORS concerns browsers on other origins only; a request without Origin needs none of its headers.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (req.headers.origin === undefined) next();
    else corsHeaders(req, res, next);
  });

  app.get('/metrics', async (req: Request, res: Response) => {
    res.locals.route = '/metrics';
    const byToken = config.METRICS_TOKEN !== undefined && bearerMatches(req.header('authorization'), config.METRICS_TOKEN);
    if (!byToken) {
      try {
        const actor = await credentials.actorFor(bearerToken(req.header('authorization')), req.ip);
        if (!(actor.type === 'user' && actor.roles.includes('admin'))) throw new ContractError('forbidden', 'metrics need the admin role or METRICS_TOKEN');
      } catch (err) {
        sendError(res, toContractError(err));
        return;
      }
    }
    res.type(runtime.metrics.registry.contentType).send(await runtime.metrics.registry.metrics());
  });

  const openapi = buildOpenApi(contracts, { version: opts.version });
  app.use('/docs', docsRouter('/api/v1/openapi.json'));

  app.get('/api/v1/openapi.json', (_req: Request, res: Response) => {
    res.locals.route = '/openapi.json';
    res.json(openapi);
  });
  // One set of limiters for the REST routes and the socket commands: one budget per user and class.
  const rateLimits = new RateLimits(runtime.redis(), budgets);
  mountContractRoutes(app, {
    prefix: '/api/v1',
    contracts,
    bodyParsers: [requireJson, express.json({ limit: config.AUTOBOT_BODY_LIMIT, strict: false })],
    port: portOf,
    credentials,
    internalToken: config.AUTOBOT_INTERNAL_TOKEN,
    rateLimits,
  });

  app.use((req: Request, res: Response) => {
    sendError(res, new ContractError('not_found', `no route ${req.method} ${req.path}`));
  });
  app.use(errorHandler(logger));

  // Module-to-module calls (the HTTP binding) go to the RPC handler before express: no browser reads
  // them, and a lifted module would pay express's router and the browser-facing middleware (helmet,
  // CORS) on every call it serves.
  const rpc = createRpcHandler({ internalToken: config.AUTOBOT_INTERNAL_TOKEN, hosted: (id) => runtime.hosted(id), logger, bodyLimit: '50mb' });
  const server = http.createServer((req, res) => {
    if (!isRpcRequest(req.url)) {
      app(req, res);
      return;
    }
    track(req.method, res, () => RPC_PREFIX);
    rpc(req, res);
  });
  // Idle keep-alive sockets must not hold a shutdown open, and slow clients must not hold sockets forever.
  server.keepAliveTimeout = 5000;
  server.requestTimeout = 120_000;
  // What Node's HTTP parser refuses before express sees it (an over-long URL or header, a malformed
  // request, a request too slow to arrive) also answers in the error envelope.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'the request line or headers are too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'the request took too long to arrive']
          : [400, 'Bad Request', 'malformed HTTP request'];
    const body = JSON.stringify({ error: { code: 'invalid_input', message, requestId: newRequestId() } });
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  const connections = runtime.redisConnections();
  const io = createSocketServer(server, {
    credentials,
    clientAddress: (raw) => clientAddressOf(app, raw),
    corsOrigins: config.AUTOBOT_CORS_ORIGINS,
    pub: connections.publisher('socket.io-pub'),
    sub: connections.blocking('socket.io-sub'),
    logger,
  });
  // Pushes of this process's modules reach its own sockets directly (and other instances through the adapter).
  runtime.realtime.attachLocal(io);
  server.once('close', () => runtime.realtime.attachLocal(undefined));
  // Commands the contracts declare (chat:join, message:send, …), called as the socket's user.
  mountSocketCommands(io, { contracts, port: portOf, rateLimits, logger });
  return { app, server, io, inFlight: () => inFlight };
}

/**
 * The client address of a raw request (a socket.io handshake) as express reads it for its own requests,
 * so the `trust proxy` setting means the same on both.
 */
function clientAddressOf(app: express.Express, raw: http.IncomingMessage): string | undefined {
  const view = Object.create(app.request, { app: { value: app }, headers: { value: raw.headers }, socket: { value: raw.socket } }) as Request;
  return view.ip;
}
