// The embedded Redis (ARCHITECTURE.md §5): what `npm start` without REDIS_URL relies on. A private
// redis-server reachable only through a unix socket, AOF on, noeviction, data kept across restarts,
// nothing left running after stop, and a clear message when redis-server is not installed.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis, type RedisOptions } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedRedis, RedisServerMissingError } from '../../../src/kernel/redis/embedded-redis.js';
import { checkEvictionPolicy } from '../../../src/kernel/redis/redis-connections.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A fresh short directory (a unix socket path must stay under 108 bytes), removed after the test. */
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'abe-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function started(opts: ConstructorParameters<typeof EmbeddedRedis>[0]): Promise<EmbeddedRedis> {
  const server = new EmbeddedRedis(opts);
  await server.start();
  cleanups.push(() => server.stop());
  return server;
}

function connect(socketPath: string, extra: RedisOptions = {}): Redis {
  const client = new Redis({ path: socketPath, maxRetriesPerRequest: 1, retryStrategy: () => null, ...extra });
  client.on('error', () => undefined);
  cleanups.push(() => {
    client.disconnect();
  });
  return client;
}

async function configValue(client: Redis, key: string): Promise<string | undefined> {
  const reply = (await client.config('GET', key)) as string[];
  return reply[1];
}

/** Running, and not a zombie: an orphan that exited stays a zombie until init reaps it. */
function isRunning(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

describe('EmbeddedRedis', () => {
  it('serves only a unix socket (no TCP port), with AOF on and the noeviction policy', async () => {
    const dir = tempDir();
    const server = await started({ dir });
    expect(server.socketPath).toBe(path.join(dir, 'redis.sock'));
    expect(server.url).toBe(`unix://${server.socketPath}`);
    const client = connect(server.socketPath);
    expect(await client.ping()).toBe('PONG');
    expect(await configValue(client, 'port')).toBe('0');
    expect(await configValue(client, 'unixsocket')).toBe(server.socketPath);
    expect(await configValue(client, 'appendonly')).toBe('yes');
    expect(await configValue(client, 'maxmemory-policy')).toBe('noeviction');
  });

  it('keeps data across stop and start when persistence is on', async () => {
    const dir = tempDir();
    const first = new EmbeddedRedis({ dir, persistence: true });
    await first.start();
    const before = connect(first.socketPath);
    await before.set('chat:1', 'hello');
    await before.hset('chat:1:meta', { title: 'Greeting', turns: '3' });
    before.disconnect();
    await first.stop();

    const second = await started({ dir, persistence: true });
    const after = connect(second.socketPath);
    expect(await after.get('chat:1')).toBe('hello');
    expect(await after.hgetall('chat:1:meta')).toEqual({ title: 'Greeting', turns: '3' });
  });

  it('leaves no process and no socket behind after stop()', async () => {
    const dir = tempDir();
    const server = new EmbeddedRedis({ dir });
    await server.start();
    const pid = server.pid;
    expect(pid).toBeDefined();
    expect(isRunning(pid as number)).toBe(true);
    expect(existsSync(server.socketPath)).toBe(true);

    await server.stop();
    expect(isRunning(pid as number)).toBe(false);
    expect(existsSync(server.socketPath)).toBe(false);
    await server.stop(); // a second stop is harmless
  });

  it('refuses a second server on a data directory whose server is running, and the first keeps serving', async () => {
    const dir = tempDir();
    const first = await started({ dir });
    const second = new EmbeddedRedis({ dir });
    await expect(second.start()).rejects.toThrow(/another AutoBot/);
    const client = connect(first.socketPath);
    expect(await client.ping()).toBe('PONG');
  });

  it('starts over a stale socket left by a crashed server, with the data it had written', async () => {
    const dir = tempDir();
    const crashed = new EmbeddedRedis({ dir, persistence: true });
    await crashed.start();
    const client = connect(crashed.socketPath);
    // appendfsync everysec may lose the last second on a crash; fsync now by rewriting the AOF.
    await client.set('kept', 'yes');
    await client.bgrewriteaof();
    await waitFor(async () => (await client.info('persistence')).includes('aof_rewrite_in_progress:0'));
    client.disconnect();
    crashed.kill();
    await waitFor(async () => !isRunning(crashed.pid as number));
    expect(existsSync(crashed.socketPath)).toBe(true);

    const restarted = await started({ dir, persistence: true });
    expect(await connect(restarted.socketPath).get('kept')).toBe('yes');
  });

  it('takes over from the orphaned server of a crashed AutoBot, keeping its data', async () => {
    const dir = tempDir();
    const owner = spawn(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../../support/embedded-owner.ts'), dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(() => void owner.kill('SIGKILL'));
    const orphanPid = await new Promise<number>((resolve) => {
      let out = '';
      owner.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /READY (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
    });
    owner.kill('SIGKILL');
    await new Promise((r) => owner.once('exit', r));
    // Its redis-server lives on in its own process group, socket and all.
    expect(isRunning(orphanPid)).toBe(true);

    const next = await started({ dir, persistence: true });
    expect(isRunning(orphanPid)).toBe(false);
    expect(await connect(next.socketPath).get('written-before-crash')).toBe('yes');
  });

  it('refuses a data directory whose owner process still runs', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'owner.pid'), String(process.ppid));
    await expect(new EmbeddedRedis({ dir }).start()).rejects.toThrow(new RegExp(`another AutoBot \\(pid ${process.ppid}\\)`));
  });

  it('says how to install redis-server or set REDIS_URL when the binary is missing', async () => {
    const dir = tempDir();
    const server = new EmbeddedRedis({ dir, binary: path.join(dir, 'no-such-redis-server') });
    const err = await server.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RedisServerMissingError);
    expect((err as Error).name).toBe('RedisServerMissingError');
    expect((err as Error).message).toContain('apt-get install redis-server');
    expect((err as Error).message).toContain('REDIS_URL');
    expect(EmbeddedRedis.isInstalled(path.join(dir, 'no-such-redis-server'))).toBe(false);
    expect(EmbeddedRedis.isInstalled()).toBe(true);
  });

  it('kills a server that never becomes ready instead of leaving it running', async () => {
    const dir = tempDir();
    // Stands in for a redis-server that hangs at start: runs, never opens the socket.
    const hanging = path.join(dir, 'hanging-redis-server');
    writeFileSync(hanging, '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 });
    const server = new EmbeddedRedis({ dir, binary: hanging, startTimeoutMs: 200 });
    await expect(server.start()).rejects.toThrow(/did not answer/);
    expect(server.pid).toBeDefined();
    expect(isRunning(server.pid as number)).toBe(false);
  });

  it('refuses a data directory whose socket path would not fit a unix socket', () => {
    expect(() => new EmbeddedRedis({ dir: path.join(tmpdir(), 'x'.repeat(120)) })).toThrow(/longer than 107 bytes/);
  });
});

async function waitFor(check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('condition not met in time');
}

describe('checkEvictionPolicy', () => {
  function capture() {
    const entries: { level: number; msg: string; policy?: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        entries.push(JSON.parse(chunk.toString('utf8')) as (typeof entries)[number]);
        done();
      },
    });
    return { logger: pino({ level: 'info' }, sink), entries };
  }

  it('warns loudly when the server evicts keys (allkeys-lru)', async () => {
    const server = await started({ dir: tempDir(), persistence: false });
    const client = connect(server.socketPath);
    await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
    const { logger, entries } = capture();
    await expect(checkEvictionPolicy(client, logger)).resolves.toBe('allkeys-lru');
    const warnings = entries.filter((e) => e.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.policy).toBe('allkeys-lru');
    expect(warnings[0]?.msg).toContain('noeviction');
  });

  it('stays quiet with noeviction', async () => {
    const server = await started({ dir: tempDir(), persistence: false });
    const { logger, entries } = capture();
    await expect(checkEvictionPolicy(connect(server.socketPath), logger)).resolves.toBe('noeviction');
    expect(entries).toEqual([]);
  });

  it('warns that it could not check when CONFIG is refused (a managed Redis)', async () => {
    const server = await started({ dir: tempDir(), persistence: false });
    const admin = connect(server.socketPath);
    await admin.call('ACL', 'SETUSER', 'app', 'on', '>app-secret', '~*', '&*', '+@all', '-config');
    const limited = connect(server.socketPath, { username: 'app', password: 'app-secret' });
    const { logger, entries } = capture();
    await expect(checkEvictionPolicy(limited, logger)).resolves.toBeUndefined();
    expect(entries.filter((e) => e.level === 40).map((e) => e.msg)).toEqual([expect.stringContaining('noeviction')]);
  });
});
