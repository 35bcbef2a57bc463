// End to end through REST: documents uploaded by two users, searched through every route that returns
// search results (another user's private document never shows, in any mode, snippet or suggestion);
// retrieval quality on a labelled set (hybrid's nDCG@10 at least keyword's and semantic's, built-in
// embedder); the index surviving a restart without being rebuilt; and hybrid answering keyword-only
// (`degraded: true`) when the embeddings module cannot be reached, semantic answering 503.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { knowledgeContract } from '../../../src/modules/knowledge/contract.js';
import { searchContract, type SearchResult } from '../../../src/modules/search/contract.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { ADMIN_TOKEN, USER_TOKEN, userActor } from '../../support/test-auth.js';
import { api, as, eventually, searchCatalogue, uploadIndexed } from './support/search-app.js';

type Answer = { items: SearchResult[]; degraded?: true };

// Queries with the facts that answer them (relevance 2: the answer; 1: related).
const FACTS: Record<string, string> = {
  f1: 'The VPN gateway for remote staff is vpn.example.org and needs the authenticator app',
  f2: 'Remote workers connect to the office network through the VPN client installed on their laptop',
  f3: 'Expense reports are submitted by the fifth working day of the following month',
  f4: 'Travel expenses above 500 euros need approval from the department head before booking',
  f5: 'The cafeteria serves vegetarian lunch every day between noon and two',
  f6: 'Backups of the file server run nightly at 02:00 and are kept for thirty days',
  f7: 'A restored backup must be verified by opening three random files',
  f8: 'Passwords must be rotated every ninety days and contain at least twelve characters',
  f9: 'The password manager is the approved place to store shared credentials',
  f10: 'Parking permits for the underground garage are issued by the facilities team',
  f11: 'Fire drills happen twice a year; the assembly point is the north car park',
  f12: 'New laptops are ordered through the IT service desk portal',
  f13: 'Holiday requests are approved by the line manager in the HR system',
  f14: 'Sick leave longer than three days requires a doctor note sent to HR',
  f15: 'Printer toner is stored in the supply room on the second floor',
  f16: 'Guests sign in at reception and wear a visitor badge at all times',
};
const LABELS: { q: string; rel: Record<string, number> }[] = [
  { q: 'how do I connect to the VPN from home', rel: { f2: 2, f1: 2 } },
  { q: 'expense report deadline', rel: { f3: 2, f4: 1 } },
  { q: 'backup retention restore', rel: { f6: 2, f7: 2 } },
  { q: 'password rules', rel: { f8: 2, f9: 1 } },
  { q: 'where to park my car', rel: { f10: 2, f11: 1 } },
  { q: 'ordering a new laptop', rel: { f12: 2 } },
  { q: 'holidays and sick leave approval', rel: { f13: 2, f14: 2 } },
  { q: 'visitor badges at reception', rel: { f16: 2 } },
  { q: 'travel expences approval', rel: { f4: 2, f3: 1 } },
  { q: 'pasword rotation', rel: { f8: 2 } },
  // What users also type: run-together words, misspellings, other word forms.
  { q: 'fileserver nightly backups', rel: { f6: 2, f7: 1 } },
  { q: 'vegeterian lunch', rel: { f5: 2 } },
  { q: 'underground parking permit', rel: { f10: 2, f11: 1 } },
  { q: 'authenticator for remote VPN access', rel: { f1: 2, f2: 1 } },
  { q: 'toner for the printers', rel: { f15: 2 } },
  { q: 'doctors note for sickness', rel: { f14: 2, f13: 1 } },
];

function ndcg10(ranked: string[], rel: Record<string, number>): number {
  const dcg = ranked.slice(0, 10).reduce((s, id, i) => s + (2 ** (rel[id] ?? 0) - 1) / Math.log2(i + 2), 0);
  const ideal = Object.values(rel).sort((a, b) => b - a).slice(0, 10).reduce((s, r, i) => s + (2 ** r - 1) / Math.log2(i + 2), 0);
  return ideal ? dcg / ideal : 0;
}

describe('search end to end', () => {
  let redis: TestRedis;
  let app: TestApp;

  beforeAll(async () => {
    redis = await startTestRedis();
    app = await startTestApp({ redisUrl: redis.url, catalogue: searchCatalogue() });
  }, 60_000);
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  it("never shows another user's private documents through any search route", async () => {
    const [mine] = await uploadIndexed(app.url, USER_TOKEN, [{ name: 'glacier-notes.md', content: '# Glacier hiking\n\nCrampons and ice axes for the glacier crossing.' }]);
    const [theirs] = await uploadIndexed(app.url, ADMIN_TOKEN, [
      { name: 'glacier-salaries.md', content: '# Glacier payroll\n\nConfidential salaries of the glacier expedition crew: Kowalski 9000.' },
    ]);
    const post = (path: string, body: unknown, token = USER_TOKEN) => api<Answer>(app.url, token, 'POST', path, body);
    await eventually(() => post('/search/documents', { query: 'glacier', mode: 'keyword' }, ADMIN_TOKEN), (r) => r.body.items.some((i) => i.sourceId === theirs!.id));
    await eventually(() => post('/search/documents', { query: 'glacier', mode: 'keyword' }), (r) => r.body.items.some((i) => i.sourceId === mine!.id));
    const answers = [
      ...(await Promise.all((['keyword', 'semantic', 'hybrid'] as const).map((mode) => post('/search/documents', { query: 'glacier salaries Kowalski payroll', mode, topK: 100 })))),
      await post('/search/semantic', { query: 'glacier salaries Kowalski payroll', topK: 100 }),
      await post('/search/documents', { query: 'glacier', filter: { documentIds: [theirs!.id] } }),
    ];
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(JSON.stringify(a.body)).not.toMatch(/Kowalski|salaries|payroll/i);
      expect(a.body.items.every((i) => i.sourceId === mine!.id)).toBe(true);
    }
    for (const q of ['glac', 'glacier sal', 'kow', 'pay']) {
      const s = await api<{ items: string[] }>(app.url, USER_TOKEN, 'GET', `/search/suggestions?q=${encodeURIComponent(q)}`);
      expect(s.status).toBe(200);
      expect(JSON.stringify(s.body)).not.toMatch(/kowalski|salar|payroll/i);
    }
    expect((await api<{ items: string[] }>(app.url, USER_TOKEN, 'GET', '/search/suggestions?q=glac')).body.items).toContain('glacier-notes.md');
  });

  it("hybrid's nDCG@10 is at least keyword's and semantic's on a labelled set (built-in embedder)", async () => {
    const knowledge: Port<typeof knowledgeContract> = app.runtime.port(knowledgeContract);
    const search: Port<typeof searchContract> = app.runtime.port(searchContract);
    const ids: Record<string, string> = {};
    for (const [label, content] of Object.entries(FACTS)) ids[(await as(userActor, () => knowledge.createFact({ content }))).id] = label;
    // Both indexes have every fact.
    await eventually(() => as(userActor, () => search.searchDocuments({ query: 'visitor badge', mode: 'keyword', topK: 10, filter: { sourceTypes: ['fact'] } })), (r) => r.items.length > 0);
    await eventually(
      () => as(userActor, () => search.searchSemantic({ query: 'anything', topK: 50, filter: { sourceTypes: ['fact'] } })),
      (r) => r.items.length === Object.keys(FACTS).length,
    );
    const score: Record<string, number> = { keyword: 0, semantic: 0, hybrid: 0 };
    for (const { q, rel } of LABELS) {
      for (const mode of ['keyword', 'semantic', 'hybrid'] as const) {
        const r = await as(userActor, () => search.searchDocuments({ query: q, mode, topK: 10, filter: { sourceTypes: ['fact'] } }));
        score[mode]! += ndcg10(
          r.items.map((i) => ids[i.sourceId] ?? '?'),
          rel,
        ) / LABELS.length;
      }
    }
    // Printed so a regression shows by how much.
    process.stdout.write(`nDCG@10 keyword ${score.keyword!.toFixed(3)} semantic ${score.semantic!.toFixed(3)} hybrid ${score.hybrid!.toFixed(3)}\n`);
    expect(score.hybrid).toBeGreaterThanOrEqual(score.keyword!);
    expect(score.hybrid).toBeGreaterThanOrEqual(score.semantic!);
    expect(score.hybrid).toBeGreaterThan(0.5);
  });

  it('follows a reindex (the new run replaces the old chunks) and a deletion', async () => {
    const [doc] = await uploadIndexed(app.url, USER_TOKEN, [{ name: 'orchid.md', content: '# Orchids\n\nOrchids need bright indirect light and weekly watering.' }]);
    const kw = () => api<Answer>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'orchids watering', mode: 'keyword', topK: 50 });
    const first = await eventually(kw, (r) => r.body.items.length === 1);
    expect(first.body.items[0]!.id).toBe(`${doc!.id}:1:0`);
    expect((await api(app.url, USER_TOKEN, 'POST', `/documents/${doc!.id}/reindex`)).status).toBe(202);
    const again = await eventually(kw, (r) => r.body.items.some((i) => i.id === `${doc!.id}:2:0`));
    expect(again.body.items.map((i) => i.id)).toEqual([`${doc!.id}:2:0`]);
    expect((await api(app.url, USER_TOKEN, 'DELETE', `/documents/${doc!.id}`)).status).toBe(204);
    await eventually(kw, (r) => r.body.items.length === 0);
    await eventually(
      () => api<Answer>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'orchids watering', mode: 'hybrid', topK: 50 }),
      (r) => !r.body.items.some((i) => i.sourceId === doc!.id),
    );
    expect((await api<{ items: string[] }>(app.url, USER_TOKEN, 'GET', '/search/suggestions?q=orch')).body.items).toEqual([]);
  });

  it('keeps its index across a restart, without rebuilding it from the sources', async () => {
    const before = (await api<Answer>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'crampons', mode: 'keyword' })).body.items;
    expect(before.length).toBe(1);
    await app.stop();
    app = await startTestApp({ redisUrl: redis.url, catalogue: searchCatalogue() });
    // Right away, with no event replayed: the index came back from its snapshot and change log.
    const after = (await api<Answer>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'crampons', mode: 'keyword' })).body.items;
    expect(after.map((i) => i.id)).toEqual(before.map((i) => i.id));
  });
});

describe('search without the embeddings module', () => {
  let redis: TestRedis;
  let app: TestApp;

  beforeAll(async () => {
    redis = await startTestRedis();
    // Embeddings (and what only it needs) hosted nowhere: every call to it fails as unavailable.
    app = await startTestApp({
      redisUrl: redis.url,
      catalogue: searchCatalogue(),
      env: { AUTOBOT_MODULES: 'config,files,documents,knowledge,search,llm' },
    });
  }, 60_000);
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  it('hybrid answers keyword-only with degraded: true; semantic answers 503', async () => {
    const knowledge: Port<typeof knowledgeContract> = app.runtime.port(knowledgeContract);
    await as(userActor, () => knowledge.createFact({ content: 'The boiler room key hangs behind the reception desk' }));
    const r = await eventually(
      () => api<Answer>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'boiler key' }),
      (x) => x.body.items?.length > 0,
    );
    expect(r.status).toBe(200);
    expect(r.body.degraded).toBe(true);
    expect(r.body.items[0]).toMatchObject({ sourceType: 'fact', title: 'The boiler room key hangs behind the reception desk' });
    const kw = await api<Answer>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'boiler key', mode: 'keyword' });
    expect(kw.body.degraded).toBeUndefined();
    const sem = await api<{ error: { code: string } }>(app.url, USER_TOKEN, 'POST', '/search/semantic', { query: 'boiler key' });
    expect(sem.status).toBe(503);
    expect(sem.body.error.code).toBe('unavailable');
    const a = await api<{ degradedQueries: number }>(app.url, ADMIN_TOKEN, 'GET', '/search/analytics');
    expect(a.body.degradedQueries).toBeGreaterThan(0);
  });
});
