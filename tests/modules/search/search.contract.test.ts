// The search contract over both bindings, on a real AutoBot (documents with the real embeddings module
// and its built-in embedder, knowledge, search): keyword search with stemming, "phrases" and prefix*,
// semantic and hybrid (RRF) over chunks and facts, filters, the index following document and fact
// events (sharing moves items in and out of everyone's results), suggestions, analytics, bad input.
// Throughout: another user's private items never appear, in any mode or suggestion.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import type { Actor } from '../../../src/kernel/context/request-context.js';
import { knowledgeContract } from '../../../src/modules/knowledge/contract.js';
import { searchContract, type SearchResult } from '../../../src/modules/search/contract.js';
import type { DocumentView } from '../../../src/modules/documents/contract.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { ADMIN_TOKEN, adminActor, bearer, USER_TOKEN, userActor } from '../../support/test-auth.js';
import { api, as, eventually, searchCatalogue, uploadIndexed } from './support/search-app.js';

const alice = userActor;
const admin = adminActor;
const bob: Actor = { type: 'user', id: 'u-bob', username: 'bob', roles: ['user'] };

const ALICE_DOC = `# Marathon training

## Long runs

The runner runs slowly on Sundays. Running long distances builds endurance; a quantum of patience helps.

## Nutrition

Carbohydrate loading before the race. Hydration with electrolytes every twenty minutes.
`;
const ADMIN_DOC = `# Zebra migration

Confidential: the zebrafish laboratory budget and the zebra migration survey of the Serengeti.
`;

async function refusal(call: Promise<unknown>): Promise<{ code: string; details?: unknown }> {
  try {
    await call;
  } catch (err) {
    return err as { code: string; details?: unknown };
  }
  throw new Error('expected a refusal');
}

describe.each(bindingKinds)('search contract (%s binding)', (kind) => {
  let redis: TestRedis;
  let app: TestApp;
  let search: Port<typeof searchContract>;
  let knowledge: Port<typeof knowledgeContract>;
  let aliceDoc: DocumentView;
  let adminDoc: DocumentView;

  const find = (actor: Actor, query: string, mode: 'keyword' | 'semantic' | 'hybrid' = 'hybrid', extra: Record<string, unknown> = {}) =>
    as(actor, () => search.searchDocuments({ query, mode, topK: 10, ...extra } as Parameters<typeof search.searchDocuments>[0]));
  const sources = (items: SearchResult[]) => new Set(items.map((i) => i.sourceId));

  beforeAll(async () => {
    redis = await startTestRedis();
    app = await startTestApp({ redisUrl: redis.url, catalogue: searchCatalogue() });
    search = portFor(kind, app, searchContract);
    knowledge = portFor(kind, app, knowledgeContract);
    aliceDoc = (await uploadIndexed(app.url, USER_TOKEN, [{ name: 'marathon.md', content: ALICE_DOC }], { tags: 'sport' }))[0]!;
    adminDoc = (await uploadIndexed(app.url, ADMIN_TOKEN, [{ name: 'zebra.md', content: ADMIN_DOC }]))[0]!;
    await eventually(() => find(alice, 'runner', 'keyword'), (r) => r.items.length > 0);
    await eventually(() => find(admin, 'zebra', 'keyword'), (r) => r.items.length > 0);
  }, 60_000);
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  it('finds chunks by stemmed words, with a marked snippet, the title and the heading path', async () => {
    const { items, degraded } = await find(alice, 'runs', 'keyword');
    expect(degraded).toBeUndefined();
    expect(items[0]).toMatchObject({ sourceType: 'document', sourceId: aliceDoc.id, title: 'marathon.md' });
    expect(items[0]!.id.startsWith(`${aliceDoc.id}:`)).toBe(true);
    // "runs" finds "runner runs" and "Running" (stems), each marked.
    expect(items[0]!.snippet).toContain('<mark>runs</mark>');
    expect(items[0]!.snippet).toContain('<mark>Running</mark>');
    expect(items[0]!.highlights).toEqual(expect.arrayContaining(['runs', 'running']));
    expect(items[0]!.headingPath).toEqual(['Marathon training', 'Long runs']);
  });

  it('understands "quoted phrases" and prefix*', async () => {
    expect((await find(alice, '"long distances"', 'keyword')).items).toHaveLength(1);
    expect((await find(alice, '"distances long"', 'keyword')).items).toHaveLength(0);
    const prefix = await find(alice, 'electro*', 'keyword');
    expect(prefix.items[0]!.snippet).toContain('<mark>electrolytes</mark>');
    expect((await find(alice, 'carbohydrate', 'keyword')).items[0]!.headingPath).toEqual(['Marathon training', 'Nutrition']);
  });

  it("never shows another user's private document, in any mode or suggestion", async () => {
    for (const mode of ['keyword', 'semantic', 'hybrid'] as const) {
      const r = await find(alice, 'zebra migration zebrafish Serengeti', mode);
      expect(sources(r.items).has(adminDoc.id), mode).toBe(false);
      expect(JSON.stringify(r)).not.toContain('Serengeti');
      const b = await find(bob, 'zebra migration', mode);
      expect(b.items, mode).toEqual([]);
      // The owner does see it.
      expect(sources((await find(admin, 'zebra migration', mode)).items).has(adminDoc.id), mode).toBe(true);
      // And the admin, as a user, does not see Alice's private one either.
      expect(sources((await find(admin, 'marathon runner', mode)).items).has(aliceDoc.id), mode).toBe(false);
    }
    const sem = await as(alice, () => search.searchSemantic({ query: 'zebra migration Serengeti', topK: 50 }));
    expect(sources(sem.items).has(adminDoc.id)).toBe(false);
    expect((await as(alice, () => search.suggest({ q: 'zeb' }))).items).toEqual([]);
    // The title joins its index just after the chunks (one more log entry): poll rather than race it.
    await expect.poll(async () => (await as(admin, () => search.suggest({ q: 'zeb' }))).items, { timeout: 5_000 }).toEqual(expect.arrayContaining(['zebra.md']));
  });

  it('covers facts; follows their creation, change and deletion', async () => {
    const fact = await as(alice, () => knowledge.createFact({ content: 'The office wifi password rotates every Monday morning', tags: ['office'] }));
    const hit = await eventually(() => find(alice, 'wifi password', 'keyword'), (r) => r.items.length > 0);
    expect(hit.items[0]).toMatchObject({ sourceType: 'fact', sourceId: fact.id, id: fact.id, title: 'The office wifi password rotates every Monday morning' });
    // Semantic search covers facts too, and sourceTypes narrows.
    const sem = await eventually(
      () => as(alice, () => search.searchSemantic({ query: 'office wifi password', topK: 5, filter: { sourceTypes: ['fact'] } })),
      (r) => r.items.some((i) => i.sourceId === fact.id),
    );
    expect(sem.items.every((i) => i.sourceType === 'fact')).toBe(true);
    expect((await find(bob, 'wifi password', 'hybrid')).items).toEqual([]);

    await as(alice, () => knowledge.updateFact({ id: fact.id, content: 'The guest network key changes every Friday' }));
    await eventually(() => find(alice, 'guest network', 'keyword'), (r) => r.items.some((i) => i.sourceId === fact.id));
    expect((await find(alice, 'wifi password', 'keyword')).items).toEqual([]);
    await as(alice, () => knowledge.deleteFact({ id: fact.id }));
    await eventually(() => find(alice, 'guest network', 'keyword'), (r) => r.items.length === 0);
  });

  it('a document shared by an admin becomes searchable by everyone, and leaves again when unshared', async () => {
    expect((await api(app.url, ADMIN_TOKEN, 'PATCH', `/documents/${adminDoc.id}`, { shared: true })).status).toBe(200);
    for (const mode of ['keyword', 'hybrid'] as const) {
      await eventually(() => find(bob, 'zebra migration', mode), (r) => sources(r.items).has(adminDoc.id));
    }
    await eventually(() => find(alice, 'zebra', 'semantic'), (r) => sources(r.items).has(adminDoc.id));
    await eventually(() => as(alice, () => search.suggest({ q: 'zeb' })), (r) => r.items.includes('zebra.md'));
    expect((await api(app.url, ADMIN_TOKEN, 'PATCH', `/documents/${adminDoc.id}`, { shared: false })).status).toBe(200);
    await eventually(() => find(alice, 'zebra migration', 'keyword'), (r) => !sources(r.items).has(adminDoc.id));
    await eventually(() => find(alice, 'zebra migration', 'semantic'), (r) => !sources(r.items).has(adminDoc.id));
    await eventually(() => as(alice, () => search.suggest({ q: 'zeb' })), (r) => r.items.length === 0);
  });

  it('hybrid fuses both lists by Reciprocal Rank Fusion (k = 60)', async () => {
    const [kw, sem, hy] = await Promise.all([find(alice, 'hydration race', 'keyword'), find(alice, 'hydration race', 'semantic'), find(alice, 'hydration race', 'hybrid')]);
    const expected = new Map<string, number>();
    for (const list of [kw.items, sem.items]) list.forEach((it, i) => expected.set(it.id, (expected.get(it.id) ?? 0) + 1 / (60 + i + 1)));
    for (const item of hy.items) expect(item.score).toBeCloseTo(expected.get(item.id)!, 10);
    expect(hy.items[0]!.sourceId).toBe(aliceDoc.id);
    const scores = hy.items.map((i) => i.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
  });

  it('filters by source type, documents, tags and category', async () => {
    expect((await find(alice, 'runner', 'hybrid', { filter: { sourceTypes: ['fact'] } })).items).toEqual([]);
    expect((await find(alice, 'runner', 'hybrid', { filter: { documentIds: [aliceDoc.id] } })).items.length).toBeGreaterThan(0);
    expect((await find(alice, 'runner', 'hybrid', { filter: { documentIds: ['other'] } })).items).toEqual([]);
    expect((await find(alice, 'runner', 'keyword', { filter: { tags: ['sport'] } })).items.length).toBeGreaterThan(0);
    expect((await find(alice, 'runner', 'hybrid', { filter: { tags: ['sport', 'chess'] } })).items).toEqual([]);
    expect((await find(alice, 'runner', 'hybrid', { filter: { categoryId: 'nope' } })).items).toEqual([]);
  });

  it("retrieves a chat turn's sources: numbered, whole texts within the token budget, only what the caller may see", async () => {
    const question = 'How should a runner prepare for long distances, and what about hydration?';
    const r = await as(alice, () => search.retrieveSources({ query: question }));
    expect(r.sources.length).toBeGreaterThan(0);
    expect(r.sources.length).toBeLessThanOrEqual(6);
    expect(r.sources.map((x) => x.n)).toEqual(r.sources.map((_, i) => i + 1));
    expect(r.sources.every((x) => x.sourceId === aliceDoc.id && x.sourceType === 'document' && x.title === 'marathon.md')).toBe(true);
    // The chunk's text without its headings (they come as headingPath), and a marked snippet.
    const long = r.sources.find((x) => x.text.includes('Running long distances builds endurance'))!;
    expect(long.headingPath).toEqual(['Marathon training', 'Long runs']);
    expect(long.text.startsWith('The runner runs slowly')).toBe(true);
    expect(long.snippet).toContain('<mark>');
    expect(r.tokens).toBe(r.sources.reduce((sum, x) => sum + x.tokens, 0));
    expect(r.tokens).toBeLessThanOrEqual(1500);
    // A small ceiling: the best source alone, cut to fit.
    const small = await as(alice, () => search.retrieveSources({ query: question, maxTokens: 30 }));
    expect(small.sources).toHaveLength(1);
    expect(small.tokens).toBeLessThanOrEqual(30);
    expect(small.sources[0]!.text.endsWith('…')).toBe(true);
    // Someone else's private document is never a source, whatever the question.
    const zebra = await as(alice, () => search.retrieveSources({ query: 'zebra migration zebrafish Serengeti budget' }));
    expect(zebra.sources.some((x) => x.sourceId === adminDoc.id)).toBe(false);
    expect(JSON.stringify(zebra)).not.toContain('Serengeti');
    expect((await as(bob, () => search.retrieveSources({ query: 'zebra migration and marathon running' }))).sources).toEqual([]);
    const bad = await refusal(as(alice, () => search.retrieveSources({ query: '   ' })));
    expect(bad.code).toBe('invalid_input');
    expect(JSON.stringify(bad.details)).toContain('query');
  });

  it('suggests titles and frequent words of what the caller may search', async () => {
    const s = await as(alice, () => search.suggest({ q: 'mara' }));
    expect(s.items).toContain('marathon.md');
    expect(s.items).toContain('marathon');
    expect((await as(alice, () => search.suggest({ q: 'long di' }))).items).toContain('long distances');
    expect((await as(alice, () => search.suggest({ q: '' }))).items).toEqual([]);
  });

  it('refuses bad input naming the field, and analytics to non-admins', async () => {
    const bad = await refusal(as(alice, () => search.searchDocuments({ query: 'x', mode: 'fuzzy' as never, topK: 10 })));
    expect(bad.code).toBe('invalid_input');
    expect(JSON.stringify(bad.details)).toContain('mode');
    const k = await refusal(as(alice, () => search.searchDocuments({ query: 'x', mode: 'keyword', topK: 0 })));
    expect(JSON.stringify(k.details)).toContain('topK');
    const f = await refusal(as(alice, () => search.searchDocuments({ query: 'x', mode: 'keyword', topK: 5, filter: { sourceTypes: ['email' as never] } })));
    expect(JSON.stringify(f.details)).toContain('filter.sourceTypes');
    expect((await refusal(as(alice, () => search.analytics({})))).code).toBe('forbidden');
  });

  it('counts queries, zero-result queries and latency for admins and in /metrics', async () => {
    await find(alice, 'nothingmatchesthisword', 'keyword');
    const a = await as(admin, () => search.analytics({}));
    expect(a.queries).toBeGreaterThan(5);
    expect(a.zeroResultQueries).toBeGreaterThan(0);
    expect(a.topZeroResultQueries.map((q) => q.query)).toContain('nothingmatchesthisword');
    expect(a.byMode.keyword).toBeGreaterThan(0);
    expect(a.latencyMs.p50).not.toBeNull();
    const metrics = await (await fetch(`${app.url}/metrics`, { headers: bearer(ADMIN_TOKEN) })).text();
    expect(metrics).toMatch(/autobot_search_queries_total\{operation="documents",mode="keyword",outcome="zero_results"\} \d+/);
    expect(metrics).toContain('autobot_search_latency_seconds_bucket');
  });

  it('answers the REST routes per API.md', async () => {
    const r = await api<{ items: SearchResult[] }>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'runner' });
    expect(r.status).toBe(200);
    expect(r.body.items[0]).toMatchObject({ sourceType: 'document', sourceId: aliceDoc.id, title: 'marathon.md' });
    const s = await api<{ items: SearchResult[] }>(app.url, USER_TOKEN, 'POST', '/search/semantic', { query: 'runner endurance', topK: 3 });
    expect(s.status).toBe(200);
    expect(s.body.items.length).toBeGreaterThan(0);
    const sug = await api<{ items: string[] }>(app.url, USER_TOKEN, 'GET', '/search/suggestions?q=mar');
    expect(sug.body.items).toContain('marathon.md');
    expect((await api(app.url, USER_TOKEN, 'POST', '/search/documents', { query: '', mode: 'hybrid' })).status).toBe(400);
    expect((await api(app.url, USER_TOKEN, 'GET', '/search/analytics')).status).toBe(403);
    expect((await api(app.url, ADMIN_TOKEN, 'GET', '/search/analytics')).status).toBe(200);
  });
});
