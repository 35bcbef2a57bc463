// Several AutoBot processes on one private Redis, each hosting the modules it is given (AUTOBOT_MODULES)
// and reaching the others over HTTP: the harness of the "module lifted into its own process" tests.
// Each process gets its own data directory, so a module's files live only where it is hosted.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { INTERNAL_TOKEN } from './app.js';
import { spawnApp, type ChildApp } from './process.js';
import { startTestRedis, type TestRedis } from './redis.js';
import { ADMIN_TOKEN, bearer } from './test-auth.js';

export interface LiftedProcesses {
  /** Starts `script` hosting `modules` (comma-separated), with `env` besides (e.g. OLLAMA_URL). */
  start(modules: string, env?: Record<string, string>): Promise<ChildApp>;
  /** Waits until `front`'s instance registry lists every one of `others`. */
  waitUntilSeen(front: ChildApp, others: ChildApp[], timeoutMs?: number): Promise<void>;
}

/** Registers the suite's hooks: a private Redis before all, every process killed and cleaned after all. */
export function liftedProcesses(script: string): LiftedProcesses {
  let redis: TestRedis | undefined;
  const dirs: string[] = [];
  const children: ChildApp[] = [];
  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterAll(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await redis?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return {
    async start(modules, env = {}) {
      if (!redis) throw new Error('start() runs inside a test, after beforeAll');
      const dir = mkdtempSync(path.join(tmpdir(), 'abl-'));
      dirs.push(dir);
      const app = await spawnApp(
        { REDIS_URL: redis.url, AUTOBOT_DATA_DIR: dir, PORT: '0', AUTOBOT_INTERNAL_TOKEN: INTERNAL_TOKEN, AUTOBOT_MODULES: modules, AUTOBOT_HEARTBEAT_MS: '200', ...env },
        { script, timeoutMs: 40_000 },
      );
      children.push(app);
      return app;
    },
    async waitUntilSeen(front, others, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const res = await fetch(`${front.url}/api/v1/services`, { headers: bearer(ADMIN_TOKEN) });
        const text = res.ok ? await res.text() : '';
        if (others.every((o) => text.includes(o.url))) return;
        if (Date.now() > until) throw new Error(`${front.url} does not see ${others.map((o) => o.url).join(', ')}: ${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}
