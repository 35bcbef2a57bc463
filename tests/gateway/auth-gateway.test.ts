// The gateway with the real auth module as the judge of credentials: bearer access tokens and API keys on
// REST, refused forgeries (alg none, a wrong signature, an expired token), the sign-in lockout, a role
// matrix generated from every admin route the contracts declare, and socket.io handshakes and the
// disconnects that follow a logout or a disabled account.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { SignJWT, decodeJwt } from 'jose';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { io as connectSocket, type Socket } from 'socket.io-client';
import type { AnyContract } from '../../src/kernel/contract/define.js';
import { systemContract } from '../../src/kernel/system/contract.js';
import { catalogue } from '../../src/modules/catalogue.js';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../support/app.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { affineModel } from '../support/onnx-model.js';
import { authHttp, expectErrorEnvelope, uniqueUsername, USER_PASSWORD, type AuthHttp, type TokenPair } from '../support/auth-http.js';

// The gateway's own `auth` rate class (20 a minute per address) would answer 429 long before this file
// is done signing in; the module's failed sign-in limit, which these tests are about, is separate.
const RATE_LIMITS = JSON.stringify({ auth: { points: 10_000, durationS: 60 } });

/** Every contract the gateway serves: the catalogue's modules and the kernel's own admin surface. */
const servedContracts: readonly AnyContract[] = [...catalogue.map((m) => m.contract), systemContract];

const routeKey = (route: { method: string; path: string }) => `${route.method} ${route.path}`;
const adminRoutes = servedContracts.flatMap((c) => c.routes.filter((r) => r.auth === 'admin').map(routeKey));
const userRoutes = servedContracts.flatMap((c) => c.routes.filter((r) => r.auth === 'user').map(routeKey));

let redis: TestRedis;
let app: TestApp;
let http: AuthHttp;
let admin: TokenPair;

beforeAll(async () => {
  redis = await startTestRedis();
  // The production catalogue, so the role matrix below covers exactly what a real deployment serves.
  app = await startTestApp({ redisUrl: redis.url, credentials: 'module', catalogue, env: { AUTOBOT_RATE_LIMITS: RATE_LIMITS } });
  http = authHttp(app.url);
  admin = await http.login('admin', ADMIN_PASSWORD);
});

afterAll(async () => {
  await app?.stop();
  await redis?.stop();
});

/** The access-token signing key, read where every instance reads it. */
async function signingKey(): Promise<Uint8Array> {
  const db = new Redis({ path: redis.target.path!, db: 5 });
  try {
    const stored = await db.get('auth:signing-key');
    if (!stored) throw new Error('no signing key in auth:signing-key');
    return Buffer.from(stored, 'base64');
  } finally {
    db.disconnect();
  }
}

/** A token with the claims of a real one, signed by the test with `key`; `exp` in epoch seconds. */
function forge(real: string, key: Uint8Array, opts: { exp: number; audience?: string }): Promise<string> {
  const claims = decodeJwt(real);
  return new SignJWT({ sid: claims.sid })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub!)
    .setIssuer('autobot')
    .setAudience(opts.audience ?? 'autobot-api')
    .setIssuedAt(opts.exp - 900)
    .setExpirationTime(opts.exp)
    .sign(key);
}

const nowS = () => Math.floor(Date.now() / 1000);

describe('bearer credentials on REST', () => {
  it('accepts an access token and an API key on GET /auth/me', async () => {
    const user = await http.signedInUser(admin.accessToken);
    const key = await http.createApiKey(user.accessToken);
    for (const token of [user.accessToken, key.key]) {
      const res = await http.request('GET', '/auth/me', { token });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(user.user);
    }
  });

  it('refuses forged, tampered, expired and ended tokens with 401 and the error envelope', async () => {
    const user = await http.signedInUser(admin.accessToken);
    const real = user.accessToken;
    const [header, payload, signature] = real.split('.') as [string, string, string];
    const key = await signingKey();
    // The test's own signing is right: a fresh token signed this way is accepted. So the refusals below
    // are about what each forgery changes, nothing else.
    expect((await http.request('GET', '/auth/me', { token: await forge(real, key, { exp: nowS() + 300 }) })).status).toBe(200);

    const alg = (name: string) => Buffer.from(JSON.stringify({ alg: name, typ: 'JWT' })).toString('base64url');
    // A different character in the middle of the signature (the last one may only carry padding bits).
    const mid = Math.floor(signature.length / 2);
    const flipped = `${signature.slice(0, mid)}${signature[mid] === 'A' ? 'B' : 'A'}${signature.slice(mid + 1)}`;
    const ended = await http.login(user.user.username, USER_PASSWORD);
    expect((await http.request('POST', '/auth/logout', { token: ended.accessToken })).status).toBe(204);

    const refused: Record<string, string> = {
      'alg none': `${alg('none')}.${payload}.`,
      'alg none, signature kept': `${alg('none')}.${payload}.${signature}`,
      'flipped signature': `${header}.${payload}.${flipped}`,
      'signed with another key': await forge(real, new TextEncoder().encode('not-the-signing-key-0123456789-abcdef'), { exp: nowS() + 300 }),
      'expired a minute ago': await forge(real, key, { exp: nowS() - 60 }),
      'for another audience': await forge(real, key, { exp: nowS() + 300, audience: 'someone-else' }),
      'of a logged-out session': ended.accessToken,
      'a refresh token': user.refreshToken,
      'a made-up API key': `abk_${'x'.repeat(43)}`,
    };
    for (const [what, token] of Object.entries(refused)) {
      const res = await http.request('GET', '/auth/me', { token });
      expect({ what, status: res.status }).toEqual({ what, status: 401 });
      await expectErrorEnvelope(res, 401, 'unauthenticated');
    }
    // The real token was never hurt by any of that.
    expect((await http.request('GET', '/auth/me', { token: real })).status).toBe(200);
  });

  it('answers 403 to a signed-in user on an admin route', async () => {
    const user = await http.signedInUser(admin.accessToken);
    await expectErrorEnvelope(await http.request('GET', '/auth/users', { token: user.accessToken }), 403, 'forbidden');
  });

  it('keeps /metrics (mounted by hand, outside the contracts) to admins', async () => {
    const user = await http.signedInUser(admin.accessToken);
    await expectErrorEnvelope(await fetch(`${app.url}/metrics`), 401, 'unauthenticated');
    await expectErrorEnvelope(await fetch(`${app.url}/metrics`, { headers: { authorization: `Bearer ${user.accessToken}` } }), 403, 'forbidden');
    expect((await fetch(`${app.url}/metrics`, { headers: { authorization: `Bearer ${admin.accessToken}` } })).status).toBe(200);
  });
});

describe('failed sign-in lockout', () => {
  // Its own Redis and app: the lockout also counts per client address, and every request here comes
  // from 127.0.0.1, so it would lock every other test in this file out.
  let lockRedis: TestRedis;
  let lockApp: TestApp;

  beforeAll(async () => {
    lockRedis = await startTestRedis();
    lockApp = await startTestApp({ redisUrl: lockRedis.url, credentials: 'module', catalogue, env: { AUTOBOT_RATE_LIMITS: RATE_LIMITS } });
  });
  afterAll(async () => {
    await lockApp?.stop();
    await lockRedis?.stop();
  });

  it('answers the five failures of the window with 401, then 429 with Retry-After, even to the right password', async () => {
    const lock = authHttp(lockApp.url);
    const { accessToken } = await lock.login('admin', ADMIN_PASSWORD);
    const user = await lock.createUser(accessToken);
    const attempt = (password: string) => lock.request('POST', '/auth/login', { body: { username: user.username, password } });

    for (let i = 1; i <= 5; i++) {
      const res = await attempt(`wrong-password-${i}`);
      expect({ attempt: i, status: res.status }).toEqual({ attempt: i, status: 401 });
    }
    const sixth = await attempt('wrong-password-6');
    await expectErrorEnvelope(sixth, 429, 'rate_limited');
    const retryAfter = Number(sixth.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThan(0);
    // Never past the window (loginWindowS, 900 s by default).
    expect(retryAfter).toBeLessThanOrEqual(900);
    // A locked-out sign-in is not a password oracle: the right password gets the same 429.
    await expectErrorEnvelope(await attempt(USER_PASSWORD), 429, 'rate_limited');
  });
});

describe('role matrix of every admin route', () => {
  interface Example {
    params?: Record<string, string>;
    body?: unknown;
    /** What an admin gets; any 2xx when absent. */
    adminStatus?: number;
  }

  // A valid request per admin route, building fixtures as needed. A new admin route fails the test
  // below until it has an entry here: coverage of the role gate does not depend on remembering it.
  const examples: Record<string, () => Promise<Example>> = {
    'GET /config': async () => ({}),
    // Writing the default back: a valid change that alters nothing for the rest of the file.
    'PATCH /config': async () => ({ body: { health: { checkTimeoutMs: 1500 } } }),
    'GET /config/schema': async () => ({}),
    'GET /auth/users': async () => ({}),
    // Rotating keeps every live token working, so the rest of this file is unaffected.
    'POST /auth/keys/rotate': async () => ({}),
    'POST /auth/users': async () => ({ body: { username: uniqueUsername(), password: USER_PASSWORD, role: 'user' } }),
    'PATCH /auth/users/:id': async () => ({ params: { id: (await http.createUser(admin.accessToken)).id }, body: { role: 'admin' } }),
    'DELETE /auth/users/:id': async () => ({ params: { id: (await http.createUser(admin.accessToken)).id } }),
    'GET /services': async () => ({}),
    'GET /sagas': async () => ({}),
    // A saga needs a module that runs one and a journal entry; no module of the catalogue starts one yet.
    // The 401/403 answers on the same URL prove the route matched, so the admin's 404 is the operation's.
    'GET /sagas/:id': async () => ({ params: { id: 'no-such-saga' }, adminStatus: 404 }),
    'GET /events/dead': async () => ({}),
    // Answers whatever Ollama is doing here (usually none reachable: hosts reported down), always 200.
    'GET /llm/providers': async () => ({}),
    'GET /terminal/audit': async () => ({}),
    // Opens a real PTY session (closed when the app stops); the DELETE example closes one of its own.
    'POST /terminal/sessions': async () => ({ body: {} }),
    // A model the test writes into the models directory: y = x * 2 + 1.
    'POST /npu/inference': async () => {
      mkdirSync(path.join(app.dataDir, 'models'), { recursive: true });
      writeFileSync(path.join(app.dataDir, 'models', 'role-matrix.onnx'), affineModel({ width: 2, scale: 2, bias: 1 }));
      return { body: { model: 'role-matrix', inputs: { x: { type: 'float32', dims: [1, 2], data: [1, 2] } } } };
    },
    'GET /embeddings/collections': async () => ({}),
    // Nothing in this file stores facts, so resetting their (empty) collection changes nothing else.
    'DELETE /embeddings/collections/:collection': async () => ({ params: { collection: 'facts' } }),
    'POST /knowledge/facts/reindex': async () => ({}),
    'GET /search/analytics': async () => ({}),
    'GET /desktop/status': async () => ({}),
    // Without an X display the module answers 503 `unavailable` (not 401/403): the gate let the admin in.
    'GET /desktop/screenshot': async () => ({ ...(await desktopAvailable() ? {} : { adminStatus: 503 }) }),
    'POST /desktop/actions': async () => ({ body: { action: 'move', x: 1, y: 1 }, ...(await desktopAvailable() ? {} : { adminStatus: 503 }) }),
    'DELETE /terminal/sessions/:id': async () => {
      const res = await http.request('POST', '/terminal/sessions', { token: admin.accessToken, body: {} });
      return { params: { id: ((await res.json()) as { id: string }).id } };
    },
  };

  async function desktopAvailable(): Promise<boolean> {
    const res = await http.request('GET', '/desktop/status', { token: admin.accessToken });
    return ((await res.json()) as { available: boolean }).available;
  }

  let user: TokenPair;
  beforeAll(async () => {
    user = await http.signedInUser(admin.accessToken);
  });

  it('has an example request for every admin route, and none for routes that are gone', () => {
    expect(adminRoutes.length).toBeGreaterThan(0);
    const missing = adminRoutes.filter((r) => !(r in examples));
    expect(missing, `admin routes without an example request in this role matrix: ${missing.join(', ')}`).toEqual([]);
    expect(Object.keys(examples).filter((r) => !adminRoutes.includes(r))).toEqual([]);
  });

  it('covers every admin route the gateway documents', async () => {
    const doc = (await (await fetch(`${app.url}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { 'x-autobot-auth'?: string }>>;
    };
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => op['x-autobot-auth'] === 'admin')
        .map(([method]) => `${method.toUpperCase()} ${p.replace(/^\/api\/v1/, '').replace(/\{(\w+)\}/g, ':$1')}`),
    );
    expect(documented.sort()).toEqual([...adminRoutes].sort());
  });

  it.each(adminRoutes)('%s: anonymous 401, user 403, admin 2xx', async (key) => {
    const build = examples[key];
    if (!build) throw new Error(`no example request for admin route ${key}: add one to the role matrix`);
    const example = await build();
    const [method, template] = key.split(' ') as [string, string];
    const path = template.replace(/:(\w+)/g, (_, name: string) => {
      const value = example.params?.[name];
      if (value === undefined) throw new Error(`the example for ${key} has no :${name}`);
      return encodeURIComponent(value);
    });
    const send = (token?: string) => http.request(method, path, { ...(token ? { token } : {}), ...(example.body !== undefined ? { body: example.body } : {}) });

    await expectErrorEnvelope(await send(), 401, 'unauthenticated');
    await expectErrorEnvelope(await send(user.accessToken), 403, 'forbidden');
    const res = await send(admin.accessToken);
    const body = await res.text();
    if (example.adminStatus !== undefined) expect({ status: res.status, body }).toMatchObject({ status: example.adminStatus });
    else expect({ status: res.status, body }).toMatchObject({ status: expect.toSatisfy((s: number) => s >= 200 && s < 300) });
  });

  it.each(userRoutes)('%s: anonymous 401', async (key) => {
    const [method, template] = key.split(' ') as [string, string];
    const takesBody = method === 'POST' || method === 'PUT' || method === 'PATCH';
    await expectErrorEnvelope(await http.request(method, template.replace(/:(\w+)/g, 'x'), takesBody ? { body: {} } : {}), 401, 'unauthenticated');
  });
});

describe('socket.io', () => {
  const sockets: Socket[] = [];
  afterEach(() => {
    while (sockets.length) sockets.pop()!.close();
  });

  function connect(token?: string): Socket {
    const socket = connectSocket(app.url, { path: '/ws', transports: ['websocket'], reconnection: false, ...(token !== undefined ? { auth: { token } } : {}) });
    sockets.push(socket);
    return socket;
  }

  /** Connects, or fails with the server's refusal. */
  function connected(token: string): Promise<Socket> {
    const socket = connect(token);
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(socket));
      socket.once('connect_error', (err) => reject(new Error(`refused: ${err.message}`)));
    });
  }

  function refusal(token?: string): Promise<{ code?: string }> {
    const socket = connect(token);
    return new Promise((resolve, reject) => {
      socket.once('connect', () => reject(new Error('the handshake was accepted')));
      socket.once('connect_error', (err: Error & { data?: { code?: string } }) => resolve(err.data ?? {}));
    });
  }

  const disconnection = (socket: Socket) => new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));

  it('accepts a handshake with an access token and with an API key', async () => {
    const user = await http.signedInUser(admin.accessToken);
    const key = await http.createApiKey(user.accessToken);
    expect((await connected(user.accessToken)).connected).toBe(true);
    expect((await connected(key.key)).connected).toBe(true);
  });

  it('refuses a handshake without a token or with a bad one, with code unauthenticated', async () => {
    const user = await http.signedInUser(admin.accessToken);
    const [header, payload] = user.accessToken.split('.') as [string, string];
    const expired = await forge(user.accessToken, await signingKey(), { exp: nowS() - 60 });
    for (const token of [undefined, '', 'garbage', `${header}.${payload}.`, expired, user.refreshToken, `abk_${'y'.repeat(43)}`]) {
      expect({ token, refusal: await refusal(token) }).toEqual({ token, refusal: expect.objectContaining({ code: 'unauthenticated' }) });
    }
  });

  it("disconnects a session's sockets on its logout, and only that session's", async () => {
    const first = await http.signedInUser(admin.accessToken);
    const second = await http.login(first.user.username, USER_PASSWORD);
    const ending = await connected(first.accessToken);
    const staying = await connected(second.accessToken);
    const gone = disconnection(ending);

    expect((await http.request('POST', '/auth/logout', { token: first.accessToken })).status).toBe(204);
    expect(await gone).toBe('io server disconnect');
    // A round trip through the server after the disconnect: had the other socket been closed too, its
    // close would have arrived by now.
    expect((await http.request('GET', '/auth/me', { token: second.accessToken })).status).toBe(200);
    expect(staying.connected).toBe(true);
    // And the ended session cannot come back.
    expect(await refusal(first.accessToken)).toMatchObject({ code: 'unauthenticated' });
  });

  it("disconnects the sockets opened with an API key when the key is revoked, and only those", async () => {
    const user = await http.signedInUser(admin.accessToken);
    const key = await http.createApiKey(user.accessToken);
    const byKey = await connected(key.key);
    const bySession = await connected(user.accessToken);
    const gone = disconnection(byKey);

    expect((await http.request('DELETE', `/auth/api-keys/${key.id}`, { token: user.accessToken })).status).toBe(204);
    expect(await gone).toBe('io server disconnect');
    expect((await http.request('GET', '/auth/me', { token: user.accessToken })).status).toBe(200);
    expect(bySession.connected).toBe(true);
    expect(await refusal(key.key)).toMatchObject({ code: 'unauthenticated' });
  });

  it("disconnects every socket of a user who is disabled, API key sockets included", async () => {
    const user = await http.signedInUser(admin.accessToken);
    const key = await http.createApiKey(user.accessToken);
    const bySession = await connected(user.accessToken);
    const byKey = await connected(key.key);
    const gone = Promise.all([disconnection(bySession), disconnection(byKey)]);

    const res = await http.request('PATCH', `/auth/users/${user.user.id}`, { token: admin.accessToken, body: { disabled: true } });
    expect(res.status).toBe(200);
    expect(await gone).toEqual(['io server disconnect', 'io server disconnect']);
    expect(await refusal(key.key)).toMatchObject({ code: 'unauthenticated' });
  });
});
