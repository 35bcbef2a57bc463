// The proof that a module can be lifted: `config` runs in its own process, the other process reaches
// it through its HTTP binding, and the public REST surface does not change. Then the config process
// dies and comes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { freePort, spawnApp, type ChildApp } from '../support/process.js';
import { ADMIN_TOKEN, bearer } from '../support/test-auth.js';

const TOKEN = 'e2e-internal-token-0123456789';
let redis: TestRedis;
let dataDir: string;
let configApp: ChildApp;
let mainApp: ChildApp;
let configPort: number;

const startConfigProcess = () =>
  spawnApp({
    REDIS_URL: redis.url,
    PORT: String(configPort),
    AUTOBOT_MODULES: 'config',
    AUTOBOT_INTERNAL_TOKEN: TOKEN,
    AUTOBOT_DATA_DIR: dataDir,
    AUTOBOT_HEARTBEAT_MS: '300',
  });

beforeAll(async () => {
  redis = await startTestRedis();
  dataDir = mkdtempSync(path.join(tmpdir(), 'abe-'));
  configPort = await freePort();
  configApp = await startConfigProcess();
  mainApp = await spawnApp({
    REDIS_URL: redis.url,
    PORT: '0',
    AUTOBOT_MODULES: 'health,auth',
    AUTOBOT_REMOTE_MODULES: `config=http://127.0.0.1:${configPort}`,
    AUTOBOT_INTERNAL_TOKEN: TOKEN,
    AUTOBOT_DATA_DIR: dataDir,
    AUTOBOT_HEARTBEAT_MS: '300',
  });
}, 60_000);

afterAll(async () => {
  for (const app of [mainApp, configApp]) {
    if (app && app.child.exitCode === null) {
      app.child.kill('SIGTERM');
      await app.exited;
    }
  }
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const api = (p: string, init?: RequestInit) => fetch(`${mainApp.url}/api/v1${p}`, { ...init, headers: { ...bearer(ADMIN_TOKEN), ...init?.headers } });

type Health = { status: string; modules: Record<string, { status: string; where: string; detail?: string; breaker?: string }> };
const health = async () => (await (await fetch(`${mainApp.url}/api/v1/health`)).json()) as Health;

describe('config lifted into its own process', () => {
  it('reads and writes settings through the other process gateway', async () => {
    const read = await api('/config');
    expect(read.status).toBe(200);
    expect(((await read.json()) as { settings: Record<string, unknown> }).settings.health).toEqual({ checkTimeoutMs: 1500 });

    const patched = await api('/config', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ health: { checkTimeoutMs: 900 } }),
    });
    expect(patched.status).toBe(200);
    expect(((await patched.json()) as { settings: { health: unknown } }).settings.health).toEqual({ checkTimeoutMs: 900 });

    const bad = await api('/config', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ health: { checkTimeoutMs: 'soon' } }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string; details: { path: string }[] } }).error).toMatchObject({
      code: 'invalid_input',
      details: [{ path: 'health.checkTimeoutMs' }],
    });
  });

  it('reports config as remote and up', async () => {
    const h = await health();
    expect(h.modules.config).toMatchObject({ status: 'ok', where: 'remote' });
    expect(h.modules.health).toMatchObject({ status: 'ok', where: 'local' });
    // The catalogue's other modules run nowhere in this test: they, not config, make the whole degraded.
    const notOk = Object.entries(h.modules).filter(([, m]) => m.status !== 'ok').map(([id]) => id);
    expect(notOk).not.toContain('config');
    expect(h.status).toBe(notOk.length === 0 ? 'ok' : 'degraded');
  });

  it('lists both processes in the instance registry', async () => {
    const res = await api('/services');
    const body = (await res.json()) as { items: { module: string; where: string; health: string }[]; instances: { modules: string[] }[] };
    expect(body.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ module: 'config', where: 'remote', health: 'ok' }),
        expect.objectContaining({ module: 'health', where: 'local', health: 'ok' }),
      ]),
    );
    expect(body.instances.map((i) => i.modules.join(',')).sort()).toEqual(['config', 'health,auth']);
  });

  it('reports config down within seconds of its process dying, answers 503 fast, then recovers', async () => {
    configApp.child.kill('SIGKILL');
    await configApp.exited;

    await expect.poll(async () => (await health()).modules.config?.status, { timeout: 5000, interval: 100 }).toBe('down');
    expect((await health()).status).toBe('degraded');

    // Several failures open the breaker; from then on calls fail at once without touching the network.
    for (let i = 0; i < 4; i++) await api('/config');
    const res = await api('/config');
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('unavailable');
    expect((await health()).modules.config?.breaker).toBe('open');

    configApp = await startConfigProcess();
    await expect.poll(async () => (await api('/config')).status, { timeout: 15_000, interval: 250 }).toBe(200);
    await expect.poll(async () => (await health()).modules.config?.status, { timeout: 5000 }).toBe('ok');
    // The value written before the crash is still there: it lives in Redis, not in the process.
    const after = (await (await api('/config')).json()) as { settings: { health: unknown } };
    expect(after.settings.health).toEqual({ checkTimeoutMs: 900 });
  });
});
