// The shared keyword index: partitions never see each other's documents; stemming, phrases, prefixes
// and BM25 ranking; every instance on the same Redis follows the change log; a new instance loads the
// snapshot and replays only the log after it; the log is trimmed behind the previous snapshot.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createLogger } from '../../../src/kernel/log/logger.js';
import { RedisConnections } from '../../../src/kernel/redis/redis-connections.js';
import { KeywordIndex } from '../../../src/kernel/text-index/keyword-index.js';
import { highlight, parseQuery } from '../../../src/kernel/text-index/analyzer.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';

let redis: TestRedis;
let connections: RedisConnections;
let conn: Redis;
const logger = createLogger('silent');
const open: KeywordIndex[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  connections = new RedisConnections(redis.target, logger);
  conn = connections.forModule('idx', 3);
});
afterAll(async () => {
  for (const i of open) await i.stop();
  await connections.closeAll();
  await redis.stop();
});

async function index(name: string): Promise<KeywordIndex> {
  const i = new KeywordIndex({ redis: conn, name, logger });
  await i.start();
  open.push(i);
  return i;
}

describe('keyword index', () => {
  it('ranks within a partition only, with stems, phrases and prefixes', async () => {
    const i = await index('a');
    await i.add('alice', [
      { id: '1', text: 'Running shoes for running on trails', fields: { chatId: 'x' } },
      { id: '2', text: 'I went for a run yesterday', fields: { chatId: 'y' } },
      { id: '3', text: 'Trail mix recipes' },
    ]);
    await i.add('bob', [{ id: '9', text: 'running running running' }]);
    expect(i.search('alice', 'runs').map((h) => h.id)).toEqual(['1', '2']);
    expect(i.search('bob', 'runs').map((h) => h.id)).toEqual(['9']);
    expect(i.search('alice', '"running shoes"').map((h) => h.id)).toEqual(['1']);
    expect(i.search('alice', '"shoes running"')).toEqual([]);
    expect(i.search('alice', 'trai*').map((h) => h.id).sort()).toEqual(['1', '3']);
    expect(i.search('alice', 'runn*').map((h) => h.id)).toEqual(['1']);
    expect(i.search('alice', 'run', { filter: (f) => f.chatId === 'y' }).map((h) => h.id)).toEqual(['2']);
    // No document has both words: documents with some of them are ranked instead.
    expect(i.search('alice', 'run recipes').map((h) => h.id).sort()).toEqual(['1', '2', '3']);
    expect(i.search('alice', 'running')[0]!.highlight).toBe('<mark>Running</mark> shoes for <mark>running</mark> on trails');
    await i.remove('alice', ['1']);
    expect(i.search('alice', 'run').map((h) => h.id)).toEqual(['2']);
  });

  it('keeps every instance current through the log, and restarts from snapshot plus tail', async () => {
    const one = await index('b');
    const two = await index('b');
    await one.add('p', [{ id: 'd1', text: 'quantum entanglement basics' }]);
    await new Promise((r) => setTimeout(r, 50));
    expect(two.search('p', 'entangled').map((h) => h.id)).toEqual(['d1']);
    await one.snapshot();
    await one.add('p', [{ id: 'd2', text: 'quantum computing' }]);
    await one.snapshot();
    // Entries before the previous snapshot are trimmed; the snapshot covers them.
    const first = (await conn.xrange('b:log', '-', '+'))[0]![0];
    const snapId = await conn.hget('b:snapshot', 'id');
    expect(first <= snapId!).toBe(true);
    await one.add('p', [{ id: 'd3', text: 'quantum field theory' }]);
    await one.drop('gone');
    const three = await index('b');
    expect(three.search('p', 'quantum').map((h) => h.id).sort()).toEqual(['d1', 'd2', 'd3']);
    expect(three.size('p')).toBe(3);
  });

  it('keeps a change applied while a snapshot is being written for the next one, so trimming never loses it', async () => {
    // The snapshot's write waits at a gate: the change lands after its partition was serialised
    // without it, and before the write is done.
    let reached!: () => void;
    let letThrough!: () => void;
    const atWrite = new Promise<void>((r) => (reached = r));
    const gate = new Promise<void>((r) => (letThrough = r));
    const bound = <T extends object>(target: T, key: string | symbol) => {
      const v = Reflect.get(target, key) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    };
    const gated = new Proxy(conn, {
      get: (target, key) =>
        key !== 'multi'
          ? bound(target, key)
          : () => {
              const multi = target.multi();
              return new Proxy(multi, {
                get: (m, k) =>
                  k !== 'exec'
                    ? bound(m, k)
                    : async () => {
                        reached();
                        await gate;
                        return m.exec();
                      },
              });
            },
    });
    const one = new KeywordIndex({ redis: gated, name: 'c', logger });
    await one.start();
    open.push(one);
    await one.add('q', [{ id: 'd1', text: 'tidal energy' }]);
    const writing = one.snapshot();
    await atWrite;
    await one.add('q', [{ id: 'd2', text: 'tidal currents' }]);
    letThrough();
    await writing;
    // Two more snapshots trim the log past d2's entry: only a snapshot of q holding d2 can keep it.
    await one.add('other', [{ id: 'x1', text: 'unrelated' }]);
    await one.snapshot();
    await one.add('other', [{ id: 'x2', text: 'unrelated too' }]);
    await one.snapshot();
    const restarted = await index('c');
    expect(restarted.search('q', 'tidal').map((h) => h.id).sort()).toEqual(['d1', 'd2']);
  });

  it('parses queries and escapes snippets', () => {
    expect(parseQuery('Cats "big dogs" comp*')).toEqual({ terms: ['big', 'dog', 'cat'], prefixes: ['comp'], phrases: ['big dogs'] });
    expect(highlight('<b>cats</b> & dogs', parseQuery('cat'))).toBe('&lt;b&gt;<mark>cats</mark>&lt;/b&gt; &amp; dogs');
  });
});
