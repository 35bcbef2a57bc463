// Rotating the access-token signing key (POST /auth/keys/rotate, admin): new tokens carry the new key id,
// live sessions keep working (their access tokens until they expire, their refresh tokens as before),
// a second instance on the same Redis accepts tokens signed with the new key at once, and a retired key
// stops verifying once its time is over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { decodeProtectedHeader } from 'jose';
import { catalogue } from '../../../src/modules/catalogue.js';
import { AccessTokens } from '../../../src/modules/auth/access-tokens.js';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../../support/app.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { authHttp, expectErrorEnvelope, type AuthHttp, type TokenPair } from '../../support/auth-http.js';

const RATE_LIMITS = JSON.stringify({ auth: { points: 10_000, durationS: 60 } });

let redis: TestRedis;
let app: TestApp;
let second: TestApp;
let http: AuthHttp;
let admin: TokenPair;

beforeAll(async () => {
  redis = await startTestRedis();
  const env = { AUTOBOT_RATE_LIMITS: RATE_LIMITS };
  app = await startTestApp({ redisUrl: redis.url, credentials: 'module', catalogue, env });
  // Another instance of the same deployment: it shares the keys through Redis, not through memory.
  second = await startTestApp({ redisUrl: redis.url, credentials: 'module', catalogue, env });
  http = authHttp(app.url);
  admin = await http.login('admin', ADMIN_PASSWORD);
});

afterAll(async () => {
  await Promise.all([app?.stop(), second?.stop()]);
  await redis?.stop();
});

const kidOf = (token: string) => decodeProtectedHeader(token).kid;

async function rotate(token: string): Promise<{ keyId: string; previousKeyId: string | null; previousValidUntil: string | null }> {
  const res = await http.request('POST', '/auth/keys/rotate', { token });
  expect(res.status).toBe(200);
  return res.json() as Promise<{ keyId: string; previousKeyId: string | null; previousValidUntil: string | null }>;
}

describe('signing-key rotation', () => {
  it('keeps live sessions working and signs new tokens with the new key, on every instance', async () => {
    const user = await http.signedInUser(admin.accessToken);
    const before = kidOf(user.accessToken);
    expect(before).toBeTruthy();

    const rotation = await rotate(admin.accessToken);
    expect(rotation.previousKeyId).toBe(before);
    expect(rotation.keyId).not.toBe(before);
    // Until every token the previous key signed has expired (15 minutes at most), and not much longer.
    const keptMs = Date.parse(rotation.previousValidUntil!) - Date.now();
    expect(keptMs).toBeGreaterThan(900_000 - 5_000);
    expect(keptMs).toBeLessThan(1_800_000);

    // The access token issued before the rotation still works, on both instances.
    for (const base of [app.url, second.url]) {
      expect((await authHttp(base).request('GET', '/auth/me', { token: user.accessToken })).status).toBe(200);
    }
    // The session goes on: its refresh token gives a pair signed with the new key.
    const refreshed = (await (await http.request('POST', '/auth/refresh', { body: { refreshToken: user.refreshToken } })).json()) as TokenPair;
    expect(kidOf(refreshed.accessToken)).toBe(rotation.keyId);
    // A fresh sign-in too; and the other instance, which has not re-read the keys yet, accepts it.
    const fresh = await http.login(user.user.username, 'correct-horse-battery');
    expect(kidOf(fresh.accessToken)).toBe(rotation.keyId);
    expect((await authHttp(second.url).request('GET', '/auth/me', { token: fresh.accessToken })).status).toBe(200);
    // The other instance signs with the new key as well.
    const there = await authHttp(second.url).login(user.user.username, 'correct-horse-battery');
    expect(kidOf(there.accessToken)).toBe(rotation.keyId);
    expect((await http.request('GET', '/auth/me', { token: there.accessToken })).status).toBe(200);
  });

  it('is for admins only', async () => {
    const user = await http.signedInUser(admin.accessToken);
    await expectErrorEnvelope(await http.request('POST', '/auth/keys/rotate', { token: user.accessToken }), 403, 'forbidden');
    await expectErrorEnvelope(await http.request('POST', '/auth/keys/rotate'), 401, 'unauthenticated');
  });

  it('stops verifying a retired key once its time is over', async () => {
    const user = await http.signedInUser(admin.accessToken);
    const oldKid = kidOf(user.accessToken)!;
    await rotate(admin.accessToken);
    const db = new Redis({ path: redis.target.path!, db: 5, keyPrefix: 'auth:' });
    try {
      // A fresh instance of the key holder reads the keys as they are stored: the retired key verifies.
      const tokens = new AccessTokens(db);
      await tokens.init();
      expect(await tokens.verify(user.accessToken)).toEqual({ userId: user.user.id, sessionId: expect.any(String) });
      // Its time over (moved into the past rather than waited for), the next reader refuses its tokens.
      expect(await db.zadd('signing-keys:retired-until', 'XX', 'CH', String(Date.now() - 1), oldKid)).toBe(1);
      const later = new AccessTokens(db);
      await later.init();
      expect(await later.verify(user.accessToken)).toBeUndefined();
      tokens.stop();
      later.stop();
      // A token naming a key id that never existed is refused, not trusted to the current key.
      const [, payload, signature] = user.accessToken.split('.') as [string, string, string];
      const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: 'no-such-key' })).toString('base64url');
      await expectErrorEnvelope(await http.request('GET', '/auth/me', { token: `${header}.${payload}.${signature}` }), 401, 'unauthenticated');
    } finally {
      db.disconnect();
    }
  });
});
