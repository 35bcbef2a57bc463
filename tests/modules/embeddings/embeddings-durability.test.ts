// Vectors outlive the process and are shared between instances: a restarted AutoBot searches what the
// previous one stored without asking any provider again, and a second instance on the same Redis sees
// a vector written by the first within a second (through the change log every instance follows).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

  const start = async () => {
    const app = await startEmbeddingsApp(redis.url, ollama.url);
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
  });
});
