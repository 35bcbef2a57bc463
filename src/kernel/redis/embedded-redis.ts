// The embedded Redis supervisor: when no REDIS_URL is given, AutoBot runs a private redis-server as a
// child process, reachable only through a unix socket in the data directory (no TCP port), with AOF
// persistence and the `noeviction` policy BullMQ needs. The same class starts the tests' private servers.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';

export interface EmbeddedRedisOptions {
  /** Directory for the socket, AOF files and log. */
  dir: string;
  persistence?: boolean;
  binary?: string;
  startTimeoutMs?: number;
}

/** Data directories whose Redis this process runs (the owner file holds the same pid for all of them). */
const claimedHere = new Set<string>();

// sun_path holds 108 bytes on Linux, including the terminating NUL.
const MAX_SOCKET_PATH = 107;

export class RedisServerMissingError extends Error {
  constructor(binary: string) {
    super(
      `"${binary}" was not found. AutoBot starts its own Redis when REDIS_URL is unset: install it ` +
        '(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL=redis://host:6379.',
    );
    this.name = 'RedisServerMissingError';
  }
}

export class EmbeddedRedis {
  readonly socketPath: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  constructor(private readonly opts: EmbeddedRedisOptions) {
    this.socketPath = path.resolve(opts.dir, 'redis.sock');
    if (Buffer.byteLength(this.socketPath) > MAX_SOCKET_PATH) {
      throw new Error(`the Redis socket path ${this.socketPath} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter AUTOBOT_DATA_DIR`);
    }
  }

  get url(): string {
    return `unix://${this.socketPath}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  static isInstalled(binary = 'redis-server'): boolean {
    const r = spawnSync(binary, ['--version'], { stdio: 'ignore' });
    return !r.error && r.status === 0;
  }

  async start(): Promise<void> {
    const binary = this.opts.binary ?? 'redis-server';
    const dir = path.resolve(this.opts.dir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.claimOwnership();
    if (existsSync(this.socketPath) && (await answersPing(this.socketPath))) {
      // The owner is gone (we hold the claim), so this server is an orphan of a crashed AutoBot: stop it
      // cleanly (its AOF is fsynced on shutdown) and start our own on the same data.
      await shutdownOrphan(this.socketPath);
    }
    const persistence = this.opts.persistence ?? true;
    const args = [
      '--port', '0',
      '--unixsocket', this.socketPath,
      '--unixsocketperm', '700',
      '--dir', dir,
      '--daemonize', 'no',
      '--maxmemory-policy', 'noeviction',
      '--appendonly', persistence ? 'yes' : 'no',
      '--appendfsync', 'everysec',
      '--save', '',
      '--logfile', persistence ? path.join(dir, 'redis.log') : '',
      '--protected-mode', 'yes',
    ];
    // Its own process group: a Ctrl-C in the terminal must reach AutoBot only, which drains its requests
    // and then stops Redis itself; otherwise Redis would die first, under requests still being answered.
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const spawnFailed = new Promise<never>((_, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new RedisServerMissingError(binary) : err),
      );
      child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code} at start: ${stderr.trim()}`)));
    });
    spawnFailed.catch(() => undefined);
    try {
      await Promise.race([this.waitReady(this.opts.startTimeoutMs ?? 10_000), spawnFailed]);
    } catch (err) {
      // A server that never became ready must not outlive the failed start: it would keep the socket
      // and the AOF of this data directory, and nobody holds a handle to stop it.
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await this.exited;
      }
      this.releaseOwnership();
      throw err;
    }
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (this.child?.exitCode !== null) return; // the exit handler reports why
      if (existsSync(this.socketPath) && (await answersPing(this.socketPath))) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`redis-server did not answer on ${this.socketPath} within ${timeoutMs} ms`);
  }

  /** Stops the server (it rewrites nothing: AOF is already on disk) and waits for it to exit. */
  async stop(timeoutMs = 5000): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.releaseOwnership();
  }

  private get ownerFile(): string {
    return path.join(path.dirname(this.socketPath), 'owner.pid');
  }

  /**
   * One AutoBot per data directory: an exclusive owner file holds our pid. A file left by a process
   * that no longer runs is stale and taken over; two processes starting at once cannot both win.
   */
  private claimOwnership(): void {
    const dir = path.dirname(this.socketPath);
    if (claimedHere.has(dir)) throw new Error(`another AutoBot in this process already uses ${dir}`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(this.ownerFile, String(process.pid), { flag: 'wx', mode: 0o600 });
        claimedHere.add(dir);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number(readFileSync(this.ownerFile, 'utf8').trim());
      if (owner && owner !== process.pid && processRuns(owner)) {
        throw new Error(
          `another AutoBot (pid ${owner}) uses ${path.dirname(this.socketPath)}; stop it, or use another AUTOBOT_DATA_DIR ` +
            `(if no such process is AutoBot, delete ${this.ownerFile})`,
        );
      }
      rmSync(this.ownerFile, { force: true });
    }
    throw new Error(`could not claim ${this.ownerFile}`);
  }

  private releaseOwnership(): void {
    claimedHere.delete(path.dirname(this.socketPath));
    try {
      if (Number(readFileSync(this.ownerFile, 'utf8').trim()) === process.pid) rmSync(this.ownerFile, { force: true });
    } catch {
      // already gone
    }
  }

  /** For fault tests: the server dies at once, as in a crash (and this object lets go of the directory). */
  kill(): void {
    this.child?.kill('SIGKILL');
    this.releaseOwnership();
  }
}

function processRuns(pid: number): boolean {
  try {
    // Linux: a dead process whose parent has not reaped it yet is a zombie (state Z), not a runner.
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
}

async function shutdownOrphan(socketPath: string): Promise<void> {
  const client = new Redis({ path: socketPath, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.shutdown().catch(() => undefined); // the connection closes as the server exits
  } finally {
    client.disconnect();
  }
  const until = Date.now() + 10_000;
  while (existsSync(socketPath) && (await answersPing(socketPath))) {
    if (Date.now() > until) throw new Error(`an orphaned redis-server on ${socketPath} does not stop`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function answersPing(socketPath: string): Promise<boolean> {
  const client = new Redis({ path: socketPath, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
