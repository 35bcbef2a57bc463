import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { InstanceRegistry } from '../../../src/kernel/registry/instance-registry.js';
import { createLogger } from '../../../src/kernel/log/logger.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';

let redis: TestRedis;
const clients: Redis[] = [];
const logger = createLogger('silent');

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await redis.stop();
});

function registry(id: string, modules: string[], overrides: Record<string, string> = {}) {
  const client = new Redis({ path: redis.target.path!, keyPrefix: 'kernel:' });
  client.on('error', () => undefined);
  clients.push(client);
  return new InstanceRegistry(
    client,
    logger,
    { id, url: null, modules, version: '1.2.3', startedAt: new Date().toISOString() },
    { heartbeatMs: 100, overrides },
  );
}

describe('instance registry', () => {
  it('finds healthy instances of a module and spreads calls over them', async () => {
    const one = registry('one', ['embeddings']);
    const two = registry('two', ['embeddings', 'accelerator']);
    const caller = registry('caller', []);
    await one.start('http://10.0.0.1:8001');
    await two.start('http://10.0.0.2:8001');
    await caller.start(null);
    await caller.refresh();
    expect(caller.instances().map((i) => i.id).sort()).toEqual(['one', 'two']);
    const urls = new Set([caller.urlFor('embeddings'), caller.urlFor('embeddings')]);
    expect(urls).toEqual(new Set(['http://10.0.0.1:8001', 'http://10.0.0.2:8001']));
    expect(caller.urlFor('accelerator')).toBe('http://10.0.0.2:8001');
    expect(caller.urlFor('browser')).toBeUndefined();
    await Promise.all([one.stop(), two.stop(), caller.stop()]);
  });

  it('drops an instance whose heartbeats stop, and removes one that deregisters', async () => {
    const dying = registry('dying', ['browser']);
    const leaving = registry('leaving', ['desktop']);
    const caller = registry('caller2', []);
    await dying.start('http://10.0.0.3:8001');
    await leaving.start('http://10.0.0.4:8001');
    await caller.refresh();
    expect(caller.urlFor('browser')).toBe('http://10.0.0.3:8001');
    await leaving.stop();
    await caller.refresh();
    expect(caller.urlFor('desktop')).toBeUndefined();
    // A crash as seen from Redis: the instance's connection goes and its heartbeats with it.
    const dyingClient = clients[clients.length - 3]!;
    dyingClient.disconnect();
    await expect.poll(async () => (await caller.refresh()).map((i) => i.id), { timeout: 2000, interval: 50 }).not.toContain('dying');
    expect(caller.urlFor('browser')).toBeUndefined();
    await dying.stop();
  });

  it('lets configuration override discovery', async () => {
    const caller = registry('caller3', [], { config: 'http://fixed:8001' });
    await caller.refresh();
    expect(caller.urlFor('config')).toBe('http://fixed:8001');
  });
});
