// The realtime port in a process that runs the socket.io server: its pushes reach that server's own
// sockets directly, and still every other instance's sockets through the Redis adapter, in the same
// order (a chat's deltas, seq one up, then message:completed), whichever instance a tab is on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'socket.io-client';
import type { TestApp } from '../../support/app.js';
import { startFakeOllama, type FakeOllama } from '../../support/fake-ollama.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { openTab, type Tab } from '../../support/socket-tab.js';
import { USER_TOKEN, bearer } from '../../support/test-auth.js';
import { startChatApp, until } from '../../modules/messages/chat-app.js';

let redis: TestRedis;
let fake: FakeOllama;
let first: TestApp;
let second: TestApp;
const sockets: Socket[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  fake = await startFakeOllama();
  first = await startChatApp(redis.url, fake.url);
  second = await startChatApp(redis.url, fake.url);
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await second?.stop();
  await first?.stop();
  await fake?.close();
  await redis?.stop();
});

describe('realtime pushes from the process hosting the socket.io server', () => {
  it('reach its own tabs and the tabs on another instance alike, in order', async () => {
    // Apart in time: tokens that arrive together go as one delta, and the test wants many deltas.
    fake.script({ tokens: Array.from({ length: 30 }, (_, i) => ` w${i}`), tokenDelayMs: 5 });
    const res = await fetch(`${first.url}/api/v1/chats`, { method: 'POST', headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json' }, body: JSON.stringify({ title: 'two instances' }) });
    const chat = (await res.json()) as { id: string };
    const here = await openTab(first.url, USER_TOKEN, sockets);
    const there = await openTab(second.url, USER_TOKEN, sockets);
    for (const t of [here, there]) expect(await t.emitWithAck('chat:join', { chatId: chat.id })).toMatchObject({ ok: true });

    // Sent to the first instance, which drives the turn and pushes through its own socket.io server.
    const sent = await fetch(`${first.url}/api/v1/messages`, { method: 'POST', headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json' }, body: JSON.stringify({ chatId: chat.id, content: 'hello' }) });
    expect(sent.status).toBe(202);
    for (const t of [here, there]) await until('completed', () => t.got.some((e) => e.event === 'message:completed'));

    const stream = (t: Tab) => t.got.filter((e) => e.event.startsWith('message:')).map((e) => (e.event === 'message:delta' ? `${e.event} ${String(e.data.seq)}` : e.event));
    const n = here.got.filter((e) => e.event === 'message:delta').length;
    expect(n).toBeGreaterThan(1);
    const expected = ['message:created', 'message:created', ...Array.from({ length: n }, (_, i) => `message:delta ${i + 1}`), 'message:completed'];
    expect(stream(here)).toEqual(expected);
    expect(stream(there)).toEqual(expected);
    // Each exactly once: the first instance's adapter ignores its own publishes coming back from Redis.
    const deltas = here.got.filter((e) => e.event === 'message:delta').map((e) => e.data.delta);
    expect(deltas.join('')).toBe(Array.from({ length: 30 }, (_, i) => ` w${i}`).join(''));
  });
});
