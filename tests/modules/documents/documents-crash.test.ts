// Nothing is lost on a crash: 50 documents are uploaded, the process running the pipeline is killed
// with SIGKILL while they are in it, a fresh process starts on the same Redis and data directory, and
// every document ends indexed, each with exactly its chunks and one vector per chunk.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { DocumentView } from '../../../src/modules/documents/contract.js';
import { spawnApp, type ChildApp } from '../../support/process.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, bearer, USER_TOKEN } from '../../support/test-auth.js';
import { formData } from '../../support/fixtures/multipart.js';
import { markdownFixture } from '../../support/fixtures/documents.js';
import { INTERNAL_TOKEN } from '../../support/app.js';

const script = path.resolve(import.meta.dirname, 'support/ingest-server.ts');
let redis: TestRedis;
let dataDir: string;
const children: ChildApp[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  dataDir = mkdtempSync(path.join(tmpdir(), 'abd-'));
});
afterEach(() => {
  for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
});
afterAll(async () => {
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function start(): Promise<ChildApp> {
  const app = await spawnApp(
    { REDIS_URL: redis.url, AUTOBOT_DATA_DIR: dataDir, PORT: '0', AUTOBOT_INTERNAL_TOKEN: INTERNAL_TOKEN, AUTOBOT_RATE_LIMITS: JSON.stringify({ default: { points: 100000, durationS: 60 } }) },
    { script, timeoutMs: 30_000 },
  );
  children.push(app);
  return app;
}

async function json<T>(res: Response): Promise<T> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

async function listAll(url: string): Promise<DocumentView[]> {
  return (await json<{ items: DocumentView[] }>(await fetch(`${url}/api/v1/documents?limit=100`, { headers: bearer(USER_TOKEN) }))).items;
}

it('finishes every document after the process running the pipeline is killed mid-way', async () => {
  // Settings are read when the pipeline starts: set them, then start the process that will be killed.
  const first = await start();
  const patch = await fetch(`${first.url}/api/v1/config`, {
    method: 'PATCH',
    headers: { ...bearer(ADMIN_TOKEN), 'content-type': 'application/json' },
    // Short job leases so the survivor takes over quickly; small batches so the pipeline is long.
    body: JSON.stringify({ documents: { jobLockMs: 1000, stalledCheckMs: 300, concurrency: 2, embedBatchSize: 4, chunkSize: 500, chunkOverlap: 50 } }),
  });
  expect(patch.status).toBe(200);
  first.child.kill('SIGTERM');
  await first.exited;

  const doomed = await start();
  const files = Array.from({ length: 50 }, (_, i) => ({ name: `doc-${i}.md`, content: markdownFixture(i, 5000) }));
  const uploaded: DocumentView[] = [];
  for (let i = 0; i < files.length; i += 10) {
    const res = await fetch(`${doomed.url}/api/v1/documents/upload`, { method: 'POST', headers: bearer(USER_TOKEN), body: formData(files.slice(i, i + 10)) });
    expect(res.status).toBe(202);
    uploaded.push(...(await json<{ items: DocumentView[] }>(res)).items);
  }
  expect(new Set(uploaded.map((d) => d.id)).size).toBe(50);

  // Kill it while the documents are in the pipeline: some done, most not.
  const until = Date.now() + 30_000;
  let snapshot: DocumentView[] = [];
  for (;;) {
    snapshot = await listAll(doomed.url);
    if (snapshot.filter((d) => d.status === 'indexed').length >= 3) break;
    if (Date.now() > until) throw new Error('the pipeline did not get going');
    await new Promise((r) => setTimeout(r, 20));
  }
  doomed.child.kill('SIGKILL');
  await doomed.exited;
  const indexedAtKill = snapshot.filter((d) => d.status === 'indexed').length;
  expect(indexedAtKill).toBeLessThan(50);
  expect(snapshot.some((d) => ['parsing', 'chunking', 'embedding'].includes(d.status))).toBe(true);

  const survivor = await start();
  const deadline = Date.now() + 90_000;
  let docs: DocumentView[] = [];
  for (;;) {
    docs = await listAll(survivor.url);
    if (docs.length === 50 && docs.every((d) => d.status === 'indexed' || d.status === 'failed')) break;
    if (Date.now() > deadline) throw new Error(`not finished: ${JSON.stringify(docs.filter((d) => d.status !== 'indexed').map((d) => [d.name, d.status, d.progress]))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(docs.filter((d) => d.status !== 'indexed').map((d) => [d.name, d.error])).toEqual([]);

  for (const d of docs) {
    const chunks = await json<{ items: { seq: number }[] }>(await fetch(`${survivor.url}/api/v1/documents/${d.id}/chunks?limit=1000`, { headers: bearer(USER_TOKEN) }));
    expect(chunks.items.map((c) => c.seq)).toEqual(Array.from({ length: d.chunkCount }, (_, i) => i));
    const vectors = await json<{ items: { id: string; metadata: { documentId: string } }[] }>(
      await fetch(`${survivor.url}/api/v1/embeddings/search`, {
        method: 'POST',
        headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json' },
        body: JSON.stringify({ collection: 'documents', query: 'river engine', topK: 200, filter: { documentIds: [d.id] } }),
      }),
    );
    const ids = vectors.items.map((v) => v.id);
    expect([d.name, ids.length, new Set(ids).size]).toEqual([d.name, d.chunkCount, d.chunkCount]);
  }
  survivor.child.kill('SIGTERM');
  await survivor.exited;
}, 180_000);
