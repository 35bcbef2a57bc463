// Fan-out events (contract `delivery: 'every-instance'`): every live instance of a subscribing module
// hears each one, where an ordinary event goes to one instance of the module. Each instance reads them
// in a group of its own (`<module>@<instanceId>`), gone at graceful close, swept once its process is gone.
// End to end: a settings change made through one AutoBot is applied by every AutoBot on the same Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EventBus, type EventEnvelope } from '../../../src/kernel/events/event-bus.js';
import { coreModules } from '../../../src/modules/catalogue.js';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../../support/app.js';
import { authHttp, type TokenPair } from '../../support/auth-http.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { eventBuses } from '../../support/event-buses.js';

const FAN = 'config.settings.changed';
const WORK = 'documents.document.ingested';
const MODULE = 'search';
const FAN_STREAM = `kernel:events:${FAN}`;

const events = eventBuses({ everyInstance: [FAN], retryDelayMs: 1_000, blockMs: 100 });
const bus = events.bus;

async function groups(stream = FAN_STREAM): Promise<string[]> {
  const rows = (await events.raw.xinfo('GROUPS', stream)) as unknown[][];
  return rows.map((r) => String(r[1])).sort();
}

/** Subscribes MODULE on a bus, recording which event ids (by payload `n`) each type brought. */
async function listen(b: EventBus, fail: (type: string, n: number) => boolean = () => false) {
  const got: Record<string, number[]> = { [FAN]: [], [WORK]: [] };
  const record = (type: string) => async (e: EventEnvelope) => {
    const n = (e.payload as { n: number }).n;
    if (fail(type, n)) throw new Error(`refusing ${type} ${n}`);
    got[type]!.push(n);
  };
  await b.subscribe(MODULE, { [FAN]: record(FAN), [WORK]: record(WORK) });
  return got;
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

describe('fan-out events on the bus', () => {
  it('delivers a fan-out type to every instance once, and an ordinary type to one of them', async () => {
    const a = bus('inst-a');
    const b = bus('inst-b');
    await a.declareSubscriptions([{ moduleId: MODULE, events: [FAN, WORK], local: true }]);
    const gotA = await listen(a);
    const gotB = await listen(b);
    // No module-wide group for the fan-out type: one per instance.
    expect(await groups()).toEqual([`${MODULE}@inst-a`, `${MODULE}@inst-b`]);
    expect(await groups(`kernel:events:${WORK}`)).toEqual([MODULE]);

    for (let n = 1; n <= 5; n++) {
      await a.publish(FAN, { n }, { source: 'config' });
      await b.publish(WORK, { n }, { source: 'documents' });
    }
    await expect.poll(() => sorted(gotA[FAN]!), { timeout: 5_000 }).toEqual([1, 2, 3, 4, 5]);
    await expect.poll(() => sorted(gotB[FAN]!), { timeout: 5_000 }).toEqual([1, 2, 3, 4, 5]);
    await expect.poll(() => sorted([...gotA[WORK]!, ...gotB[WORK]!]), { timeout: 5_000 }).toEqual([1, 2, 3, 4, 5]);
    // A while later: nothing heard twice, each work item by exactly one instance.
    await new Promise((r) => setTimeout(r, 500));
    expect(sorted(gotA[FAN]!)).toEqual([1, 2, 3, 4, 5]);
    expect(sorted(gotB[FAN]!)).toEqual([1, 2, 3, 4, 5]);
    expect(sorted([...gotA[WORK]!, ...gotB[WORK]!])).toEqual([1, 2, 3, 4, 5]);
    expect(await a.pending(MODULE)).toEqual({ [FAN]: 0, [WORK]: 0 });
  });

  it('starts an instance at the stream\'s end: what was published before it subscribed is not delivered to it', async () => {
    const a = bus('early');
    const gotA = await listen(a);
    await a.publish(FAN, { n: 1 }, { source: 'config' });
    await expect.poll(() => gotA[FAN], { timeout: 5_000 }).toEqual([1]);
    const late = bus('late');
    const gotLate = await listen(late);
    await a.publish(FAN, { n: 2 }, { source: 'config' });
    await expect.poll(() => gotLate[FAN], { timeout: 5_000 }).toEqual([2]);
    await expect.poll(() => gotA[FAN], { timeout: 5_000 }).toEqual([1, 2]);
  });

  it('retries and dead-letters a fan-out delivery per instance, without touching the other instance', async () => {
    let failures = 0;
    // Instance a fails event 1 once (then handles it on the retry) and event 2 always.
    const a = bus('retry-a', { retryDelayMs: 100, maxAttempts: 3 });
    const gotA = await listen(a, (type, n) => type === FAN && (n === 2 || (n === 1 && failures++ === 0)));
    const b = bus('retry-b', { retryDelayMs: 100, maxAttempts: 3 });
    const gotB = await listen(b);
    await a.publish(FAN, { n: 1 }, { source: 'config' });
    await a.publish(FAN, { n: 2 }, { source: 'config' });
    await expect.poll(() => sorted(gotB[FAN]!), { timeout: 5_000 }).toEqual([1, 2]);
    await expect.poll(() => [...new Set(gotA[FAN])], { timeout: 5_000 }).toEqual([1]);
    await expect.poll(async () => (await a.deadLetters({ moduleId: MODULE })).map((d) => [d.type, (d.event.payload as { n: number }).n, d.attempts]), { timeout: 5_000 }).toEqual([[FAN, 2, 3]]);
    expect(await a.pending(MODULE)).toEqual({ [FAN]: 0, [WORK]: 0 });
    expect(sorted(gotB[FAN]!)).toEqual([1, 2]);
  });

  it('removes an instance\'s group when it closes', async () => {
    const a = bus('closing-a');
    const b = bus('closing-b');
    await listen(a);
    await listen(b);
    expect(await groups()).toEqual([`${MODULE}@closing-a`, `${MODULE}@closing-b`]);
    await a.close(1_000);
    expect(await groups()).toEqual([`${MODULE}@closing-b`]);
  });

  it('sweeps away the group of an instance that is gone, keeping live instances\' and other modules\'', async () => {
    // What processes that died leave behind: their group, with their consumer and an entry it held.
    for (const group of [`${MODULE}@dead-1`, `${MODULE}@live-1`, `other@dead-2`]) {
      await events.raw.xgroup('CREATE', FAN_STREAM, group, '$', 'MKSTREAM');
      await events.raw.xgroup('CREATECONSUMER', FAN_STREAM, group, group.split('@')[1]!);
    }
    await events.raw.xadd(FAN_STREAM, '*', 'envelope', '{}');
    await events.raw.xreadgroup('GROUP', `${MODULE}@dead-1`, 'dead-1', 'COUNT', 1, 'STREAMS', FAN_STREAM, '>');

    const alive = bus('alive', { consumerIdleMs: 400, consumerSweepMs: 100, retryDelayMs: 100, liveInstances: () => ['live-1'] });
    await listen(alive);
    await expect.poll(groups, { timeout: 5_000 }).toEqual(['other@dead-2', `${MODULE}@alive`, `${MODULE}@live-1`]);
    // Several sweeps later the live instance's group is still there, however idle.
    await new Promise((r) => setTimeout(r, 800));
    expect(await groups()).toEqual(['other@dead-2', `${MODULE}@alive`, `${MODULE}@live-1`]);
  });
});

describe('a settings change reaches every AutoBot on the same Redis', () => {
  let shared: TestRedis;
  let apps: TestApp[] = [];

  beforeAll(async () => {
    shared = await startTestRedis();
    const env = { AUTOBOT_RATE_LIMITS: JSON.stringify({ auth: { points: 10_000, durationS: 60 } }) };
    const first = await startTestApp({ redisUrl: shared.url, credentials: 'module', catalogue: coreModules, env });
    const second = await startTestApp({ redisUrl: shared.url, credentials: 'module', catalogue: coreModules, env });
    apps = [first, second];
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.stop()));
    await shared?.stop();
  });

  it('PATCH /config on one instance changes the auth settings both instances sign in with', async () => {
    const [first, second] = apps as [TestApp, TestApp];
    const admin = await authHttp(first.url).login('admin', ADMIN_PASSWORD);
    expect(admin.expiresIn).toBe(900);
    for (const ttl of [120, 300]) {
      const res = await authHttp(first.url).request('PATCH', '/config', { token: admin.accessToken, body: { auth: { accessTokenTtlS: ttl } } });
      expect(res.status).toBe(200);
      // Each instance signs its new tokens with the lifetime it now holds in its settings.
      for (const app of [first, second]) {
        await expect
          .poll(async () => ((await authHttp(app.url).login('admin', ADMIN_PASSWORD)) as TokenPair).expiresIn, { timeout: 5_000, interval: 100 })
          .toBe(ttl);
      }
    }
  });
});
