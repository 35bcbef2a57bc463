import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Jobs } from '../../../src/kernel/jobs/jobs.js';
import { RedisConnections } from '../../../src/kernel/redis/redis-connections.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

let redis: TestRedis;
let raw: Redis;
let connections: RedisConnections;
let jobs: Jobs | undefined;

beforeAll(async () => {
  redis = await startTestRedis();
  raw = new Redis({ path: redis.target.path! });
});

afterAll(async () => {
  await raw.quit();
  await redis.stop();
});

afterEach(async () => {
  await jobs?.close(5_000);
  jobs = undefined;
  await connections.closeAll();
  await raw.flushall();
});

function newJobs(): Jobs {
  connections = new RedisConnections(redis.target, logger);
  jobs = new Jobs({ connections, logger });
  return jobs;
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('Jobs', () => {
  it('runs a job on a worker, under keys namespaced by the owning module', async () => {
    const docs = newJobs().forModule('documents');
    const chats = jobs!.forModule('chats');
    const done = deferred<string>();
    docs.worker<{ file: string }, string>('ingest', async (job) => {
      done.resolve(job.data.file);
      return `ingested ${job.data.file}`;
    });
    const queue = docs.queue<{ file: string }>('ingest');
    const job = await queue.add('ingest', { file: 'a.pdf' });
    // Another module's queue of the same name must not see the job.
    const otherQueue = chats.queue('ingest');

    expect(await done.promise).toBe('a.pdf');
    await expect.poll(async () => (await queue.getJob(job.id!))?.returnvalue).toBe('ingested a.pdf');
    expect(await otherQueue.getJobCounts()).toMatchObject({ waiting: 0, active: 0, completed: 0 });

    const keys = await raw.keys('*');
    expect(keys).toContain(`jobs:documents:ingest:${job.id}`);
    expect(keys.some((k) => k.startsWith('jobs:documents:ingest:'))).toBe(true);
    expect(keys.filter((k) => !k.startsWith('jobs:documents:ingest:') && !k.startsWith('jobs:chats:ingest:'))).toEqual([]);
    // The module's defaults: retries with backoff and bounded retention.
    expect(job.opts).toMatchObject({ attempts: 3, backoff: { type: 'exponential' }, removeOnFail: { count: 5000 } });
  });

  it('retries a failing job and then keeps it in the failed list', async () => {
    const docs = newJobs().forModule('documents');
    let calls = 0;
    docs.worker('ocr', async () => {
      calls++;
      throw new Error('scanner jammed');
    });
    const queue = docs.queue('ocr', { defaultJobOptions: { backoff: { type: 'exponential', delay: 10 } } });
    const job = await queue.add('ocr', { page: 1 });

    await expect.poll(async () => (await queue.getFailed()).map((j) => j.id), { timeout: 10_000 }).toEqual([job.id]);
    const [failed] = await queue.getFailed();
    expect(failed!.attemptsMade).toBe(3);
    expect(failed!.failedReason).toBe('scanner jammed');
    expect(calls).toBe(3);
  });

  it('keeps retrying a job that succeeds on a later attempt, and completes it', async () => {
    const docs = newJobs().forModule('documents');
    let calls = 0;
    docs.worker('flaky', async () => {
      calls++;
      if (calls < 2) throw new Error('transient');
      return 'ok';
    });
    const queue = docs.queue('flaky', { defaultJobOptions: { backoff: { type: 'fixed', delay: 10 } } });
    const job = await queue.add('flaky', {});
    await expect.poll(async () => queue.getJobState(job.id!), { timeout: 10_000 }).toBe('completed');
    expect(await queue.getFailed()).toEqual([]);
  });

  it('waits for a running job on close', async () => {
    const docs = newJobs().forModule('documents');
    const started = deferred<void>();
    let finished = false;
    docs.worker('slow', async () => {
      started.resolve();
      await new Promise((r) => setTimeout(r, 300));
      finished = true;
    });
    const queue = docs.queue('slow');
    const job = await queue.add('slow', {});
    await started.promise;
    await jobs!.close(5_000);
    expect(finished).toBe(true);
    const check = new Jobs({ connections, logger }).forModule('documents').queue('slow');
    expect(await check.getJobState(job.id!)).toBe('completed');
    await check.close();
  });

  it('returns from close within the deadline even while a job hangs', async () => {
    const docs = newJobs().forModule('documents');
    const started = deferred<void>();
    docs.worker('hang', async () => {
      started.resolve();
      await new Promise(() => undefined);
    });
    await docs.queue('hang').add('hang', {});
    await started.promise;

    const t0 = Date.now();
    await jobs!.close(1_000);
    const elapsed = Date.now() - t0;
    // Without the deadline close() would wait for the hanging job forever (and time the test out).
    expect(elapsed).toBeLessThan(1_750);
    expect(elapsed).toBeGreaterThanOrEqual(500);
  });

  it('hands a job whose worker was force-closed to another worker once its lock expires', async () => {
    const first = newJobs().forModule('documents');
    const started = deferred<void>();
    first.worker('hang', async () => {
      started.resolve();
      await new Promise(() => undefined);
    }, { lockDurationMs: 1_000, stalledIntervalMs: 500, maxStalledCount: 2 });
    const job = await first.queue('hang').add('hang', { n: 1 });
    await started.promise;
    await jobs!.close(300);

    const second = new Jobs({ connections, logger });
    jobs = second;
    const again = deferred<unknown>();
    second.forModule('documents').worker('hang', async (j) => again.resolve(j.data), { stalledIntervalMs: 500 });
    expect(await again.promise).toEqual({ n: 1 });
    await expect.poll(async () => second.forModule('documents').queue('hang').getJobState(job.id!)).toBe('completed');
  });
});
