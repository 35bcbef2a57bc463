// socket.io on the gateway's HTTP server (path /ws): handshakes carry the same credentials as REST,
// each socket joins its user's room, and the Redis adapter carries room broadcasts across instances.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { apiKeyRoom, roleRoom, sessionRoom, userRoom } from '../kernel/realtime/realtime.js';
import { isContractError } from '../kernel/contract/errors.js';
import type { Credentials } from './credentials.js';

export interface SocketServerOptions {
  credentials: Credentials;
  /** The client address of a handshake, read as the REST routes read it (trust proxy). */
  clientAddress: (req: IncomingMessage) => string | undefined;
  corsOrigins: string[];
  pub: Redis;
  sub: Redis;
  logger: Logger;
}

interface ConnectError extends Error {
  data?: { code: string; message: string };
}

function refusal(code: string, message: string): ConnectError {
  const err: ConnectError = new Error(message);
  err.data = { code, message };
  return err;
}

/** The commands the Redis adapter sends without awaiting them (every broadcast, request and (un)subscribe). */
const FIRE_AND_FORGET = new Set<PropertyKey>(['publish', 'psubscribe', 'punsubscribe', 'subscribe', 'unsubscribe']);

/**
 * The client as the Redis adapter sees it: the commands it never awaits get their failure caught. While
 * Redis is down those commands wait in the offline queue, and when the connection closes (a shutdown in
 * the outage: `disconnectSockets` publishes, `io.close()` unsubscribes) they would reject with
 * "Connection is closed." as unhandled rejections, which end the process. A lost broadcast is what a
 * Redis outage costs anyway; clients re-read what they missed.
 */
function settledCommands(client: Redis, logger: Logger, label: string): Redis {
  return new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (!FIRE_AND_FORGET.has(prop)) return method.bind(target);
      return (...args: unknown[]) =>
        Promise.resolve(method.apply(target, args)).catch((err: unknown) => {
          logger.debug({ connection: label, command: String(prop), err: (err as Error).message }, 'socket.io adapter command failed');
        });
    },
  });
}

export function createSocketServer(http: HttpServer, opts: SocketServerOptions): Server {
  const io = new Server(http, {
    path: '/ws',
    serveClient: false,
    cors: { origin: opts.corsOrigins, credentials: true },
    adapter: createAdapter(settledCommands(opts.pub, opts.logger, 'socket.io-pub'), settledCommands(opts.sub, opts.logger, 'socket.io-sub')),
  });
  io.use((socket, next) => {
    const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    if (typeof token !== 'string' || !token) {
      next(refusal('unauthenticated', 'a token is required: io(url, { path: "/ws", auth: { token } })'));
      return;
    }
    opts.credentials
      .actorFor(token, opts.clientAddress(socket.request))
      .then((actor) => {
        if (actor.type !== 'user') {
          next(refusal('unauthenticated', 'the token is not valid'));
          return;
        }
        socket.data.actor = actor;
        next();
      })
      .catch((err: unknown) => {
        if (isContractError(err) && (err.code === 'unauthenticated' || err.code === 'rate_limited')) {
          next(refusal(err.code, err.code === 'unauthenticated' ? 'the token is not valid' : err.message));
          return;
        }
        // The auth port down or slow: the client's token may be fine, so say so, and say why in the log.
        if (isContractError(err) && err.code !== 'internal') opts.logger.warn({ code: err.code, err: err.message }, 'socket authentication unavailable');
        else opts.logger.error({ err }, 'socket authentication failed');
        next(refusal('unavailable', 'authentication is unavailable'));
      });
  });
  io.on('connection', (socket) => {
    // Besides the user's room, the room of the credential it came with, so revoking that one
    // credential (a logout, an API key) closes exactly its sockets.
    const actor = socket.data.actor as { id: string; roles?: string[]; sessionId?: string; apiKeyId?: string };
    // And the rooms of its roles, so a module can reach e.g. every admin (approvals only they decide).
    const rooms = [userRoom(actor.id), ...(actor.roles ?? []).map(roleRoom)];
    if (actor.sessionId) rooms.push(sessionRoom(actor.sessionId));
    if (actor.apiKeyId) rooms.push(apiKeyRoom(actor.apiKeyId));
    void socket.join(rooms);
  });
  return io;
}
