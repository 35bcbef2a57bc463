// Vectors outlive the process and are shared between instances: a restarted AutoBot searches what the
// previous one stored without asking any provider again, and a second instance on the same Redis sees
// a vector written by the first within a second (through the change log every instance follows).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinEmbed } from '../../../src/modules/embeddings/builtin-embedder.js';
import type { Port } from '../../../src/kernel/contract/define.js';
import { embeddingsContract } from '../../../src/modules/embeddings/contract.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import type { TestApp } from '../../support/app.js';
import { startFakeOllama, type FakeOllama } from '../../support/fake-ollama.js';
import { setEmbeddingsSettings, startEmbeddingsApp } from './embeddings-app.js';

const port = (app: TestApp) => app.runtime.port(embeddingsContract) as Port<typeof embeddingsContract>;

describe('embeddings durability and sharing', () => {
  let redis: TestRedis;
  let ollama: FakeOllama;
  const apps: TestApp[] = [];

  beforeAll(async () => {
    redis = await startTestRedis({ persistence: true });
    ollama = await startFakeOllama();
  });
  afterAll(async () => {
    for (const a of apps) await a.stop().catch(() => undefined);
    await ollama?.close();
    await redis?.stop();
  });

  const start = async (env: Record<string, string> = {}) => {
    const app = await startEmbeddingsApp(redis.url, ollama.url, env);
    apps.push(app);
    return app;
  };
  const embedRequests = () => ollama.requests.filter((r) => r.path === '/api/embed').length;

  it('reloads every vector after a restart and searches it without re-embedding', async () => {
    const first = await start();
    await setEmbeddingsSettings(first, { documentsProvider: 'ollama' });
    const items = Array.from({ length: 300 }, (_, i) => ({
      id: `doc-r:${i}`,
      text: `restart survivor paragraph ${i} about ${i % 2 ? 'glaciers' : 'deserts'}`,
      metadata: { ownerId: 'u-r', documentId: 'doc-r', tags: [i % 2 ? 'ice' : 'sand'] },
    }));
    for (let i = 0; i < items.length; i += 100) await port(first).upsert({ collection: 'documents', items: items.slice(i, i + 100) });
    const query = (await port(first).generate({ texts: ['glaciers'], model: 'nomic-embed-text' })).embeddings[0]!;
    const before = await port(first).search({ collection: 'documents', vector: query, topK: 5, filter: { tags: ['ice'] } });
    expect(before.items).toHaveLength(5);
    await first.stop();
    apps.splice(apps.indexOf(first), 1);

    const calls = embedRequests();
    const second = await start();
    const after = await port(second).search({ collection: 'documents', vector: query, topK: 5, filter: { tags: ['ice'] } });
    expect(after).toEqual(before);
    const listed = (await port(second).listCollections({})).items.find((c) => c.collection === 'documents')!;
    expect(listed).toMatchObject({ vectors: 300, model: 'nomic-embed-text', dimensions: 768 });
    // Not one text went to the provider to get there.
    expect(embedRequests()).toBe(calls);
    await second.stop();
    apps.splice(apps.indexOf(second), 1);
  });

  it('finds at once every vector of upserts made together into an empty collection', async () => {
    // Each first write finds no index and makes one: made together, each used to replace the one before,
    // and the vectors put into a replaced index were missing here until the change log came round.
    const own = await startTestRedis();
    const app = await startEmbeddingsApp(own.url, ollama.url);
    try {
      const docs = Array.from({ length: 6 }, (_, d) => `doc-t${d}`);
      await Promise.all(
        docs.map((documentId) =>
          port(app).upsert({ collection: 'documents', items: [{ id: `${documentId}:1`, text: `together ${documentId}`, metadata: { ownerId: 'u-t', documentId } }] }),
        ),
      );
      const found = await Promise.all(
        docs.map(async (documentId) => (await port(app).search({ collection: 'documents', query: 'together', topK: 10, filter: { documentIds: [documentId] } })).items.length),
      );
      expect(found).toEqual(docs.map(() => 1));
    } finally {
      await app.stop();
      await own.stop();
    }
  });

  it('lets a second instance see vectors written by the first within a second', async () => {
    const a = await start();
    const b = await start();
    await port(b).search({ collection: 'facts', query: 'warm up', topK: 1 });
    for (let round = 0; round < 3; round++) {
      const id = `shared-fact-${round}`;
      await port(a).upsert({ collection: 'facts', items: [{ id, text: `albatross wingspan record ${round}`, metadata: { ownerId: 'u-s', documentId: `d-${round}` } }] });
      const written = Date.now();
      await expect
        .poll(async () => (await port(b).search({ collection: 'facts', query: `albatross wingspan record ${round}`, topK: 1, filter: { ownerId: 'u-s' } })).items[0]?.id, {
          timeout: 1000,
          interval: 20,
        })
        .toBe(id);
      expect(Date.now() - written).toBeLessThan(1000);
      // Metadata changes and removals travel the same way.
      await port(a).setMetadata({ collection: 'facts', documentId: `d-${round}`, patch: { tags: ['seen'] } });
      await expect
        .poll(async () => (await port(b).search({ collection: 'facts', query: 'albatross', topK: 5, filter: { tags: ['seen'], documentIds: [`d-${round}`] } })).items.length, {
          timeout: 1000,
          interval: 20,
        })
        .toBe(1);
      await port(a).remove({ collection: 'facts', documentId: `d-${round}` });
      await expect
        .poll(async () => (await port(b).search({ collection: 'facts', query: 'albatross', topK: 5, filter: { documentIds: [`d-${round}`] } })).items.length, {
          timeout: 1000,
          interval: 20,
        })
        .toBe(0);
    }
    // A reset by one instance empties the collection on the other too.
    await port(b).upsert({ collection: 'facts', items: [{ id: 'to-reset', text: 'soon gone', metadata: { ownerId: 'u-s' } }] });
    await port(b).resetCollection({ collection: 'facts' });
    await expect.poll(async () => (await port(a).search({ collection: 'facts', query: 'soon gone', topK: 5 })).items.length, { timeout: 1000, interval: 20 }).toBe(0);
    for (const x of [a, b]) {
      await x.stop();
      apps.splice(apps.indexOf(x), 1);
    }
  });

  it('restarts with the saved graph, brought up to date with what changed while it was down', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'abg-'));
    try {
      // Distinct wording per item: near-duplicate texts would test HNSW's approximation, not the snapshot.
      const words = ['amber', 'basalt', 'cedar', 'delta', 'ember', 'fjord', 'garnet', 'harbor', 'indigo', 'juniper', 'kelp', 'lagoon', 'meadow', 'nectar', 'onyx', 'prairie', 'quartz', 'ravine', 'sierra', 'tundra'];
      const text = (i: number) => `${words[i % 20]} ${words[Math.floor(i / 20) % 20]} ${words[(i * 7 + 3) % 20]}-${i} ${['heron', 'otter', 'badger', 'lynx'][i % 4]}`;
      const first = await start({ AUTOBOT_DATA_DIR: dataDir });
      await setEmbeddingsSettings(first, { exactSearchBelow: 100 });
      const items = Array.from({ length: 300 }, (_, i) => ({ id: `g:${i}`, text: text(i), metadata: { ownerId: 'u-g' } }));
      for (let i = 0; i < 300; i += 100) await port(first).upsert({ collection: 'facts', items: items.slice(i, i + 100) });
      await expect.poll(async () => (await port(first).listCollections({})).items.find((c) => c.collection === 'facts')!.index, { timeout: 10_000 }).toBe('hnsw');
      await first.stop();
      apps.splice(apps.indexOf(first), 1);
      expect(existsSync(path.join(dataDir, 'embeddings', 'graphs', 'facts.json'))).toBe(true);

      // While it is down, another instance removes, replaces and adds vectors.
      const other = await start();
      await port(other).remove({ collection: 'facts', ids: Array.from({ length: 40 }, (_, i) => `g:${i}`) });
      const changed = Array.from({ length: 20 }, (_, i) => ({ id: `g:${100 + i}`, text: `replaced ${i} kingfisher wetland`, metadata: { ownerId: 'u-g' } }));
      const added = Array.from({ length: 30 }, (_, i) => ({ id: `g:new:${i}`, text: `added ${i} kingfisher river`, metadata: { ownerId: 'u-g' } }));
      await port(other).upsert({ collection: 'facts', items: [...changed, ...added] });
      await other.stop();
      apps.splice(apps.indexOf(other), 1);

      const second = await start({ AUTOBOT_DATA_DIR: dataDir });
      const listed = (await port(second).listCollections({})).items.find((c) => c.collection === 'facts')!;
      expect(listed).toMatchObject({ index: 'hnsw', graphFromSnapshot: true, vectors: 290 });
      // What the graph answers is what an exact scan of the current vectors answers.
      const current = [...items.slice(40).filter((i) => !changed.some((c) => c.id === i.id)), ...changed, ...added];
      for (const query of ['kingfisher wetland', 'amber cedar otter', 'tundra quartz lynx']) {
        const q = Array.from(builtinEmbed(query));
        const exact = current
          .map((i) => ({ id: i.id, score: Array.from(builtinEmbed(i.text)).reduce((s, x, d) => s + x * q[d]!, 0) }))
          .sort((a, b) => b.score - a.score)
          .slice(0, 5);
        const got = await port(second).search({ collection: 'facts', query, topK: 5, filter: { ownerId: 'u-g' } });
        expect(got.items.map((i) => i.score)).toEqual(exact.map((e) => expect.closeTo(e.score, 4)));
        for (const item of got.items) expect(item.id.startsWith('g:') && !['g:0', 'g:1', 'g:39'].includes(item.id)).toBe(true);
      }
      await port(second).resetCollection({ collection: 'facts' });
      await second.stop();
      apps.splice(apps.indexOf(second), 1);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
