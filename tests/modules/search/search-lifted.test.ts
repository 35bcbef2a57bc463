// `search` lifted into its own process: the other process hosts documents, embeddings, knowledge and
// the gateway. Documents uploaded to the front are indexed by the search process (which reads the chunks
// over the HTTP binding), and searched through the front's routes (the search port over HTTP) and
// through the search process's own routes; semantic and hybrid reach embeddings across the processes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SearchResult } from '../../../src/modules/search/contract.js';
import { spawnApp, type ChildApp } from '../../support/process.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, bearer, USER_TOKEN } from '../../support/test-auth.js';
import { INTERNAL_TOKEN } from '../../support/app.js';
import { api, eventually, uploadIndexed } from './support/search-app.js';

const script = path.resolve(import.meta.dirname, 'support/search-server.ts');
let redis: TestRedis;
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

async function start(modules: string): Promise<ChildApp> {
  const dir = mkdtempSync(path.join(tmpdir(), 'abs-'));
  dirs.push(dir);
  const app = await spawnApp(
    { REDIS_URL: redis.url, AUTOBOT_DATA_DIR: dir, PORT: '0', AUTOBOT_INTERNAL_TOKEN: INTERNAL_TOKEN, AUTOBOT_MODULES: modules, AUTOBOT_HEARTBEAT_MS: '200' },
    { script, timeoutMs: 40_000 },
  );
  children.push(app);
  return app;
}

it('indexes and answers from a process of its own', async () => {
  const searchProc = await start('search');
  const front = await start('config,files,documents,embeddings,accelerator,llm,knowledge');
  const until = Date.now() + 20_000;
  for (;;) {
    const res = await fetch(`${front.url}/api/v1/services`, { headers: bearer(ADMIN_TOKEN) });
    const text = res.ok ? await res.text() : '';
    if (text.includes(searchProc.url)) break;
    if (Date.now() > until) throw new Error(`front does not see the search process: ${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const [mine] = await uploadIndexed(front.url, USER_TOKEN, [{ name: 'lighthouse.md', content: '# Lighthouse keeping\n\nThe lighthouse lamp is cleaned every morning at dawn.' }]);
  const [theirs] = await uploadIndexed(front.url, ADMIN_TOKEN, [{ name: 'lighthouse-budget.md', content: '# Lighthouse budget\n\nThe lighthouse repair budget is secret.' }]);
  for (const url of [front.url, searchProc.url]) {
    const r = await eventually(
      () => api<{ items: SearchResult[]; degraded?: true }>(url, USER_TOKEN, 'POST', '/search/documents', { query: 'lighthouse lamp' }),
      (x) => x.status === 200 && x.body.items.length > 0,
      20_000,
    );
    expect(r.body.degraded).toBeUndefined();
    expect(r.body.items[0]).toMatchObject({ sourceType: 'document', sourceId: mine!.id, title: 'lighthouse.md' });
    expect(r.body.items.some((i) => i.sourceId === theirs!.id)).toBe(false);
    const sem = await api<{ items: SearchResult[] }>(url, USER_TOKEN, 'POST', '/search/semantic', { query: 'lighthouse repair budget' });
    expect(sem.status).toBe(200);
    expect(sem.body.items.map((i) => i.sourceId)).toEqual([mine!.id]);
  }
  // The admin, as owner, finds theirs through the front.
  await eventually(
    () => api<{ items: SearchResult[] }>(front.url, ADMIN_TOKEN, 'POST', '/search/documents', { query: 'repair budget', mode: 'keyword' }),
    (x) => x.body.items.some((i) => i.sourceId === theirs!.id),
    20_000,
  );
}, 120_000);
