import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventBus, type EventBusOptions, type EventEnvelope } from '../../../src/kernel/events/event-bus.js';
import { currentContext, runWithContext, type RequestContext } from '../../../src/kernel/context/request-context.js';
import { Metrics } from '../../../src/kernel/metrics/metrics.js';
import { RedisConnections } from '../../../src/kernel/redis/redis-connections.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const INGESTED = 'documents.document.ingested';
const DELETED = 'documents.document.deleted';
const RETRY_MS = 100;

let redis: TestRedis;
let raw: Redis;
let connections: RedisConnections;
const buses: EventBus[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  raw = new Redis({ path: redis.target.path! });
  connections = new RedisConnections(redis.target, logger);
});

afterAll(async () => {
  await raw.quit();
  await redis.stop();
});

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close(1_000)));
  await connections.closeAll();
  await raw.flushall();
});

/** One bus is one process instance; several buses on one Redis simulate several processes. */
function bus(instanceId: string, opts: Partial<EventBusOptions> = {}): EventBus {
  const b = new EventBus({ connections, logger, instanceId, retryDelayMs: RETRY_MS, blockMs: 500, ...opts });
  buses.push(b);
  return b;
}

/** A handler recording what it saw. */
function recorder(): { events: EventEnvelope[]; contexts: Array<RequestContext | undefined>; handle: (e: EventEnvelope) => Promise<void> } {
  const events: EventEnvelope[] = [];
  const contexts: Array<RequestContext | undefined> = [];
  return {
    events,
    contexts,
    async handle(e) {
      events.push(e);
      contexts.push(currentContext());
    },
  };
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function deliveries(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.eventDeliveries.get()).values) out[`${v.labels.module}/${v.labels.event}/${v.labels.outcome}`] = v.value;
  return out;
}

describe('EventBus', () => {
  it('delivers every event exactly once to each subscribing module (happy path)', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const b = bus('p1', { metrics });
    const search = recorder();
    const notifications = recorder();
    await b.subscribe('search', { [INGESTED]: search.handle, [DELETED]: search.handle });
    await b.subscribe('notifications', { [INGESTED]: notifications.handle });

    const ids = [
      await b.publish(INGESTED, { doc: 1 }, { source: 'documents' }),
      await b.publish(DELETED, { doc: 1 }, { source: 'documents' }),
      await b.publish(INGESTED, { doc: 2 }, { source: 'documents', version: 2 }),
    ];

    await expect.poll(() => search.events.length).toBe(3);
    await expect.poll(() => notifications.events.length).toBe(2);
    // Long enough for any retry to have happened.
    await sleep(RETRY_MS * 5);
    expect(search.events.map((e) => e.id).sort()).toEqual([...ids].sort());
    expect(notifications.events.map((e) => e.id).sort()).toEqual([ids[0], ids[2]].sort());
    expect(notifications.events.find((e) => e.id === ids[2])).toMatchObject({ type: INGESTED, version: 2, source: 'documents', payload: { doc: 2 } });
    expect(await b.pending('search')).toEqual({ [INGESTED]: 0, [DELETED]: 0 });
    expect(await deliveries(metrics)).toEqual({ [`search/${INGESTED}/ok`]: 2, [`search/${DELETED}/ok`]: 1, [`notifications/${INGESTED}/ok`]: 2 });
    // The streams live under the kernel prefix, one per event type.
    expect((await raw.keys('*')).sort()).toEqual([`kernel:events:${DELETED}`, `kernel:events:${INGESTED}`]);
  });

  it('shares the events of one module among its instances: each event is handled once in total', async () => {
    const handled: Array<{ instance: string; id: string }> = [];
    const a = bus('a');
    const b = bus('b');
    await a.subscribe('search', { [INGESTED]: (e) => void handled.push({ instance: 'a', id: e.id }) });
    await b.subscribe('search', { [INGESTED]: (e) => void handled.push({ instance: 'b', id: e.id }) });

    const publisher = bus('publisher');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await publisher.publish(INGESTED, { i }, { source: 'documents' }));

    await expect.poll(() => handled.length).toBe(20);
    await sleep(RETRY_MS * 5);
    expect(handled.map((h) => h.id).sort()).toEqual([...ids].sort());
  });

  it('delivers an event published before a declared subscriber ever started, once it starts', async () => {
    const publisher = bus('publisher');
    await publisher.declareSubscriptions([{ moduleId: 'search', events: [INGESTED] }]);
    const id = await publisher.publish(INGESTED, { doc: 7 }, { source: 'documents' });
    expect(await publisher.pending('search')).toEqual({ [INGESTED]: 0 });

    const search = recorder();
    await bus('search-1').subscribe('search', { [INGESTED]: search.handle });
    await expect.poll(() => search.events.map((e) => e.id)).toEqual([id]);
    await sleep(RETRY_MS * 5);
    expect(search.events).toHaveLength(1);
  });

  it('delivers events published while the subscriber was down once it is back, and only those', async () => {
    const publisher = bus('publisher');
    await publisher.declareSubscriptions([{ moduleId: 'search', events: [INGESTED] }]);

    const before = recorder();
    const first = bus('search-1');
    await first.subscribe('search', { [INGESTED]: before.handle });
    const id1 = await publisher.publish(INGESTED, { n: 1 }, { source: 'documents' });
    await expect.poll(() => before.events.length).toBe(1);
    await first.close(1_000);

    const id2 = await publisher.publish(INGESTED, { n: 2 }, { source: 'documents' });
    const id3 = await publisher.publish(INGESTED, { n: 3 }, { source: 'documents' });

    const after = recorder();
    await bus('search-1').subscribe('search', { [INGESTED]: after.handle });
    await expect.poll(() => after.events.length).toBe(2);
    await sleep(RETRY_MS * 5);
    expect(before.events.map((e) => e.id)).toEqual([id1]);
    expect(after.events.map((e) => e.id)).toEqual([id2, id3]);
  });

  it('retries a handler that throws until it succeeds', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const b = bus('p1', { metrics });
    let calls = 0;
    const seen: string[] = [];
    await b.subscribe('search', {
      [INGESTED]: (e) => {
        calls++;
        if (calls < 3) throw new Error(`index busy (${calls})`);
        seen.push(e.id);
      },
    });
    const id = await b.publish(INGESTED, {}, { source: 'documents' });

    await expect.poll(() => seen).toEqual([id]);
    await sleep(RETRY_MS * 5);
    expect(calls).toBe(3);
    expect(await b.deadLetters()).toEqual([]);
    expect(await b.pending('search')).toEqual({ [INGESTED]: 0 });
    expect(await deliveries(metrics)).toEqual({ [`search/${INGESTED}/retry`]: 2, [`search/${INGESTED}/ok`]: 1 });
  });

  it('moves an event whose handler always fails to the dead letters after maxAttempts, with its error', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const b = bus('p1', { metrics, maxAttempts: 3 });
    let calls = 0;
    await b.subscribe('search', {
      [INGESTED]: () => {
        calls++;
        throw new Error('schema mismatch');
      },
    });
    const ok = recorder();
    await b.subscribe('notifications', { [INGESTED]: ok.handle });
    const id = await b.publish(INGESTED, { doc: 9 }, { source: 'documents' });

    await expect.poll(async () => (await b.deadLetters()).length, { timeout: 10_000 }).toBe(1);
    const [letter] = await b.deadLetters({ moduleId: 'search' });
    expect(letter).toMatchObject({ moduleId: 'search', type: INGESTED, attempts: 3, error: 'schema mismatch', event: { id, payload: { doc: 9 } } });
    expect(Number.isNaN(Date.parse(letter!.failedAt))).toBe(false);
    await sleep(RETRY_MS * 5);
    expect(calls).toBe(3);
    // Dead-lettered means acknowledged: it no longer counts as pending, and nobody else was affected.
    expect(await b.pending('search')).toEqual({ [INGESTED]: 0 });
    expect(await b.deadLetters({ moduleId: 'notifications' })).toEqual([]);
    expect(ok.events.map((e) => e.id)).toEqual([id]);
    expect(await deliveries(metrics)).toMatchObject({ [`search/${INGESTED}/retry`]: 2, [`search/${INGESTED}/dead`]: 1 });
  });

  it('counts a handler that runs past its timeout as failed', async () => {
    const b = bus('p1', { maxAttempts: 2, handlerTimeoutMs: 50 });
    await b.subscribe('search', { [INGESTED]: () => new Promise<void>(() => undefined) });
    await b.publish(INGESTED, {}, { source: 'documents' });
    await expect.poll(async () => (await b.deadLetters()).map((d) => [d.attempts, d.error])).toEqual([[2, 'handler timed out after 50 ms']]);
  });

  it('delivers an entry held by an instance that crashed to another instance', async () => {
    const started = deferred<EventEnvelope>();
    const crashed = bus('doomed');
    await crashed.subscribe('search', {
      [INGESTED]: (e) => {
        started.resolve(e);
        return new Promise<void>(() => undefined); // never acknowledges
      },
    });
    const id = await bus('publisher').publish(INGESTED, { doc: 3 }, { source: 'documents' });
    expect((await started.promise).id).toBe(id);
    await crashed.close(100);
    const observer = bus('observer');
    await observer.declareSubscriptions([{ moduleId: 'search', events: [INGESTED] }]);
    expect(await observer.pending('search')).toEqual({ [INGESTED]: 1 });

    const survivor = recorder();
    await bus('survivor').subscribe('search', { [INGESTED]: survivor.handle });
    await expect.poll(() => survivor.events.map((e) => e.id)).toEqual([id]);
    await expect.poll(() => observer.pending('search')).toEqual({ [INGESTED]: 0 });
  });

  it('resumes its own pending entries at once when restarted with the same instance id', async () => {
    const started = deferred();
    const first = bus('search-1');
    await first.subscribe('search', {
      [INGESTED]: () => {
        started.resolve();
        return new Promise<void>(() => undefined);
      },
    });
    const id = await first.publish(INGESTED, {}, { source: 'documents' });
    await started.promise;
    await first.close(100);

    // A retry delay far beyond the test's timeout: only the own-pending recovery can deliver it.
    const again = recorder();
    await bus('search-1', { retryDelayMs: 600_000 }).subscribe('search', { [INGESTED]: again.handle });
    await expect.poll(() => again.events.map((e) => e.id)).toEqual([id]);
  });

  it('runs the handler in the publisher\'s request context (request id and actor)', async () => {
    const publisher = bus('gateway');
    const search = recorder();
    await bus('worker').subscribe('search', { [INGESTED]: search.handle });
    const actor = { type: 'user' as const, id: 'u-42', username: 'ada', roles: ['admin'] };
    await runWithContext({ requestId: 'req-123', actor }, () => publisher.publish(INGESTED, { doc: 1 }, { source: 'documents' }));
    // Published outside any request: the handler still gets a request id (the event's).
    const bare = await publisher.publish(INGESTED, { doc: 2 }, { source: 'documents' });

    await expect.poll(() => search.contexts.length).toBe(2);
    expect(search.events[0]).toMatchObject({ requestId: 'req-123', actor });
    expect(search.contexts[0]).toMatchObject({ requestId: 'req-123', actor });
    expect(search.contexts[1]).toEqual({ requestId: bare });
  });

  it('closes promptly while waiting for new events', async () => {
    const b = bus('p1', { blockMs: 20_000 });
    await b.subscribe('search', { [INGESTED]: () => undefined });
    await sleep(100); // let the read block
    const t0 = Date.now();
    await b.close(10_000);
    // Without interrupting XREADGROUP, close would wait for the block to end (20 s).
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('lets a running handler finish within the close deadline, without another instance taking its event', async () => {
    const started = deferred();
    let finished = false;
    // A retry delay with room for a busy machine: the heartbeat (every third of it) must keep the entry held.
    const b = bus('p1', { retryDelayMs: 300 });
    await b.subscribe('search', {
      [INGESTED]: async () => {
        started.resolve();
        // Much longer than the retry delay: the heartbeat must keep other instances off this entry.
        await sleep(1_500);
        finished = true;
      },
    });
    await b.publish(INGESTED, {}, { source: 'documents' });
    await started.promise;
    const other = recorder();
    const p2 = bus('p2', { retryDelayMs: 300 });
    await p2.subscribe('search', { [INGESTED]: other.handle });
    await b.close(5_000);

    expect(finished).toBe(true);
    expect(await p2.pending('search')).toEqual({ [INGESTED]: 0 });
    await sleep(600);
    expect(other.events).toEqual([]);
  });

  it('rejects events it could not deliver: bad type names, no source', async () => {
    const b = bus('p1');
    await expect(b.publish('dead', {}, { source: 'x' })).rejects.toThrow(/invalid event type/);
    await expect(b.subscribe('search', { 'has space.x': () => undefined })).rejects.toThrow(/invalid event type/);
    await expect(b.publish(INGESTED, {}, { source: '' })).rejects.toThrow(/source/);
    expect(await raw.keys('*')).toEqual([]);
  });
});
