// POST /browser/fetch of a local page (REST, authentication, SSRF guard proxy, a fresh browser context,
// Readability + Turndown) against Playwright alone reading the same page with the same Chromium, in the
// same process and run, rounds alternating so machine drift hits both alike. Two baselines: Playwright
// with a fresh context per read (the isolation AutoBot gives every read) and with one reused page.
import 'reflect-metadata';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright';
import { startServer } from '../../src/app/server.js';
import { loadConfig } from '../../src/kernel/config/app-config.js';
import { createLogger } from '../../src/kernel/log/logger.js';
import { authModule } from '../../src/modules/auth/module.js';
import { browserModule, chromiumPath } from '../../src/modules/browser/module.js';
import { configModule } from '../../src/modules/config/module.js';
import { healthModule } from '../../src/modules/health/module.js';
import { fmt, percentile, rows } from '../lib.js';

const PASSWORD = 'bench-admin-password';
const ROUNDS = 30;
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Bench article</title></head><body>
<nav><a href="/">Home</a></nav><article><h1>Bench article</h1>
${Array.from({ length: 40 }, (_, i) => `<p>Paragraph ${i}: a page of ordinary length with <a href="/l${i}">links</a> and <em>emphasis</em>, read as Markdown.</p>`).join('\n')}
</article><footer>footer</footer></body></html>`;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function run(): Promise<void> {
  const site = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE));
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', () => resolve()));
  const pageUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/article`;

  const dataDir = mkdtempSync(path.join(tmpdir(), 'abbb-'));
  const config = loadConfig({
    PORT: '0',
    AUTOBOT_DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    AUTOBOT_ADMIN_PASSWORD: PASSWORD,
    AUTOBOT_RATE_LIMITS: JSON.stringify({ default: { points: 10_000_000, durationS: 60 }, expensive: { points: 10_000_000, durationS: 60 }, auth: { points: 1000, durationS: 60 } }),
  });
  const server = await startServer({ config, catalogue: [configModule, healthModule, authModule, browserModule], logger: createLogger('silent') });
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: FLAGS });
  try {
    const login = await fetch(`${server.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
    const { accessToken } = (await login.json()) as { accessToken: string };
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` };
    const patched = await fetch(`${server.url}/api/v1/config`, { method: 'PATCH', headers, body: JSON.stringify({ browser: { allowHosts: [new URL(pageUrl).host] } }) });
    if (!patched.ok) throw new Error(`cannot allow-list the bench page: ${patched.status}`);

    const viaApi = async () => {
      const r = await fetch(`${server.url}/api/v1/browser/fetch`, { method: 'POST', headers, body: JSON.stringify({ url: pageUrl }) });
      const body = (await r.json()) as { markdown?: string };
      if (!r.ok || !body.markdown?.includes('Paragraph 39')) throw new Error(`unexpected answer ${r.status}: ${JSON.stringify(body).slice(0, 200)}`);
    };
    const freshContext = async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(pageUrl, { waitUntil: 'load' });
      const html = await page.content();
      await context.close();
      if (!html.includes('Paragraph 39')) throw new Error('baseline read failed');
    };
    const reused = await (await browser.newContext()).newPage();
    const reusedPage = async () => {
      await reused.goto(pageUrl, { waitUntil: 'load' });
      if (!(await reused.content()).includes('Paragraph 39')) throw new Error('baseline read failed');
    };

    // Warm-up, and until the allow-list has reached the module (config.settings.changed).
    for (let i = 0; ; i++) {
      try {
        await viaApi();
        break;
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (let i = 0; i < 5; i++) {
      await viaApi();
      await freshContext();
      await reusedPage();
    }
    const api: number[] = [];
    const fresh: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      api.push(await timed(viaApi));
      fresh.push(await timed(freshContext));
      warm.push(await timed(reusedPage));
    }
    const p50 = percentile(api, 50);
    const freshP50 = percentile(fresh, 50);
    const warmP50 = percentile(warm, 50);
    rows.push({
      name: `POST /api/v1/browser/fetch of a local page, p50 of ${ROUNDS} (ms; ratio against Playwright with a fresh context per read)`,
      autobot: fmt(p50),
      baseline: `${fmt(freshP50)} (Playwright, new context + goto + content); ${fmt(warmP50)} (Playwright, one reused page)`,
      ratio: `${fmt(p50 / freshP50, 2)}x (${fmt(p50 / warmP50, 2)}x vs reused page)`,
      target: 'measured (no target in the issue)',
      met: true,
    });
  } finally {
    await browser.close();
    await server.stop();
    await new Promise<void>((resolve) => site.close(() => resolve()));
    rmSync(dataDir, { recursive: true, force: true });
  }
}
