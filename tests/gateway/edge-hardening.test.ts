// The edge as an attacker or a careless client meets it: corrupt compressed bodies and bad percent-
// encodings answer 400 in the envelope (not 500); a bearer token too long to be one is a bad token
// (401 on REST, "unauthenticated" on socket.io); refused credentials are counted per client address and
// answer 429 past the budget; a non-public route answers 401 without reading the body; a body that is
// not an object is 400; /rpc does not echo an X-Request-ID the public API would refuse.
import { connect as connectTcp } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connectSocket } from 'socket.io-client';
import { pino } from 'pino';
import { catalogue } from '../../src/modules/catalogue.js';
import { ADMIN_PASSWORD, INTERNAL_TOKEN, startTestApp, type TestApp } from '../support/app.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { authHttp, expectErrorEnvelope, type AuthHttp, type TokenPair } from '../support/auth-http.js';

const FAILURE_BUDGET = 10;
const BUDGETS = JSON.stringify({ auth: { points: 10_000, durationS: 60 }, authFailures: { points: FAILURE_BUDGET, durationS: 60 } });

let redis: TestRedis;
let app: TestApp;
let http: AuthHttp;
let admin: TokenPair;
let nextAddress = 1;
/** Every log line the app writes, to check what a client's mistake is logged as. */
const logLines: { level: number; msg: string }[] = [];

// Each test speaks from addresses of its own (through the trusted loopback proxy), so the failure
// budget of one test does not spill into another.
const freshAddress = () => `198.51.100.${nextAddress++}`;

beforeAll(async () => {
  redis = await startTestRedis();
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  app = await startTestApp({
    redisUrl: redis.url,
    credentials: 'module',
    catalogue,
    logger: pino({ level: 'warn' }, sink),
    env: { AUTOBOT_RATE_LIMITS: BUDGETS, AUTOBOT_TRUST_PROXY: 'loopback' },
  });
  http = authHttp(app.url);
  admin = await http.login('admin', ADMIN_PASSWORD);
});

afterAll(async () => {
  await app?.stop();
  await redis?.stop();
});

const api = (p: string) => `${app.url}/api/v1${p}`;
const errorLogs = () => logLines.filter((l) => l.level >= 50);

describe('client mistakes answer 4xx in the envelope, never 500', () => {
  it('refuses a body claiming a compression it does not have, before and after authentication', async () => {
    for (const encoding of ['gzip', 'deflate', 'br']) {
      for (const token of [undefined, admin.accessToken]) {
        const res = await fetch(api('/auth/login'), {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-encoding': encoding, 'x-forwarded-for': freshAddress(), ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: Buffer.from('definitely not compressed'),
        });
        await expectErrorEnvelope(res, 400, 'invalid_input');
      }
    }
    expect(errorLogs()).toEqual([]);
  });

  it('refuses bad percent-encoding in a path parameter', async () => {
    await expectErrorEnvelope(await fetch(api('/sagas/%E0%A4%A'), { headers: { authorization: `Bearer ${admin.accessToken}` } }), 400, 'invalid_input');
    const res = await fetch(api('/auth/users/%'), {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.accessToken}` },
      body: JSON.stringify({ role: 'user' }),
    });
    await expectErrorEnvelope(res, 400, 'invalid_input');
    expect(errorLogs()).toEqual([]);
  });

  it('refuses a body of null, a string or an array where an object of fields belongs', async () => {
    const user = await http.createUser(admin.accessToken);
    for (const body of ['null', '"admin"', '[{"role":"admin"}]', '7']) {
      const res = await fetch(api(`/auth/users/${user.id}`), {
        method: 'PATCH',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.accessToken}` },
        body,
      });
      await expectErrorEnvelope(res, 400, 'invalid_input');
    }
    // Nothing changed.
    const { items } = (await (await http.request('GET', '/auth/users?limit=100', { token: admin.accessToken })).json()) as { items: { id: string; role: string }[] };
    expect(items.find((u) => u.id === user.id)?.role).toBe('user');
  });

  it('answers an over-long request line in the envelope too', async () => {
    const res = await fetch(api(`/health/live?x=${'a'.repeat(20_000)}`));
    expect(res.status).toBe(431);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_input');
  });
});

describe('bearer tokens at the edge', () => {
  it('answers a token over 4,096 characters with 401 unauthenticated, like any bad token', async () => {
    for (const token of ['a'.repeat(4_097), `${admin.accessToken}${'x'.repeat(5_000)}`, 'abk_' + 'k'.repeat(10_000)]) {
      const res = await fetch(api('/auth/me'), { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': freshAddress() } });
      const body = await expectErrorEnvelope(res, 401, 'unauthenticated');
      expect(body.message).not.toMatch(/4096|too_big|Invalid input/i);
    }
  });

  it('refuses a socket.io handshake with an oversized or malformed token as unauthenticated, logged below error', async () => {
    for (const token of ['b'.repeat(10_000), 'not a token at all', `${admin.accessToken}\u0000`]) {
      const socket = connectSocket(app.url, { path: '/ws', transports: ['websocket'], reconnection: false, auth: { token }, extraHeaders: { 'x-forwarded-for': freshAddress() } });
      const refusal = await new Promise<{ code?: string }>((resolve, reject) => {
        socket.once('connect', () => reject(new Error('accepted')));
        socket.once('connect_error', (err: Error & { data?: { code?: string } }) => resolve(err.data ?? {}));
      });
      socket.close();
      expect(refusal).toMatchObject({ code: 'unauthenticated' });
    }
    expect(errorLogs()).toEqual([]);
  });

  it('counts refused credentials per client address: 429 past the budget, for that address only', async () => {
    const address = freshAddress();
    const me = (token: string, from = address) => fetch(api('/auth/me'), { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': from } });
    const statuses: number[] = [];
    for (let i = 0; i < FAILURE_BUDGET + 5; i++) statuses.push((await me(`forged-token-${i}`)).status);
    expect(statuses).toEqual([...Array(FAILURE_BUDGET).fill(401), ...Array(5).fill(429)]);
    const limited = await me('forged-again');
    await expectErrorEnvelope(limited, 429, 'rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // A handshake from there is refused the same way.
    const socket = connectSocket(app.url, { path: '/ws', transports: ['websocket'], reconnection: false, auth: { token: 'forged' }, extraHeaders: { 'x-forwarded-for': address } });
    const refusal = await new Promise<{ code?: string }>((resolve) => socket.once('connect_error', (err: Error & { data?: { code?: string } }) => resolve(err.data ?? {})));
    socket.close();
    expect(refusal).toMatchObject({ code: 'rate_limited' });
    // Another address is not affected, and a good credential from it works.
    expect((await me(admin.accessToken, freshAddress())).status).toBe(200);
    expect((await me('forged-elsewhere', freshAddress())).status).toBe(401);
  });
});

describe('authentication before the body', () => {
  /** Sends only the head of a request announcing a large body, and reads what comes back. */
  function headOnly(path: string, headers: Record<string, string>): Promise<string> {
    const { hostname, port } = new URL(app.url);
    return new Promise((resolve, reject) => {
      const socket = connectTcp(Number(port), hostname, () => {
        const head = [`POST ${path} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Content-Type: application/json', 'Content-Length: 900000', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
        socket.write(`${head.join('\r\n')}\r\n\r\n`);
      });
      let answer = '';
      socket.on('data', (d: Buffer) => {
        answer += d.toString('utf8');
        if (answer.includes('\r\n\r\n') && answer.includes('}')) {
          socket.destroy();
          resolve(answer);
        }
      });
      socket.on('error', reject);
      // Had the server waited for the 900 KB that never come, there would be no answer at all.
      setTimeout(() => {
        socket.destroy();
        reject(new Error(`no answer without the body; got: ${answer.slice(0, 200)}`));
      }, 3_000);
    });
  }

  it('answers 401 to a non-public route before a byte of its body arrived', async () => {
    const anonymous = await headOnly('/api/v1/auth/users', { 'X-Forwarded-For': freshAddress() });
    expect(anonymous).toMatch(/^HTTP\/1\.1 401 /);
    expect(anonymous).toContain('"unauthenticated"');
    const forged = await headOnly('/api/v1/auth/api-keys', { Authorization: 'Bearer forged', 'X-Forwarded-For': freshAddress() });
    expect(forged).toMatch(/^HTTP\/1\.1 401 /);
    const user = await http.signedInUser(admin.accessToken);
    const forbidden = await headOnly('/api/v1/auth/users', { Authorization: `Bearer ${user.accessToken}` });
    expect(forbidden).toMatch(/^HTTP\/1\.1 403 /);
  });
});

describe('/rpc request ids', () => {
  it('echoes a valid X-Request-ID and replaces one the public API would refuse', async () => {
    const call = (requestId: string) =>
      fetch(`${app.url}/rpc/health/getLive`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${INTERNAL_TOKEN}`, 'x-request-id': requestId },
        body: JSON.stringify({ input: {} }),
      });
    const good = await call('trace-42');
    expect(good.status).toBe(200);
    expect(good.headers.get('x-request-id')).toBe('trace-42');
    for (const bad of ['<script>alert(1)</script>', 'a'.repeat(200), 'with spaces']) {
      const res = await call(bad);
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      const body = await res.text();
      expect(body).not.toContain('<script>');
    }
    // Refused calls too (no internal credential).
    const refused = await fetch(`${app.url}/rpc/health/getLive`, { method: 'POST', headers: { 'x-request-id': '<b>x</b>' } });
    expect(refused.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
