// The embeddings contract over both bindings: the built-in embedder, collections that hold one model,
// search with owner/sharing/category/tag/document filters that still fill topK, removal, metadata
// changes, the 409 for a vector of another dimension, a model change that needs a reset, the cache
// that spares the provider (counted at a fake Ollama), and the REST routes.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import { BUILTIN_MODEL, embeddingsContract } from '../../../src/modules/embeddings/contract.js';
import { builtinEmbed } from '../../../src/modules/embeddings/builtin-embedder.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import type { TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { startFakeOllama, type FakeOllama } from '../../support/fake-ollama.js';
import { adminActor, bearer, USER_TOKEN, userActor } from '../../support/test-auth.js';
import { setEmbeddingsSettings, startEmbeddingsApp } from './embeddings-app.js';

const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);

async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string; details?: unknown }> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err: err as { code: string; message: string; details?: unknown } }),
  );
  if (outcome.ok) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value).slice(0, 300)}`);
  return outcome.err;
}

const fields = (err: { details?: unknown }) => ((err.details ?? []) as { path: string }[]).map((d) => d.path);
const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const uid = (p: string) => `${p}-${randomUUID().slice(0, 8)}`;

const TOPICS = ['apple pie baking recipe with cinnamon', 'kubernetes cluster autoscaling', 'medieval castle architecture', 'quarterly revenue and profit'];

describe.each(bindingKinds)('embeddings contract (%s binding)', (kind) => {
  let redis: TestRedis;
  let ollama: FakeOllama;
  let app: TestApp;
  let emb: Port<typeof embeddingsContract>;

  beforeAll(async () => {
    redis = await startTestRedis();
    ollama = await startFakeOllama();
    app = await startEmbeddingsApp(redis.url, ollama.url);
    emb = portFor(kind, app, embeddingsContract);
  });
  afterAll(async () => {
    await app?.stop();
    await ollama?.close();
    await redis?.stop();
  });

  describe('generate', () => {
    it('embeds with the built-in model by default: 384 unit-length dimensions, the same text the same vector', async () => {
      const out = await emb.generate({ texts: ['The cat sat on the mat', 'The cat sat on the mat', ''] });
      expect(out.model).toBe(BUILTIN_MODEL);
      expect(out.dimensions).toBe(384);
      expect(out.embeddings).toHaveLength(3);
      const [a, b, empty] = out.embeddings as [number[], number[], number[]];
      expect(a).toHaveLength(384);
      expect(dot(a, a)).toBeCloseTo(1, 5);
      expect(b).toEqual(a);
      expect(empty.every((x) => x === 0)).toBe(true);
    });

    it('puts texts that share wording closer than texts that do not (wording, not meaning)', async () => {
      const { embeddings } = await emb.generate({
        texts: ['the quick brown fox jumps over the lazy dog', 'a quick brown fox jumped over a lazy dog', 'quarterly revenue grew in europe', 'an automobile'],
      });
      const [fox, fox2, revenue, automobile] = embeddings as [number[], number[], number[], number[]];
      expect(dot(fox, fox2)).toBeGreaterThan(0.5);
      expect(dot(fox, revenue)).toBeLessThan(0.2);
      // Same meaning, other words: the built-in embedder cannot tell (documented).
      const car = (await emb.generate({ texts: ['a car'] })).embeddings[0]!;
      expect(dot(car, automobile)).toBeLessThan(0.5);
    });

    it('refuses an unknown model naming the ones there are, and an empty list naming the field', async () => {
      const unknown = await refusal(emb.generate({ texts: ['x'], model: 'no-such-model' }));
      expect(unknown.code).toBe('invalid_input');
      expect(unknown.message).toContain(BUILTIN_MODEL);
      expect(unknown.message).toContain('nomic-embed-text');
      const empty = await refusal(emb.generate({ texts: [] }));
      expect(empty.code).toBe('invalid_input');
      expect(fields(empty)).toEqual(['texts']);
    });

    it('embeds with Ollama when asked for its model, 768 dimensions', async () => {
      const out = await emb.generate({ texts: ['hello world'], model: 'nomic-embed-text' });
      expect(out).toMatchObject({ model: 'nomic-embed-text', dimensions: 768 });
      expect(out.embeddings[0]).toHaveLength(768);
    });
  });

  describe('collections', () => {
    it('stores vectors with the collection model and finds the nearest first, with their metadata', async () => {
      const owner = uid('owner');
      const doc = uid('doc');
      const up = await emb.upsert({
        collection: 'documents',
        items: TOPICS.map((text, i) => ({ id: `${doc}:${i}`, text, metadata: { ownerId: owner, documentId: doc, title: `t${i}`, page: i } })),
      });
      expect(up).toEqual({ upserted: 4, model: BUILTIN_MODEL, dimensions: 384 });
      const res = await emb.search({ collection: 'documents', query: 'how to bake an apple pie', topK: 2, filter: { ownerId: owner } });
      expect(res.items).toHaveLength(2);
      expect(res.items[0]).toMatchObject({ id: `${doc}:0`, metadata: { ownerId: owner, documentId: doc, title: 't0', page: 0 } });
      expect(res.items[0]!.score).toBeGreaterThan(res.items[1]!.score);
      expect(res).toMatchObject({ model: BUILTIN_MODEL, dimensions: 384 });
      // A query vector works the same as its text.
      const byVector = await emb.search({ collection: 'documents', vector: Array.from(builtinEmbed('how to bake an apple pie')), topK: 2, filter: { ownerId: owner } });
      expect(byVector.items.map((i) => i.id)).toEqual(res.items.map((i) => i.id));
    });

    it('replaces an item upserted again under the same id', async () => {
      const owner = uid('owner');
      await emb.upsert({ collection: 'documents', items: [{ id: `${owner}:x`, text: 'castle towers and moats', metadata: { ownerId: owner } }] });
      await emb.upsert({ collection: 'documents', items: [{ id: `${owner}:x`, text: 'profit and revenue', metadata: { ownerId: owner, title: 'second' } }] });
      const res = await emb.search({ collection: 'documents', query: 'revenue profit', topK: 5, filter: { ownerId: owner } });
      expect(res.items.map((i) => i.id)).toEqual([`${owner}:x`]);
      expect(res.items[0]!.metadata.title).toBe('second');
      expect(res.items[0]!.score).toBeGreaterThan(0.5);
    });

    it("keeps a user's search to their own and shared vectors, whatever filter they send", async () => {
      const docA = uid('doc');
      const docShared = uid('doc');
      await emb.upsert({
        collection: 'documents',
        items: [
          { id: `${docA}:0`, text: 'zebra crossing rules', metadata: { ownerId: 'someone-else', documentId: docA } },
          { id: `${docShared}:0`, text: 'zebra crossing signals', metadata: { ownerId: 'someone-else', documentId: docShared, shared: true } },
          { id: `${docA}:mine`, text: 'zebra crossing at night', metadata: { ownerId: userActor.type === 'user' ? userActor.id : '', documentId: docA } },
        ],
      });
      const asUser = await as(userActor, () => emb.search({ collection: 'documents', query: 'zebra crossing', topK: 10, filter: { ownerId: 'someone-else' } }));
      expect(asUser.items.map((i) => i.id)).toEqual([`${docShared}:0`]);
      const visible = await as(userActor, () => emb.search({ collection: 'documents', query: 'zebra crossing', topK: 10, filter: { documentIds: [docA, docShared] } }));
      expect(visible.items.map((i) => i.id).sort()).toEqual([`${docA}:mine`, `${docShared}:0`].sort());
      const asAdmin = await as(adminActor, () => emb.search({ collection: 'documents', query: 'zebra crossing', topK: 10, filter: { documentIds: [docA, docShared] } }));
      expect(asAdmin.items).toHaveLength(3);
    });

    it('changes sharing, category and tags of a document at once', async () => {
      const doc = uid('doc');
      await emb.upsert({
        collection: 'documents',
        items: [0, 1, 2].map((i) => ({ id: `${doc}:${i}`, text: `walrus colony part ${i}`, metadata: { ownerId: 'owner-w', documentId: doc, tags: ['old'] } })),
      });
      const hidden = await as(userActor, () => emb.search({ collection: 'documents', query: 'walrus colony', topK: 5, filter: { documentIds: [doc] } }));
      expect(hidden.items).toEqual([]);
      expect(await emb.setMetadata({ collection: 'documents', documentId: doc, patch: { shared: true, categoryId: 'cat-1', tags: ['new'] } })).toEqual({ updated: 3 });
      const shown = await as(userActor, () => emb.search({ collection: 'documents', query: 'walrus colony', topK: 5, filter: { categoryId: 'cat-1', tags: ['new'] } }));
      expect(shown.items.map((i) => i.id).sort()).toEqual([0, 1, 2].map((i) => `${doc}:${i}`));
      expect(shown.items[0]!.metadata).toMatchObject({ shared: true, categoryId: 'cat-1', tags: ['new'] });
      const old = await emb.search({ collection: 'documents', query: 'walrus colony', topK: 5, filter: { tags: ['old'], documentIds: [doc] } });
      expect(old.items).toEqual([]);
      const nothing = await refusal(emb.setMetadata({ collection: 'documents', documentId: doc, patch: {} }));
      expect(nothing.code).toBe('invalid_input');
    });

    it('removes by ids and by document, idempotently', async () => {
      const doc = uid('doc');
      await emb.upsert({
        collection: 'documents',
        items: [0, 1, 2, 3].map((i) => ({ id: `${doc}:${i}`, text: `narwhal tusk fact ${i}`, metadata: { ownerId: 'o-n', documentId: doc } })),
      });
      expect(await emb.remove({ collection: 'documents', ids: [`${doc}:0`] })).toEqual({ removed: 1 });
      expect(await emb.remove({ collection: 'documents', ids: [`${doc}:0`] })).toEqual({ removed: 0 });
      let left = await emb.search({ collection: 'documents', query: 'narwhal tusk', topK: 10, filter: { documentIds: [doc] } });
      expect(left.items.map((i) => i.id).sort()).toEqual([1, 2, 3].map((i) => `${doc}:${i}`));
      expect(await emb.remove({ collection: 'documents', documentId: doc })).toEqual({ removed: 3 });
      left = await emb.search({ collection: 'documents', query: 'narwhal tusk', topK: 10, filter: { ownerId: 'o-n' } });
      expect(left.items).toEqual([]);
      const neither = await refusal(emb.remove({ collection: 'documents' }));
      expect(neither.code).toBe('invalid_input');
    });

    it('answers 409 conflict for a query vector of another dimension', async () => {
      const err = await refusal(emb.search({ collection: 'documents', vector: new Array(768).fill(0.01), topK: 3 }));
      expect(err.code).toBe('conflict');
      expect(err.message).toContain('384');
      expect(err.message).toContain('768');
    });

    it('validates at the boundary, naming the field, and writes nothing', async () => {
      const owner = uid('owner');
      const err = await refusal(
        emb.upsert({
          collection: 'documents',
          items: [
            { id: `${owner}:ok`, text: 'fine', metadata: { ownerId: owner } },
            { id: `${owner}:bad`, text: 'no owner', metadata: {} as { ownerId: string } },
          ],
        }),
      );
      expect(err.code).toBe('invalid_input');
      expect(fields(err)).toEqual(['items.1.metadata.ownerId']);
      expect((await emb.search({ collection: 'documents', query: 'fine', topK: 5, filter: { ownerId: owner } })).items).toEqual([]);
      const both = await refusal(emb.search({ collection: 'documents', query: 'x', vector: [1], topK: 1 }));
      expect(both.code).toBe('invalid_input');
      const badCollection = await refusal(emb.search({ collection: 'nope' as 'facts', query: 'x' }));
      expect(fields(badCollection)).toEqual(['collection']);
    });
  });

  describe('filters still fill topK', () => {
    it('returns topK matches of a selective filter from the graph, equal to an exact search', async () => {
      const owner = uid('owner');
      // 600 vectors, 25 of them tagged `rare` and written about something else than the query: the
      // graph's nearest candidates hold almost none of them, so the filter needs the exact fallback.
      const items = Array.from({ length: 600 }, (_, i) => {
        const rare = i % 24 === 0;
        return {
          id: `${owner}:${i}`,
          text: rare ? `volcano eruption lava report number ${i}` : `ocean tides and waves and moon number ${i}`,
          metadata: { ownerId: owner, tags: rare ? ['rare'] : ['common'] },
        };
      });
      for (let i = 0; i < items.length; i += 200) await emb.upsert({ collection: 'facts', items: items.slice(i, i + 200) });
      await setEmbeddingsSettings(app, { exactSearchBelow: 100, searchOverFetch: 2 });
      await expect
        .poll(async () => (await emb.listCollections({})).items.find((c) => c.collection === 'facts')!.index, { timeout: 10_000 })
        .toBe('hnsw');

      const query = 'ocean tides and waves';
      const res = await emb.search({ collection: 'facts', query, topK: 10, filter: { ownerId: owner, tags: ['rare'] } });
      expect(res.items).toHaveLength(10);
      for (const item of res.items) expect(item.metadata.tags).toEqual(['rare']);
      // The same ten an exact scan finds.
      const q = builtinEmbed(query);
      const exact = items
        .filter((i) => i.metadata.tags[0] === 'rare')
        .map((i) => ({ id: i.id, score: dot(Array.from(q), Array.from(builtinEmbed(i.text))) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 10);
      // (Texts that differ only by their number tie, so the scores are compared, not the ids.)
      res.items.forEach((item, i) => expect(item.score).toBeCloseTo(exact[i]!.score, 4));
      // Unfiltered searches through the graph find what an exact scan finds.
      const plain = await emb.search({ collection: 'facts', query: 'volcano eruption lava', topK: 5, filter: { ownerId: owner } });
      expect(plain.items).toHaveLength(5);
      for (const item of plain.items) expect(item.metadata.tags).toEqual(['rare']);
      await setEmbeddingsSettings(app, { exactSearchBelow: 2000, searchOverFetch: 4 });
      await emb.resetCollection({ collection: 'facts' });
    });
  });

  describe('one model per collection', () => {
    it('refuses to mix models: a model change needs a reset, then the collection takes the new model', async () => {
      const owner = uid('owner');
      await emb.upsert({ collection: 'facts', items: [{ id: `${owner}:1`, text: 'old model fact', metadata: { ownerId: owner } }] });
      await setEmbeddingsSettings(app, { factsProvider: 'ollama' });
      try {
        const listed = (await emb.listCollections({})).items.find((c) => c.collection === 'facts')!;
        expect(listed).toMatchObject({ model: BUILTIN_MODEL, configuredModel: 'nomic-embed-text', needsReindex: true });
        const mixed = await refusal(emb.upsert({ collection: 'facts', items: [{ id: `${owner}:2`, text: 'new model fact', metadata: { ownerId: owner } }] }));
        expect(mixed.code).toBe('conflict');
        expect(mixed.message).toContain('reset');
        // Until the reindex, queries are embedded with the model the vectors were made with.
        const still = await emb.search({ collection: 'facts', query: 'old model fact', topK: 1, filter: { ownerId: owner } });
        expect(still).toMatchObject({ model: BUILTIN_MODEL, items: [{ id: `${owner}:1` }] });
        // Only an admin resets.
        expect((await refusal(as(userActor, () => emb.resetCollection({ collection: 'facts' })))).code).toBe('forbidden');
        expect((await as(adminActor, () => emb.resetCollection({ collection: 'facts' }))).removed).toBeGreaterThanOrEqual(1);
        const up = await emb.upsert({ collection: 'facts', items: [{ id: `${owner}:2`, text: 'new model fact', metadata: { ownerId: owner } }] });
        expect(up).toEqual({ upserted: 1, model: 'nomic-embed-text', dimensions: 768 });
        const found = await emb.search({ collection: 'facts', query: 'new model fact', topK: 3, filter: { ownerId: owner } });
        expect(found).toMatchObject({ model: 'nomic-embed-text', dimensions: 768, items: [{ id: `${owner}:2` }] });
        expect((await refusal(emb.search({ collection: 'facts', vector: new Array(384).fill(0.1) }))).code).toBe('conflict');
      } finally {
        await emb.resetCollection({ collection: 'facts' });
        await setEmbeddingsSettings(app, { factsProvider: 'builtin' });
      }
    });

    it('embeds nothing for text it has embedded before with the same model (counted at Ollama)', async () => {
      await setEmbeddingsSettings(app, { factsProvider: 'ollama' });
      try {
        const owner = uid('owner');
        const texts = Array.from({ length: 40 }, (_, i) => `cached fact ${owner} number ${i}`);
        const embedCalls = () => ollama.requests.filter((r) => r.path === '/api/embed');
        const textsSent = () => embedCalls().reduce((n, r) => n + ((r.body as { input: string[] }).input?.length ?? 0), 0);
        const before = textsSent();
        await emb.upsert({ collection: 'facts', items: texts.map((text, i) => ({ id: `${owner}:${i}`, text, metadata: { ownerId: owner } })) });
        expect(textsSent() - before).toBe(40);
        const callsAfterFirst = embedCalls().length;
        // Batched: 40 texts in batches of 32.
        expect(callsAfterFirst).toBeGreaterThanOrEqual(2);
        // Re-ingested (other ids, same text): not one text reaches the provider.
        await emb.upsert({ collection: 'facts', items: texts.map((text, i) => ({ id: `${owner}:again:${i}`, text, metadata: { ownerId: owner } })) });
        expect(embedCalls().length).toBe(callsAfterFirst);
        // One new text among known ones: only that one is sent.
        await emb.upsert({ collection: 'facts', items: [...texts.slice(0, 5), 'a brand new fact'].map((text, i) => ({ id: `${owner}:mix:${i}`, text, metadata: { ownerId: owner } })) });
        expect(textsSent() - before).toBe(41);
      } finally {
        await emb.resetCollection({ collection: 'facts' });
        await setEmbeddingsSettings(app, { factsProvider: 'builtin' });
      }
    });
  });

  describe('models', () => {
    it('lists the three providers with dimensions, status and which collections use them', async () => {
      const { items } = await emb.listModels({});
      const byId = new Map(items.map((m) => [m.id, m]));
      expect(byId.get(BUILTIN_MODEL)).toMatchObject({ provider: 'builtin', dimensions: 384, default: true, status: 'ready', collections: ['documents', 'facts'] });
      expect(byId.get('nomic-embed-text')).toMatchObject({ provider: 'ollama', dimensions: 768, default: false, status: 'ready' });
      // No ONNX model directory in this data dir: said plainly.
      const onnx = items.find((m) => m.provider === 'onnx')!;
      expect(onnx).toMatchObject({ id: 'onnx/all-MiniLM-L6-v2', status: 'unavailable' });
      expect(onnx.detail).toMatch(/tokenizer\.json/);
    });
  });

  // The REST surface is the same whichever binding the test holds: checked once.
  if (kind === 'local')
    describe('routes', () => {
      const api = (p: string) => `${app.url}/api/v1${p}`;
      const post = (p: string, body: unknown) => fetch(api(p), { method: 'POST', headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json' }, body: JSON.stringify(body) });

      it('generates, searches (scoped to the caller) and lists models over HTTP', async () => {
        const gen = await post('/embeddings/generate', { texts: ['hello there'] });
        expect(gen.status).toBe(200);
        expect(await gen.json()).toMatchObject({ model: BUILTIN_MODEL, dimensions: 384 });
        const doc = uid('doc');
        await emb.upsert({
          collection: 'documents',
          items: [
            { id: `${doc}:private`, text: 'pelican migration route', metadata: { ownerId: 'not-alice', documentId: doc } },
            { id: `${doc}:own`, text: 'pelican migration season', metadata: { ownerId: userActor.type === 'user' ? userActor.id : '', documentId: doc } },
          ],
        });
        const found = await post('/embeddings/search', { collection: 'documents', query: 'pelican migration', topK: 5, filter: { documentIds: [doc] } });
        expect(found.status).toBe(200);
        expect(((await found.json()) as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([`${doc}:own`]);
        const conflict = await post('/embeddings/search', { collection: 'documents', vector: [0.1, 0.2] });
        expect(conflict.status).toBe(409);
        const bad = await post('/embeddings/search', { collection: 'documents' });
        expect(bad.status).toBe(400);
        const models = await fetch(api('/embeddings/models'), { headers: bearer(USER_TOKEN) });
        expect(((await models.json()) as { items: unknown[] }).items).toHaveLength(3);
        const reset = await fetch(api('/embeddings/collections/facts'), { method: 'DELETE', headers: bearer(USER_TOKEN) });
        expect(reset.status).toBe(403);
      });
    });
});
