// Redis connections handed out by the kernel: each module gets its own connection bound to its logical
// database and a `<module>:` key prefix, so it cannot even name another module's keys.
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { settlesWithin } from '../time/settles-within.js';

export type { Redis };

/** Where Redis is: a redis:// URL, or a unix socket path (the embedded server). */
export interface RedisTarget {
  url?: string;
  path?: string;
}

/** `redis://…`, `rediss://…` or `unix:///path/to/redis.sock`. */
export function redisTargetFromUrl(url: string): RedisTarget {
  return url.startsWith('unix://') ? { path: url.slice('unix://'.length) } : { url };
}

export const KERNEL_DB = 0;

export class RedisConnections {
  private readonly open = new Set<Redis>();

  constructor(
    private readonly target: RedisTarget,
    private readonly logger: Logger,
  ) {}

  private create(opts: RedisOptions, label: string): Redis {
    const base: RedisOptions = { connectionName: `autobot:${label}`, ...opts };
    const client = this.target.path ? new Redis({ path: this.target.path, ...base }) : new Redis(this.target.url ?? 'redis://127.0.0.1:6379', base);
    let lastError = '';
    client.on('error', (err: Error) => {
      // ioredis reconnects by itself; log each distinct failure once rather than on every retry.
      if (err.message !== lastError) this.logger.warn({ err: err.message, connection: label }, 'redis connection error');
      lastError = err.message;
    });
    client.on('ready', () => (lastError = ''));
    this.open.add(client);
    client.once('end', () => this.open.delete(client));
    return client;
  }

  /** A module's own connection: its database and its key prefix. */
  forModule(moduleId: string, db: number): Redis {
    // Lazy: a module that never touches Redis costs no connection. Auto-pipelining sends the commands
    // issued in one tick (a lookup's two reads, concurrent requests) in one write.
    return this.create({ db, keyPrefix: `${moduleId}:`, maxRetriesPerRequest: 2, lazyConnect: true, enableAutoPipelining: true }, moduleId);
  }

  /** The kernel's own connection (registry, sagas, events, rate limits) in database 0 under `kernel:`. */
  kernel(label = 'kernel'): Redis {
    return this.create({ db: KERNEL_DB, keyPrefix: 'kernel:', maxRetriesPerRequest: 2, enableAutoPipelining: true }, label);
  }

  /**
   * For publishing (socket.io broadcasts): no prefix, never give up on a command, and the publishes of
   * one tick go out as one write (a streamed reply pushes a burst of deltas at once).
   */
  publisher(label: string): Redis {
    return this.create({ db: KERNEL_DB, maxRetriesPerRequest: null, enableAutoPipelining: true }, label);
  }

  /** For BullMQ and blocking reads: no prefix (BullMQ has its own), never give up on a command. */
  blocking(label: string, db = KERNEL_DB): Redis {
    return this.create({ db, maxRetriesPerRequest: null }, label);
  }

  options(db = KERNEL_DB): RedisOptions {
    return this.target.path ? { path: this.target.path, db, maxRetriesPerRequest: null } : { ...parseUrl(this.target.url), db, maxRetriesPerRequest: null };
  }

  async closeAll(): Promise<void> {
    // QUIT waits for the server; a connection that is not up would wait for ever, so it is dropped.
    await Promise.all([...this.open].map((c) => (c.status === 'ready' ? c.quit().catch(() => c.disconnect()) : c.disconnect())));
    this.open.clear();
  }
}

function parseUrl(url: string | undefined): RedisOptions {
  const u = new URL(url ?? 'redis://127.0.0.1:6379');
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * BullMQ needs `noeviction`: an evicting Redis silently drops jobs, events and saga journals.
 * Say so loudly at start rather than lose data quietly.
 */
export async function checkEvictionPolicy(client: Redis, logger: Logger): Promise<string | undefined> {
  try {
    const reply = (await client.config('GET', 'maxmemory-policy')) as string[];
    const policy = reply[1];
    if (policy && policy !== 'noeviction') {
      logger.warn(
        { policy },
        `REDIS IS MISCONFIGURED: maxmemory-policy is "${policy}", AutoBot needs "noeviction" or queued jobs, events and saga journals can be silently lost. Run: CONFIG SET maxmemory-policy noeviction`,
      );
    }
    return policy;
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'could not read the Redis eviction policy (CONFIG GET refused); make sure it is "noeviction"');
    return undefined;
  }
}

/**
 * QUIT within `ms`, else cut the connection. Waits for the socket to end, not just for QUIT's reply,
 * so that closeAll() afterwards does not write to a closing socket.
 */
export async function quitWithin(connection: Redis, ms: number): Promise<boolean> {
  if (connection.status === 'end') return true;
  const ended = new Promise<void>((resolve) => connection.once('end', () => resolve()));
  const done = await settlesWithin(Promise.all([connection.quit(), ended]), ms);
  if (!done) connection.disconnect();
  return done;
}

/** Errors ioredis raises when the server cannot be reached (as opposed to a command's own error). */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    err.constructor.name === 'MaxRetriesPerRequestError' ||
    err.message === 'Connection is closed.' ||
    err.message.startsWith("Stream isn't writeable") ||
    /^(connect )?(ECONNREFUSED|ENOENT|ECONNRESET|EPIPE)/.test(err.message)
  );
}
