// The config module's contract, run against the local and the HTTP binding: the same behaviour on
// both sides of a wire is what lets the module be lifted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configContract, REDACTED } from '../../../src/modules/config/contract.js';
import { Redis } from 'ioredis';
import type { Port } from '../../../src/kernel/contract/define.js';
import { healthContract } from '../../../src/modules/health/contract.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { coreTestCatalogue, startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { probeContract } from '../../support/probe-module.js';

describe.each(bindingKinds)('config contract (%s binding)', (kind) => {
  let redis: TestRedis;
  let app: TestApp;
  let config: Port<typeof configContract>;

  beforeAll(async () => {
    redis = await startTestRedis();
    // Redis dies in the last test: a short shutdown deadline keeps the teardown quick.
    // The foundation and the probe: this suite is about config, and its last test kills Redis under
    // whatever runs (a domain module's background Redis call has once surfaced there as an unhandled
    // rejection: see the closing note).
    app = await startTestApp({ redisUrl: redis.url, env: { AUTOBOT_SHUTDOWN_TIMEOUT_MS: '1500' }, catalogue: coreTestCatalogue });
    config = portFor(kind, app, configContract);
  });
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  async function expectCode(p: Promise<unknown>, code: string) {
    await expect(p).rejects.toMatchObject({ code });
  }

  it('reads every namespace with its defaults before anything is set', async () => {
    const { version, settings } = await config.getSettings({});
    expect(version).toBe(0);
    expect(settings.health).toEqual({ checkTimeoutMs: 1500 });
    expect(settings.probe).toEqual({ greeting: 'hello', limit: 5 });
  });

  it('changes a field, bumps the version and tells subscribers', async () => {
    const after = await config.updateSettings({ changes: { probe: { greeting: 'hi there' } } });
    expect(after.version).toBe(1);
    expect(after.settings.probe).toMatchObject({ greeting: 'hi there', limit: 5 });
    expect((await config.getSettings({})).settings.probe!.greeting).toBe('hi there');
    const probe = app.runtime.port(probeContract);
    await expect.poll(async () => (await probe.seenEvents({})).items, { timeout: 5000 }).toContain(
      'config.settings.changed:{"namespaces":["probe"],"version":1}',
    );
  });

  it('reloads a module that subscribed to its namespace (health applies its new check timeout)', async () => {
    const probeDb = new Redis({ path: redis.target.path!, db: 12, keyPrefix: 'probe:' });
    try {
      await probeDb.set('health-delay', '400');
      const health = app.runtime.port(healthContract);
      expect((await health.getHealth({})).modules.probe!.status).toBe('ok');
      await config.updateSettings({ changes: { health: { checkTimeoutMs: 100 } } });
      await expect
        .poll(async () => (await health.getHealth({})).modules.probe, { timeout: 5000 })
        .toMatchObject({ status: 'down', detail: 'no answer within 100 ms' });
    } finally {
      await probeDb.del('health-delay');
      await config.updateSettings({ changes: { health: { checkTimeoutMs: null } } });
      probeDb.disconnect();
    }
  });

  it('refuses an invalid value naming the field, and writes nothing', async () => {
    const before = await config.getSettings({});
    const err = await config.updateSettings({ changes: { probe: { limit: 99, greeting: 'ok' } } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'invalid_input', details: [{ path: 'probe.limit' }] });
    expect(await config.getSettings({})).toEqual(before);
  });

  it('refuses unknown namespaces and fields', async () => {
    await expect(config.updateSettings({ changes: { nope: { a: 1 } } })).rejects.toMatchObject({
      code: 'invalid_input',
      details: [{ path: 'nope' }],
    });
    await expect(config.updateSettings({ changes: { probe: { colour: 'red' } } })).rejects.toMatchObject({
      code: 'invalid_input',
      details: [{ path: 'probe.colour' }],
    });
    await expectCode(config.updateSettings({ changes: {} }), 'invalid_input');
    await expectCode(config.updateSettings({ changes: 'all' } as never), 'invalid_input');
  });

  it('redacts secrets on the admin view, keeps them for the owning module, and keeps them when the placeholder comes back', async () => {
    await config.updateSettings({ changes: { probe: { apiKey: 'sk-very-secret' } } });
    const view = await config.getSettings({});
    expect(view.settings.probe!.apiKey).toBe(REDACTED);
    expect(JSON.stringify(view)).not.toContain('sk-very-secret');
    expect((await config.getModuleSettings({ module: 'probe' })).settings.apiKey).toBe('sk-very-secret');
    // A client that PATCHes back what it read must not overwrite the secret with the placeholder.
    await config.updateSettings({ changes: { probe: { apiKey: REDACTED, limit: 3 } } });
    expect((await config.getModuleSettings({ module: 'probe' })).settings).toMatchObject({ apiKey: 'sk-very-secret', limit: 3 });
  });

  it('resets a field to its default with null', async () => {
    await config.updateSettings({ changes: { probe: { limit: null } } });
    expect((await config.getModuleSettings({ module: 'probe' })).settings.limit).toBe(5);
  });

  it('answers not_found for a namespace nobody declared', async () => {
    await expectCode(config.getModuleSettings({ module: 'ghost' }), 'not_found');
  });

  it('applies concurrent changes without losing any', async () => {
    const before = (await config.getSettings({})).version;
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => config.updateSettings({ changes: { probe: { greeting: `g${i}` } } })),
    );
    expect((await config.getSettings({})).version).toBe(before + 8);
  });

  it('publishes a JSON Schema per namespace, marking secrets', async () => {
    const { namespaces } = await config.getSchema({});
    expect(namespaces.health).toMatchObject({ type: 'object', properties: { checkTimeoutMs: { type: 'integer', default: 1500 } } });
    expect(namespaces.probe).toMatchObject({ properties: { apiKey: { type: 'string', secret: true } } });
  });

  it('answers unavailable (not internal) while Redis is down', async () => {
    redis.server.kill();
    await expect(config.getSettings({})).rejects.toMatchObject({ code: 'unavailable' });
  });
});
