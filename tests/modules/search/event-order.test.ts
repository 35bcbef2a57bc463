// Document events of different types travel in different streams, so `documents.document.updated` can
// be handled before the `indexed` it follows. The search index keeps such a change and applies it when
// the `indexed` announcement comes, if the change is newer than what the announcement carries; an
// older `indexed` run never replaces a newer one; a deleted document is not brought back by a late
// `indexed`. SearchIndex is driven directly here, with a documents port answering `listChunks`
// (the real module is exercised end to end in search-e2e.test.ts).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Port } from '../../../src/kernel/contract/define.js';
import { ContractError } from '../../../src/kernel/contract/errors.js';
import { createLogger } from '../../../src/kernel/log/logger.js';
import type { documentsContract } from '../../../src/modules/documents/contract.js';
import { SearchIndex } from '../../../src/modules/search/search-index.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';

let redis: TestRedis;
let conn: Redis;
let index: SearchIndex;
const runs = new Map<string, number>();

const documents = {
  listChunks: async ({ id }: { id: string }) => {
    const run = runs.get(id);
    if (run === undefined) throw new ContractError('not_found', `no document ${id}`);
    return { items: [{ id: `${id}:${run}:0`, documentId: id, seq: 0, text: `kestrel falcon run ${run}`, headingPath: [], page: null }], nextCursor: null };
  },
} as unknown as Port<typeof documentsContract>;

beforeAll(async () => {
  redis = await startTestRedis();
  conn = new Redis(redis.url, { keyPrefix: 'search:' });
  index = new SearchIndex(conn, createLogger('silent'), documents);
  await index.start();
});
afterAll(async () => {
  await index.stop();
  conn.disconnect();
  await redis.stop();
});

const base = { ownerId: 'u1', name: 'birds.md', categoryId: null, tags: [] as string[], shared: false };
const ids = (partition: string) => index.items.search(partition, 'kestrel').map((h) => h.id);

it('applies a sharing change handled before its indexed announcement, when it is newer', async () => {
  runs.set('d1', 1);
  await index.documentUpdated({ documentId: 'd1', ownerId: 'u1', categoryId: null, tags: [], shared: true }, '2026-01-01T00:00:02.000Z');
  await index.documentIndexed({ documentId: 'd1', ...base, run: 1, indexedAt: '2026-01-01T00:00:01.000Z' });
  expect(ids('shared')).toEqual(['d1:1:0']);
  expect(ids('u:u1')).toEqual([]);
  // An older change pending for another document does not override its announcement.
  runs.set('d2', 1);
  await index.documentUpdated({ documentId: 'd2', ownerId: 'u1', categoryId: null, tags: [], shared: true }, '2026-01-01T00:00:00.000Z');
  await index.documentIndexed({ documentId: 'd2', ...base, run: 1, indexedAt: '2026-01-01T00:00:01.000Z' });
  expect(ids('u:u1')).toEqual(['d2:1:0']);
  expect(await conn.ttl('doc:d2')).toBe(-1);
});

it('keeps the newest run and never revives a deleted document', async () => {
  runs.set('d3', 2);
  await index.documentIndexed({ documentId: 'd3', ...base, run: 2 });
  await index.documentIndexed({ documentId: 'd3', ...base, run: 1 });
  expect(ids('u:u1')).toContain('d3:2:0');
  expect(ids('u:u1')).not.toContain('d3:1:0');
  await index.documentDeleted({ documentId: 'd3' });
  await index.documentIndexed({ documentId: 'd3', ...base, run: 2 });
  expect(ids('u:u1').filter((i) => i.startsWith('d3'))).toEqual([]);
});
