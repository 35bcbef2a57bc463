// The gateway still judges credentials when `auth` runs in another process: B hosts only `health` and
// reaches `auth` and `config` on A over HTTP. Both run the real program (src/main.ts), the way an
// operator starts them, so B authenticates with the auth module's remote port, not a test stand-in.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD } from '../support/app.js';
import { authHttp, expectErrorEnvelope, type AuthHttp, type TokenPair } from '../support/auth-http.js';
import { freePort, spawnApp, type ChildApp } from '../support/process.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';

const INTERNAL_TOKEN = 'auth-remote-internal-token-0123';
const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts');
// main.ts logs its URL in the ready line (LOG_LEVEL info); the default ready line is the test server's.
const READY = /"url":"(http[^"]+)".*AutoBot is ready/;

let redis: TestRedis;
const dataDirs: string[] = [];
const children: ChildApp[] = [];

let b: ChildApp;
let viaB: AuthHttp;
let admin: TokenPair;

function start(env: Record<string, string>): Promise<ChildApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'abau-'));
  dataDirs.push(dataDir);
  return spawnApp(
    {
      REDIS_URL: redis.url,
      AUTOBOT_INTERNAL_TOKEN: INTERNAL_TOKEN,
      AUTOBOT_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTOBOT_DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      ...env,
    },
    { script: MAIN, readyLine: READY },
  ).then((child) => {
    children.push(child);
    return child;
  });
}

beforeAll(async () => {
  redis = await startTestRedis();
  const portA = await freePort();
  await start({ PORT: String(portA), AUTOBOT_MODULES: 'auth,config' });
  const remote = `http://127.0.0.1:${portA}`;
  b = await start({ PORT: '0', AUTOBOT_MODULES: 'health', AUTOBOT_REMOTE_MODULES: `auth=${remote},config=${remote}` });
  viaB = authHttp(b.url);
  admin = await viaB.login('admin', ADMIN_PASSWORD);
}, 60_000);

afterAll(async () => {
  for (const child of children) {
    if (child.child.exitCode === null) {
      child.child.kill('SIGTERM');
      await child.exited;
    }
  }
  await redis?.stop();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

describe('auth in another process', () => {
  it('serves sign-in through the gateway of the process without auth', async () => {
    expect(admin.user).toMatchObject({ username: 'admin', role: 'admin' });
    const health = (await (await fetch(`${b.url}/api/v1/health`)).json()) as { modules: Record<string, { where: string }> };
    expect(health.modules.auth).toMatchObject({ where: 'remote' });
  });

  it('accepts an access token and an API key on /auth/me', async () => {
    const user = await viaB.signedInUser(admin.accessToken);
    const key = await viaB.createApiKey(user.accessToken);
    for (const token of [user.accessToken, key.key]) {
      const res = await viaB.request('GET', '/auth/me', { token });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(user.user);
    }
  });

  it('answers 401 to a bad token and 403 to a user on an admin route', async () => {
    await expectErrorEnvelope(await viaB.request('GET', '/auth/me', { token: 'not-a-token' }), 401, 'unauthenticated');
    await expectErrorEnvelope(await viaB.request('GET', '/config', { token: `${admin.accessToken.slice(0, -4)}AAAA` }), 401, 'unauthenticated');
    const user = await viaB.signedInUser(admin.accessToken);
    await expectErrorEnvelope(await viaB.request('GET', '/config', { token: user.accessToken }), 403, 'forbidden');
    await expectErrorEnvelope(await viaB.request('GET', '/auth/users', { token: user.accessToken }), 403, 'forbidden');
    // The same admin token opens the admin route: the 403 above is about the role.
    expect((await viaB.request('GET', '/config', { token: admin.accessToken })).status).toBe(200);
  });
});
