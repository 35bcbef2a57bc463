// `search` lifted into its own process: the other process hosts documents, embeddings, knowledge and
// the gateway. Documents uploaded to the front are indexed by the search process (which reads the chunks
// over the HTTP binding), and searched through the front's routes (the search port over HTTP) and
// through the search process's own routes; semantic and hybrid reach embeddings across the processes.
import path from 'node:path';
import { expect, it } from 'vitest';
import type { SearchResult } from '../../../src/modules/search/contract.js';
import { liftedProcesses } from '../../support/lifted-processes.js';
import { ADMIN_TOKEN, bearer, USER_TOKEN } from '../../support/test-auth.js';
import { api, eventually, uploadIndexed } from './support/search-app.js';

const { start, waitUntilSeen } = liftedProcesses(path.resolve(import.meta.dirname, 'support/search-server.ts'));

it('indexes and answers from a process of its own', async () => {
  const searchProc = await start('search');
  const front = await start('config,files,documents,embeddings,accelerator,llm,knowledge');
  await waitUntilSeen(front, [searchProc]);
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
