// The kernel's admin surface through the gateway: instances, the saga journal, dead-lettered events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { coreTestCatalogue, startTestApp, type TestApp } from '../../support/app.js';
import { ADMIN_TOKEN, USER_TOKEN, bearer } from '../../support/test-auth.js';

let redis: TestRedis;
let app: TestApp;

beforeAll(async () => {
  redis = await startTestRedis();
  app = await startTestApp({ redisUrl: redis.url, eventRetryDelayMs: 100, catalogue: coreTestCatalogue });
});
afterAll(async () => {
  await app?.stop();
  await redis?.stop();
});

const get = (p: string, token = ADMIN_TOKEN) => fetch(`${app.url}/api/v1${p}`, { headers: bearer(token) });

describe('system routes', () => {
  it('lists every module with where it runs and its health', async () => {
    const res = await get('/services');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { items: { module: string; where: string; health: string; version: string }[] };
    expect(body.items.map((i) => i.module).sort()).toEqual(['auth', 'config', 'health', 'probe']);
    for (const item of body.items) expect(item).toMatchObject({ where: 'local', health: 'ok', version: expect.any(String) });
  });

  it('reads the saga journal: an empty page, and 404 for an unknown saga', async () => {
    expect(await (await get('/sagas?limit=5')).json()).toEqual({ items: [], nextCursor: null });
    expect((await get('/sagas/no-such-saga')).status).toBe(404);
    expect((await get('/sagas?limit=500')).status).toBe(400);
  });

  it('shows an event whose handler failed every attempt', async () => {
    const probeDb = new Redis({ path: redis.target.path!, db: 12, keyPrefix: 'probe:' });
    await probeDb.set('fail-events', '1');
    try {
      const patch = await fetch(`${app.url}/api/v1/config`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json', ...bearer(ADMIN_TOKEN) },
        body: JSON.stringify({ probe: { greeting: 'doomed' } }),
      });
      expect(patch.status).toBe(200);
      await expect
        .poll(async () => ((await (await get('/events/dead?module=probe')).json()) as { items: unknown[] }).items, { timeout: 10_000 })
        .toEqual([
          expect.objectContaining({
            moduleId: 'probe',
            type: 'config.settings.changed',
            attempts: 5,
            error: expect.stringContaining('fail-events is set'),
            event: expect.objectContaining({ source: 'config', payload: { namespaces: ['probe'], version: 1 } }),
          }),
        ]);
    } finally {
      probeDb.disconnect();
    }
  });

  it('is for admins only', async () => {
    for (const p of ['/services', '/sagas', '/events/dead']) {
      expect((await get(p, USER_TOKEN)).status).toBe(403);
      expect((await fetch(`${app.url}/api/v1${p}`)).status).toBe(401);
    }
  });
});
