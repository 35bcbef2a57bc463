// What search added to the kernel's keyword index: reading a stored item back (snippets for semantic
// hits), listing a partition's words by prefix with live document counts (suggestions: removed items'
// words are never offered), and the "some of the words" fallback ranking by topical words only.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '../../../src/kernel/log/logger.js';
import { KeywordIndex } from '../../../src/kernel/text-index/keyword-index.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';

let redis: TestRedis;
let conn: Redis;
let index: KeywordIndex;

beforeAll(async () => {
  redis = await startTestRedis();
  conn = new Redis(redis.url, { keyPrefix: 'kw-test:' });
  index = new KeywordIndex({ redis: conn, name: 'idx', logger: createLogger('silent') });
  await index.start();
});
afterAll(async () => {
  await index.stop();
  conn.disconnect();
  await redis.stop();
});

it('reads a stored item back, only from its own partition', async () => {
  await index.add('p1', [{ id: 'a', text: 'Computers compute', fields: { t: 'x' } }]);
  expect(index.get('p1', 'a')).toEqual({ text: 'Computers compute', fields: { t: 'x' } });
  expect(index.get('p2', 'a')).toBeUndefined();
});

it('lists words by prefix, most frequent first, without bare stems or removed items', async () => {
  await index.add('p3', [
    { id: 'a', text: 'computer science and computers' },
    { id: 'b', text: 'the computer room' },
    { id: 'c', text: 'compass bearings' },
    { id: 'd', text: 'compost heap secretword' },
  ]);
  const terms = index.terms('p3', 'comp').map((t) => t.term);
  expect(terms[0]).toBe('computer');
  expect(terms).toEqual(expect.arrayContaining(['computers', 'compass', 'compost']));
  expect(terms).not.toContain('comput');
  expect(index.terms('p3', 'secr')).toEqual([{ term: 'secretword', docs: 1 }]);
  await index.remove('p3', ['d']);
  expect(index.terms('p3', 'secr')).toEqual([]);
  expect(index.terms('p3', 'compo')).toEqual([]);
});

it('falls back to the topical words, not function words, when no item has them all', async () => {
  await index.add('p4', [
    { id: 'park', text: 'Parking permits for the underground garage' },
    { id: 'noise', text: 'Send it to me and to my team' },
  ]);
  const hits = index.search('p4', 'where to park my car');
  expect(hits.map((h) => h.id)).toEqual(['park']);
  // Only function words: they are all there is to search by.
  expect(index.search('p4', 'to my').map((h) => h.id)).toEqual(['noise']);
});
