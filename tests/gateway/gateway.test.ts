import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { ADMIN_TOKEN, USER_TOKEN, bearer, userActor } from '../support/test-auth.js';
import { Realtime } from '../../src/kernel/realtime/realtime.js';

let redis: TestRedis;
let app: TestApp;
const METRICS_TOKEN = 'metrics-token-0123456789';

beforeAll(async () => {
  redis = await startTestRedis();
  app = await startTestApp({
    redisUrl: redis.url,
    env: {
      AUTOBOT_CORS_ORIGINS: 'http://allowed.example',
      AUTOBOT_BODY_LIMIT: '2kb',
      METRICS_TOKEN,
    },
  });
});

afterAll(async () => {
  await app?.stop();
  await redis?.stop();
});

const api = (p: string) => `${app.url}/api/v1${p}`;

async function expectEnvelope(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message).toBeTruthy();
  expect(body.error.requestId).toBe(res.headers.get('x-request-id'));
  return body.error;
}

describe('request id', () => {
  it('echoes a client request id and generates one when absent or malformed', async () => {
    const given = await fetch(api('/health/live'), { headers: { 'x-request-id': 'abc-123' } });
    expect(given.headers.get('x-request-id')).toBe('abc-123');
    const none = await fetch(api('/health/live'));
    expect(none.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const bad = await fetch(api('/health/live'), { headers: { 'x-request-id': 'no spaces <script>' } });
    expect(bad.headers.get('x-request-id')).not.toContain('<');
  });

  it('reaches the operation through the request context', async () => {
    const res = await fetch(api('/probe/echo'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'trace-42', ...bearer(USER_TOKEN) },
      body: JSON.stringify({ text: 'hi' }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ text: 'hi', actor: userActor.type === 'user' ? userActor.id : null, requestId: 'trace-42' });
  });
});

describe('error envelope', () => {
  it('answers unknown routes with not_found', async () => {
    await expectEnvelope(await fetch(api('/no/such/route')), 404, 'not_found');
    await expectEnvelope(await fetch(`${app.url}/nothing-here`), 404, 'not_found');
  });

  it('answers malformed JSON with invalid_input, not 500', async () => {
    const res = await fetch(api('/probe/echo'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(USER_TOKEN) },
      body: '{"text": ',
    });
    await expectEnvelope(res, 400, 'invalid_input');
  });

  it('names the failing field of an invalid input', async () => {
    const res = await fetch(api('/probe/echo'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(USER_TOKEN) },
      body: JSON.stringify({ text: '' }),
    });
    const err = (await expectEnvelope(res, 400, 'invalid_input')) as unknown as { details: { path: string }[] };
    expect(err.details.map((d) => d.path)).toEqual(['text']);
  });

  it('refuses a non-JSON body with 415 and an oversized one with 413', async () => {
    const text = await fetch(api('/probe/echo'), {
      method: 'POST',
      headers: { 'content-type': 'text/plain', ...bearer(USER_TOKEN) },
      body: 'hello',
    });
    await expectEnvelope(text, 415, 'unsupported_media_type');
    const big = await fetch(api('/probe/echo'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(USER_TOKEN) },
      body: JSON.stringify({ text: 'x'.repeat(5000) }),
    });
    await expectEnvelope(big, 413, 'payload_too_large');
  });

  it('turns a route deadline into 504 timeout', async () => {
    const res = await fetch(api('/probe/slow'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ms: 5000 }),
    });
    await expectEnvelope(res, 504, 'timeout');
  });
});

describe('role gates', () => {
  it('answers 401 to anonymous and bad tokens on user and admin routes', async () => {
    await expectEnvelope(await fetch(api('/config')), 401, 'unauthenticated');
    await expectEnvelope(await fetch(api('/config'), { headers: bearer('forged') }), 401, 'unauthenticated');
    const echo = await fetch(api('/probe/echo'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"a"}' });
    await expectEnvelope(echo, 401, 'unauthenticated');
  });

  it('answers 403 to a plain user on an admin route and 200 to an admin', async () => {
    await expectEnvelope(await fetch(api('/config'), { headers: bearer(USER_TOKEN) }), 403, 'forbidden');
    expect((await fetch(api('/config'), { headers: bearer(ADMIN_TOKEN) })).status).toBe(200);
  });

  it('keeps user and admin routes closed to tokens the auth module did not issue', async () => {
    const bare = await startTestApp({ redisUrl: redis.url, credentials: 'module' });
    try {
      await expectEnvelope(await fetch(`${bare.url}/api/v1/config`, { headers: bearer(ADMIN_TOKEN) }), 401, 'unauthenticated');
      expect((await fetch(`${bare.url}/api/v1/health`)).status).toBe(200);
    } finally {
      await bare.stop();
    }
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After and RateLimit headers once a class budget is spent, shared through Redis', async () => {
    // Two instances with the same budget on one Redis: the budget is one, wherever requests land.
    const env = { AUTOBOT_RATE_LIMITS: JSON.stringify({ default: { points: 3, durationS: 60 } }) };
    const [one, two] = await Promise.all([startTestApp({ redisUrl: redis.url, env }), startTestApp({ redisUrl: redis.url, env })]);
    try {
      const { Redis } = await import('ioredis');
      const client = new Redis({ path: redis.target.path! });
      // Both users' budgets start full, whatever earlier tests of this file spent (on this shared Redis).
      await client.del('kernel:ratelimit:default:user:u-admin', 'kernel:ratelimit:default:user:u-user');
      client.disconnect();
      const headers = bearer(ADMIN_TOKEN);
      const first = await fetch(`${one.url}/api/v1/config/schema`, { headers });
      expect(first.status).toBe(200);
      expect(first.headers.get('ratelimit-limit')).toBe('3');
      expect(first.headers.get('ratelimit-remaining')).toBe('2');
      expect((await fetch(`${two.url}/api/v1/config/schema`, { headers })).status).toBe(200);
      expect((await fetch(`${one.url}/api/v1/config/schema`, { headers })).status).toBe(200);
      const limited = await fetch(`${two.url}/api/v1/config/schema`, { headers });
      await expectEnvelope(limited, 429, 'rate_limited');
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(limited.headers.get('ratelimit-remaining')).toBe('0');
      // Another user has a budget of their own.
      const other = await fetch(`${one.url}/api/v1/probe/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(USER_TOKEN) },
        body: '{"text":"a"}',
      });
      expect(other.status).toBe(200);
    } finally {
      await Promise.all([one.stop(), two.stop()]);
    }
  });

  it('never limits health probes', async () => {
    const res = await fetch(api('/health/live'));
    expect(res.headers.get('ratelimit-limit')).toBeNull();
  });
});

describe('streams', () => {
  it('streams a stream operation as NDJSON', async () => {
    const res = await fetch(api('/probe/count?to=3'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(lines).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });
});

describe('CORS and security headers', () => {
  it('allows listed origins only', async () => {
    const ok = await fetch(api('/health/live'), { headers: { origin: 'http://allowed.example' } });
    expect(ok.headers.get('access-control-allow-origin')).toBe('http://allowed.example');
    const other = await fetch(api('/health/live'), { headers: { origin: 'http://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(ok.headers.get('x-content-type-options')).toBe('nosniff');
    expect(ok.headers.get('x-powered-by')).toBeNull();
  });
});

describe('OpenAPI and docs', () => {
  it('documents every route of every contract', async () => {
    const doc = (await (await fetch(api('/openapi.json'))).json()) as {
      openapi: string;
      paths: Record<string, Record<string, { operationId: string; 'x-autobot-auth': string; security: unknown[] }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    const ops = Object.entries(doc.paths).flatMap(([p, methods]) => Object.entries(methods).map(([m, o]) => `${m.toUpperCase()} ${p} ${o.operationId}`));
    for (const expected of [
      'GET /api/v1/health health.getHealth',
      'GET /api/v1/health/live health.getLive',
      'GET /api/v1/health/ready health.getReady',
      'GET /api/v1/config config.getSettings',
      'PATCH /api/v1/config config.updateSettings',
      'GET /api/v1/config/schema config.getSchema',
      'GET /api/v1/services system.listServices',
      'GET /api/v1/sagas system.listSagas',
      'GET /api/v1/sagas/{id} system.getSaga',
      'GET /api/v1/events/dead system.listDeadEvents',
    ]) {
      expect(ops).toContain(expected);
    }
    expect(doc.paths['/api/v1/config']!.get!['x-autobot-auth']).toBe('admin');
    expect(doc.paths['/api/v1/health']!.get!.security).toEqual([]);
  });

  it('serves a browsable viewer at /docs pointed at the spec', async () => {
    const page = await fetch(`${app.url}/docs/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('swagger-ui');
    const init = await (await fetch(`${app.url}/docs/swagger-initializer.js`)).text();
    expect(init).toContain('/api/v1/openapi.json');
  });
});

describe('metrics', () => {
  it('needs the admin role or METRICS_TOKEN, then shows HTTP and operation histograms', async () => {
    await expectEnvelope(await fetch(`${app.url}/metrics`), 401, 'unauthenticated');
    await expectEnvelope(await fetch(`${app.url}/metrics`, { headers: bearer(USER_TOKEN) }), 403, 'forbidden');
    await fetch(api('/health'));
    const res = await fetch(`${app.url}/metrics`, { headers: bearer(METRICS_TOKEN) });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/autobot_http_request_duration_seconds_count\{method="GET",route="\/health",status="200"\} \d+/);
    expect(text).toMatch(/autobot_operation_duration_seconds_count\{module="health",operation="getHealth",binding="local",outcome="ok"\} \d+/);
    expect(text).toContain('process_resident_memory_bytes');
    expect((await fetch(`${app.url}/metrics`, { headers: bearer(ADMIN_TOKEN) })).status).toBe(200);
  });
});

describe('socket.io', () => {
  const connect = (token?: string) =>
    connectSocket(app.url, { path: '/ws', transports: ['websocket'], reconnection: false, ...(token ? { auth: { token } } : {}) });

  it('refuses a handshake without a valid token, with a clear error', async () => {
    for (const token of [undefined, 'forged']) {
      const socket = connect(token);
      const err = await new Promise<Error & { data?: { code: string } }>((resolve) => socket.on('connect_error', resolve));
      expect(err.data?.code).toBe('unauthenticated');
      socket.close();
    }
  });

  it('joins the user room, so the realtime port reaches the user from any process', async () => {
    const socket: Socket = connect(USER_TOKEN);
    await new Promise<void>((resolve, reject) => {
      socket.on('connect', () => resolve());
      socket.on('connect_error', reject);
    });
    const received = new Promise<unknown>((resolve) => socket.on('notification', resolve));
    // The emitter uses its own Redis connection, as a module in another process would.
    const { Redis } = await import('ioredis');
    const client = new Redis({ path: redis.target.path! });
    const realtime = new Realtime(client);
    // Joining happens right after the handshake; a short retry covers the race.
    const timer = setInterval(() => realtime.toUser('u-user', 'notification', { hello: 'world' }), 50);
    try {
      expect(await received).toEqual({ hello: 'world' });
    } finally {
      clearInterval(timer);
      socket.close();
      client.disconnect();
    }
  });
});
