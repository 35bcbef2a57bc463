// AUTOBOT_REMOTE_MODULES says what it does: a module named there is not hosted here, also when
// AUTOBOT_MODULES is unset ("all" = all the others), and calls to it go to the named process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { ADMIN_TOKEN, bearer } from '../../support/test-auth.js';

let redis: TestRedis;
let configHost: TestApp;
let rest: TestApp;

beforeAll(async () => {
  redis = await startTestRedis();
  configHost = await startTestApp({ redisUrl: redis.url, env: { AUTOBOT_MODULES: 'config' } });
  // AUTOBOT_MODULES unset: everything but config.
  rest = await startTestApp({ redisUrl: redis.url, env: { AUTOBOT_REMOTE_MODULES: `config=${configHost.url}` } });
});

afterAll(async () => {
  await rest?.stop();
  await configHost?.stop();
  await redis?.stop();
});

describe('AUTOBOT_REMOTE_MODULES with AUTOBOT_MODULES unset', () => {
  it('hosts every module but the remote one', () => {
    expect(rest.runtime.hostedIds()).not.toContain('config');
    expect(rest.runtime.hostedIds().sort()).toEqual(rest.runtime.catalogue.map((m) => m.contract.id).filter((id) => id !== 'config').sort());
    expect(configHost.runtime.hostedIds()).toEqual(['config']);
  });

  it('reaches the remote module at the URL given, and says so', async () => {
    const services = (await (await fetch(`${rest.url}/api/v1/services`, { headers: bearer(ADMIN_TOKEN) })).json()) as {
      items: { module: string; where: string; url: string | null; health: string }[];
    };
    expect(services.items.find((s) => s.module === 'config')).toMatchObject({ where: 'remote', url: configHost.url, health: 'ok' });
    // A change through this process lands in the config process: it is the one that answers afterwards.
    const patch = await fetch(`${rest.url}/api/v1/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', ...bearer(ADMIN_TOKEN) },
      body: JSON.stringify({ health: { checkTimeoutMs: 1400 } }),
    });
    expect(patch.status).toBe(200);
    const there = (await (await fetch(`${configHost.url}/api/v1/config`, { headers: bearer(ADMIN_TOKEN) })).json()) as { settings: { health: { checkTimeoutMs: number } } };
    expect(there.settings.health.checkTimeoutMs).toBe(1400);
  });
});

describe('a module in both lists', () => {
  it('stops the start with a message naming both variables', async () => {
    await expect(startTestApp({ redisUrl: redis.url, env: { AUTOBOT_MODULES: 'config,health', AUTOBOT_REMOTE_MODULES: `config=${configHost.url}` } })).rejects.toThrow(
      /AUTOBOT_REMOTE_MODULES: names "config", which AUTOBOT_MODULES hosts here too/,
    );
  });
});
