// socket.io commands spend the same per-user, per-class budgets as the REST routes of their operations,
// held in Redis: a client that switches to the socket, or to another instance, gets no extra requests.
// A spent budget answers the acknowledgement `{ok: false, error: {code: 'rate_limited', details: {retryAfterS}}}`
// and the operation does not run.
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { chatsModule } from '../../src/modules/chats/module.js';
import { coreTestCatalogue, startTestApp, type TestApp } from '../support/app.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { ADMIN_TOKEN, bearer, USER_TOKEN } from '../support/test-auth.js';

type Ack = { ok: boolean; data?: unknown; error?: { code: string; message: string; details?: { retryAfterS?: number } } };

const BUDGET = 4;
let redis: TestRedis;
let one: TestApp;
let two: TestApp;
const sockets: Socket[] = [];

async function socketOf(app: TestApp, token: string): Promise<Socket> {
  const socket = connect(app.url, { path: '/ws', auth: { token }, transports: ['websocket'] });
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return socket;
}

const send = (socket: Socket, event: string, payload: unknown) => socket.timeout(10_000).emitWithAck(event, payload) as Promise<Ack>;

beforeAll(async () => {
  redis = await startTestRedis();
  // Two instances on one Redis, with a small `default` budget.
  const env = { AUTOBOT_RATE_LIMITS: JSON.stringify({ default: { points: BUDGET, durationS: 60 } }) };
  const catalogue = [...coreTestCatalogue, chatsModule];
  [one, two] = await Promise.all([startTestApp({ redisUrl: redis.url, catalogue, env }), startTestApp({ redisUrl: redis.url, catalogue, env })]);
}, 60_000);

afterAll(async () => {
  for (const s of sockets) s.close();
  await Promise.all([one?.stop(), two?.stop()]);
  await redis?.stop();
});

beforeEach(async () => {
  // Every test starts with full budgets.
  const client = new Redis({ path: redis.target.path! });
  await client.del('kernel:ratelimit:default:user:u-user', 'kernel:ratelimit:default:user:u-admin');
  client.disconnect();
});

it('refuses a socket command once the budget of its class is spent, with rate_limited in the ack, and does not run it', async () => {
  const socket = await socketOf(one, USER_TOKEN);
  const created = (await (
    await fetch(`${one.url}/api/v1/chats`, { method: 'POST', headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json' }, body: '{"title":"limited"}' })
  ).json()) as { id: string };
  const answers: Ack[] = [];
  for (let i = 0; i < BUDGET; i++) answers.push(await send(socket, 'chat:join', { chatId: created.id }));
  // One point went to the REST call that made the chat: the last join finds the budget spent.
  expect(answers.slice(0, BUDGET - 1).map((a) => a.ok)).toEqual(Array(BUDGET - 1).fill(true));
  const refused = answers[BUDGET - 1]!;
  expect(refused.ok).toBe(false);
  expect(refused.error).toMatchObject({ code: 'rate_limited', details: { retryAfterS: expect.any(Number) } });
  expect(refused.error!.details!.retryAfterS).toBeGreaterThan(0);
  // Spent for REST too, and the refusal is the same one.
  const rest = await fetch(`${one.url}/api/v1/chats`, { headers: bearer(USER_TOKEN) });
  expect(rest.status).toBe(429);
  // Another user's budget is their own.
  const admin = await socketOf(one, ADMIN_TOKEN);
  expect((await send(admin, 'chat:join', { chatId: 'c_missing' })).error?.code).toBe('not_found');
});

it('shares one budget between instances: a socket on the second instance is refused once the first spent it', async () => {
  const first = await socketOf(one, USER_TOKEN);
  const second = await socketOf(two, USER_TOKEN);
  for (let i = 0; i < BUDGET; i++) {
    const ack = await send(first, 'chat:join', { chatId: 'c_missing' });
    expect(ack.error?.code).toBe('not_found');
  }
  expect((await send(second, 'chat:join', { chatId: 'c_missing' })).error?.code).toBe('rate_limited');
  expect((await send(first, 'chat:leave', { chatId: 'c_missing' })).error?.code).toBe('rate_limited');
});

it('counts commands refused for bad input too, so probing is metered like any request', async () => {
  const socket = await socketOf(two, USER_TOKEN);
  const codes: string[] = [];
  for (let i = 0; i < BUDGET + 1; i++) codes.push((await send(socket, 'chat:join', { chatId: 42 })).error?.code ?? 'ok');
  expect(codes).toEqual([...Array(BUDGET).fill('invalid_input'), 'rate_limited']);
});
