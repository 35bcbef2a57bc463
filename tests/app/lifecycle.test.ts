// The whole program as an operator meets it: embedded Redis that starts, persists and goes away with
// the app; a graceful shutdown that drains; a bad setting that stops the start with a clear message.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startTestApp, type TestApp } from '../support/app.js';
import { spawnApp, freePort } from '../support/process.js';
import { ADMIN_TOKEN, bearer } from '../support/test-auth.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A process as this test saw it: its pid and its start time (pids are reused, 32,768 of them here). */
interface Proc {
  pid: number;
  start: string;
}

/** Field 22 of /proc/<pid>/stat (start time), and its state; undefined once the pid is free. */
function stat(pid: number): { start: string; state: string } | undefined {
  try {
    // "pid (comm) state ppid …": the fields after the command name, state first.
    const line = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = line.slice(line.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, start: fields[19]! };
  } catch {
    return undefined;
  }
}

function proc(pid: number): Proc {
  return { pid, start: stat(pid)?.start ?? '' };
}

/** Processes working in `dir` (Linux /proc); redis-server rewrites its command line, not its cwd. */
function processesIn(dir: string): Proc[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readlinkSync(`/proc/${d}/cwd`) === dir;
      } catch {
        return false;
      }
    })
    .map((d) => proc(Number(d)));
}

/**
 * Still running: its pid not freed, not taken by a newer process (the whole suite starts thousands),
 * and not a zombie nobody has reaped yet.
 */
function running(p: Proc): boolean {
  const now = stat(p.pid);
  return now !== undefined && now.start === p.start && now.state !== 'Z';
}

/**
 * AutoBot as an operator starts it (`src/main.ts` under tsx, or `command`, e.g. `npm start`) on a free
 * port with a data dir of its own, once `readyLine` shows; killed after the test if still running. Also
 * answers its embedded Redis (redis-server works in `<dataDir>/redis`).
 */
async function startAutoBot(readyLine: RegExp, opts: { command?: [string, ...string[]]; timeoutMs?: number } = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'abs-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const app = await spawnApp(
    { AUTOBOT_DATA_DIR: dataDir, PORT: String(await freePort()), LOG_LEVEL: 'info' },
    { script: path.resolve(import.meta.dirname, '../../src/main.ts'), readyLine, ...opts },
  );
  cleanups.push(() => {
    if (app.child.exitCode === null) app.child.kill('SIGKILL');
  });
  return { app, dataDir, redis: processesIn(path.join(dataDir, 'redis')) };
}

describe('embedded Redis', () => {
  it('starts with the app, keeps data across a restart of the app, and is gone after shutdown', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'abm-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const env = { AUTOBOT_DATA_DIR: dataDir };

    const first: TestApp = await startTestApp({ env });
    const socket = path.join(dataDir, 'redis', 'redis.sock');
    expect(existsSync(socket)).toBe(true);
    const health = (await (await fetch(`${first.url}/api/v1/health`)).json()) as { dependencies: { redis: { detail: string } } };
    expect(health.dependencies.redis.detail).toMatch(/^embedded/);
    const patch = await fetch(`${first.url}/api/v1/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', ...bearer(ADMIN_TOKEN) },
      body: JSON.stringify({ health: { checkTimeoutMs: 1234 } }),
    });
    expect(patch.status).toBe(200);
    // startTestApp removes its data dir on stop; stop the server only, to keep the data for the restart.
    await first.runtime.stop();
    first.gateway.server.close();
    expect(existsSync(socket)).toBe(false);

    const second = await startTestApp({ env });
    cleanups.push(() => second.stop());
    const read = (await (await fetch(`${second.url}/api/v1/config`, { headers: bearer(ADMIN_TOKEN) })).json()) as {
      settings: { health: { checkTimeoutMs: number } };
    };
    expect(read.settings.health.checkTimeoutMs).toBe(1234);
  });
});

describe('graceful shutdown', () => {
  it('lets an in-flight request finish, refuses new connections, and stops', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'abg-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const app = await startTestApp({ env: { AUTOBOT_DATA_DIR: dataDir } });
    // /probe/slow has a 200 ms route deadline; 150 ms of work finishes inside it.
    const inFlight = fetch(`${app.url}/api/v1/probe/slow`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ms: 150 }),
    });
    // In flight once the server has it (a fixed wait raced the connection on a busy machine: ECONNRESET).
    while (app.gateway.inFlight() === 0) await new Promise((r) => setTimeout(r, 2));
    const stopping = app.stop();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { aborted: boolean }).aborted).toBe(false);
    await stopping;
    await expect(fetch(`${app.url}/api/v1/health/live`)).rejects.toThrow();
  });

  it('exits 0 on SIGTERM and takes its embedded Redis down with it', async () => {
    const { app, dataDir, redis } = await startAutoBot(/"url":"(http[^"]+)".*AutoBot is ready/);
    expect((await fetch(`${app.url}/api/v1/health/ready`)).status).toBe(200);
    const socket = path.join(dataDir, 'redis', 'redis.sock');
    expect(redis).toHaveLength(1);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(redis.filter(running)).toEqual([]);
    expect(app.output()).toContain('stopped');
  });

  it('stops cleanly on a SIGTERM that comes while it is still starting', async () => {
    // Ready, for this test, as soon as its Redis runs: the modules have not started yet.
    const { app, redis } = await startAutoBot(/embedded Redis started/);
    expect(redis).toHaveLength(1);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
    expect(redis.filter(running)).toEqual([]);
    expect(app.output()).toContain('"msg":"stopped"');
  });

  it('stops the same way when a process manager sends SIGTERM to `npm start`', async () => {
    // npm passes the signal on to its script's process; a shell between them would die of it and leave
    // AutoBot and its Redis running, orphaned, on the port. (Builds dist/ first when it is missing.)
    const { app, redis } = await startAutoBot(/AutoBot is ready/, { command: ['npm', 'start'], timeoutMs: 120_000 });
    // npm's child: AutoBot logs its own pid.
    const autobot = proc(Number(/"pid":(\d+).*AutoBot is ready/.exec(app.output())![1]));
    cleanups.push(() => {
      for (const p of [autobot, ...redis]) if (running(p)) process.kill(p.pid, 'SIGKILL');
    });
    expect(redis).toHaveLength(1);
    app.child.kill('SIGTERM');
    await app.exited;
    const deadline = Date.now() + 30_000;
    const done = () => ![autobot, ...redis].some(running) && app.output().includes('"msg":"stopped"');
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const alive = { autobot: running(autobot), redis: redis.filter(running) };
    expect(alive, app.output().split('\n').slice(-15).join('\n')).toEqual({ autobot: false, redis: [] });
    expect(app.output()).toContain('"msg":"stopped"');
  }, 150_000);
});

describe('start-up errors', () => {
  it('exits with a message naming a bad variable', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../../src/main.ts')], {
      env: { PATH: process.env.PATH ?? '', PORT: 'not-a-port' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(err).toMatch(/Invalid configuration:\n\s+- PORT: /);
  });

  it('says how to install redis-server or set REDIS_URL when it is missing', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../../src/main.ts')], {
      // A PATH without redis-server (node itself is started by absolute path).
      env: { PATH: '/nonexistent', AUTOBOT_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'abn-')), LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(out).toContain('apt-get install redis-server');
    expect(out).toContain('REDIS_URL');
  });
});
