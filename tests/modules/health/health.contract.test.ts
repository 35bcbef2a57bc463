// The health module's contract against the local and the HTTP binding, including what it says when
// Redis, its critical dependency, dies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { healthContract } from '../../../src/modules/health/contract.js';
import type { Port } from '../../../src/kernel/contract/define.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { coreTestCatalogue, startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';

describe.each(bindingKinds)('health contract (%s binding)', (kind) => {
  let redis: TestRedis;
  let app: TestApp;
  let health: Port<typeof healthContract>;

  beforeAll(async () => {
    redis = await startTestRedis();
    // Redis dies in the last test: a short shutdown deadline keeps the teardown quick.
    // The foundation and the probe: what is aggregated is known exactly (the whole catalogue is started
    // by tests/app/lifecycle.test.ts).
    app = await startTestApp({ redisUrl: redis.url, env: { AUTOBOT_SHUTDOWN_TIMEOUT_MS: '1500' }, catalogue: coreTestCatalogue });
    health = portFor(kind, app, healthContract);
  });
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  it('is live', async () => {
    expect(await health.getLive({})).toEqual({ status: 'ok' });
  });

  it('is ready with Redis answering', async () => {
    const ready = await health.getReady({});
    expect(ready.status).toBe('ready');
    expect(ready.dependencies.redis!.status).toBe('ok');
  });

  it('aggregates every module and dependency', async () => {
    const h = await health.getHealth({});
    expect(h.status).toBe('ok');
    expect(h.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(h.uptimeS).toBeGreaterThanOrEqual(0);
    expect(Object.keys(h.modules).sort()).toEqual(['auth', 'config', 'health', 'probe']);
    for (const m of Object.values(h.modules)) expect(m).toMatchObject({ status: 'ok', where: 'local' });
    expect(h.dependencies.redis).toMatchObject({ status: 'ok' });
  });

  it('reports down and not ready when Redis dies', async () => {
    redis.server.kill();
    await expect.poll(async () => (await health.getHealth({})).status, { timeout: 10_000 }).toBe('down');
    await expect(health.getReady({})).rejects.toMatchObject({ code: 'unavailable' });
    expect((await health.getHealth({})).dependencies.redis!.status).toBe('down');
  });
});
