// The browser module lifted into its own process, as on the seed's browser host: process A serves the
// REST surface (config, health) and reaches `browser` over HTTP; process B hosts only `browser`, runs
// Chromium, and reads its settings from A's config. Everything a user does goes through A.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnApp, type ChildApp } from '../../support/process.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, USER_TOKEN } from '../../support/test-auth.js';
import { startForbiddenServer, startSite, type CountingServer, type SiteServer } from './web-fixtures.js';

const INTERNAL_TOKEN = 'browser-remote-internal-token-01';

let redis: TestRedis;
let site: SiteServer;
let forbidden: CountingServer;
let a: ChildApp;
let b: ChildApp;
const dataDirs: string[] = [];

function start(env: Record<string, string>): Promise<ChildApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'abbr-'));
  dataDirs.push(dataDir);
  return spawnApp({ REDIS_URL: redis.url, AUTOBOT_INTERNAL_TOKEN: INTERNAL_TOKEN, AUTOBOT_DATA_DIR: dataDir, ...env }, { timeoutMs: 40_000 });
}

const api = (path: string, init: RequestInit & { token?: string } = {}) =>
  fetch(`${a.url}/api/v1${path}`, {
    ...init,
    headers: { authorization: `Bearer ${init.token ?? USER_TOKEN}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
  });

/** Names of the direct children of a process. */
function childrenOf(pid: number): string[] {
  try {
    return execFileSync('ps', ['-o', 'comm=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

beforeAll(async () => {
  redis = await startTestRedis();
  forbidden = await startForbiddenServer();
  site = await startSite(forbidden.port);
  const [portA, portB] = [await freePort(), await freePort()];
  a = await start({ PORT: String(portA), AUTOBOT_MODULES: 'config,health', AUTOBOT_REMOTE_MODULES: `browser=http://127.0.0.1:${portB}` });
  b = await start({ PORT: String(portB), AUTOBOT_MODULES: 'browser', AUTOBOT_REMOTE_MODULES: `config=http://127.0.0.1:${portA}` });
  const patched = await api('/config', { method: 'PATCH', token: ADMIN_TOKEN, body: JSON.stringify({ browser: { allowHosts: [`127.0.0.1:${site.port}`] } }) });
  expect(patched.status).toBe(200);
  // B hears of the change through config.settings.changed (Redis), not from A directly.
  const end = Date.now() + 20_000;
  for (;;) {
    const r = await api('/browser/fetch', { method: 'POST', body: JSON.stringify({ url: `${site.url}/article` }) });
    if (r.status === 200) break;
    if (Date.now() > end) throw new Error(`the allow-list never reached process B: ${r.status} ${await r.text()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}, 90_000);

afterAll(async () => {
  for (const child of [b, a]) {
    if (child && child.child.exitCode === null) {
      child.child.kill('SIGTERM');
      await child.exited;
    }
  }
  await site?.close();
  await forbidden?.close();
  await redis?.stop();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

describe('browser in its own process', () => {
  it('is remote for the gateway process, and Chromium runs in the browser process only', async () => {
    const health = (await (await fetch(`${a.url}/api/v1/health`)).json()) as { modules: Record<string, { where: string; status: string }> };
    expect(health.modules.browser).toMatchObject({ where: 'remote', status: 'ok' });
    expect(childrenOf(b.child.pid!).some((c) => c.includes('chrom'))).toBe(true);
    expect(childrenOf(a.child.pid!).some((c) => c.includes('chrom'))).toBe(false);
  });

  it('reads a page, drives a session and answers a PNG screenshot through the gateway of the other process', async () => {
    const fetched = await api('/browser/fetch', { method: 'POST', body: JSON.stringify({ url: `${site.url}/article` }) });
    const page = (await fetched.json()) as { title: string; markdown: string };
    expect(page.title).toBe('Reading with AutoBot');
    expect(page.markdown).toContain('**bold words**');

    const { id } = (await (await api('/browser/sessions', { method: 'POST' })).json()) as { id: string };
    const nav = await api(`/browser/sessions/${id}/navigate`, { method: 'POST', body: JSON.stringify({ url: `${site.url}/form` }) });
    expect(await nav.json()).toEqual({ url: `${site.url}/form`, title: 'Form', status: 200 });
    await api(`/browser/sessions/${id}/actions`, { method: 'POST', body: JSON.stringify({ action: 'fill', selector: '#name', value: 'Remote' }) });
    await api(`/browser/sessions/${id}/actions`, { method: 'POST', body: JSON.stringify({ action: 'click', selector: '#go' }) });
    const text = (await (await api(`/browser/sessions/${id}/content?format=text`)).json()) as { content: string };
    expect(text.content).toContain('Hello Remote in red');
    const shot = await api(`/browser/sessions/${id}/screenshot`);
    expect(shot.status).toBe(200);
    expect(shot.headers.get('content-type')).toBe('image/png');
    expect(PNG.sync.read(Buffer.from(await shot.arrayBuffer())).width).toBe(1280);
    // The actor crossed the wire: the admin is another user and does not see the user's session.
    expect((await api(`/browser/sessions/${id}/content`, { token: ADMIN_TOKEN })).status).toBe(404);
    expect((await api(`/browser/sessions/${id}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('keeps the SSRF guard in the browser process: 403 and no connection', async () => {
    for (const url of [`http://127.0.0.1:${forbidden.port}/`, `${site.url}/redirect?to=${encodeURIComponent(`http://[::ffff:127.0.0.1]:${forbidden.port}/`)}`]) {
      const r = await api('/browser/fetch', { method: 'POST', body: JSON.stringify({ url }) });
      expect(r.status, url).toBe(403);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    }
    expect(forbidden.connections()).toBe(0);
  });
});
