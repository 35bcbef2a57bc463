// The chat turn with `messages` itself lifted into another process. The front process hosts the
// gateway and everything else; sockets and REST calls arrive there, the turn (its saga and the
// generation) runs in the messages process, and its events come back to the front's sockets through
// the realtime port (Redis). The same turn answers as server-sent events through the front, and Stop
// sent to the front reaches the fake Ollama.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'socket.io-client';
import { createParser } from 'eventsource-parser';
import { liftedProcesses } from '../support/lifted-processes.js';
import type { ChildApp } from '../support/process.js';
import { startFakeOllama, type FakeOllama } from '../support/fake-ollama.js';
import { openTab } from '../support/socket-tab.js';
import { USER_TOKEN, bearer } from '../support/test-auth.js';
import { until } from '../modules/messages/chat-app.js';

const MAIN = path.resolve(import.meta.dirname, '../modules/messages/chat-process-main.ts');
const procs = liftedProcesses(MAIN);
let fake: FakeOllama;
let front: ChildApp;
let lifted: ChildApp;
const sockets: Socket[] = [];

beforeAll(async () => {
  fake = await startFakeOllama();
}, 30_000);

afterAll(async () => {
  for (const s of sockets) s.close();
  await fake?.close();
});

async function call<T>(method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(`${front.url}/api/v1${p}`, {
    method,
    headers: { ...bearer(USER_TOKEN), ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

describe('chat turn with messages in another process', () => {
  it('starts over socket.io at the front, runs in the messages process, streams back, answers SSE and stops', async () => {
    const env = { OLLAMA_URL: fake.url };
    front = await procs.start('config,health,llm,chats,history,terminal,browser', env);
    lifted = await procs.start('messages', env);
    await procs.waitUntilSeen(front, [lifted]);
    await procs.waitUntilSeen(lifted, [front]);
    const health = (await (await fetch(`${front.url}/api/v1/health`)).json()) as { modules: Record<string, { where: string }> };
    expect(health.modules.messages?.where).toBe('remote');

    const chat = (await call<{ id: string }>('POST', '/chats', { title: 'messages far away' })).body;
    const tab = await openTab(front.url, USER_TOKEN, sockets);
    expect(await tab.emitWithAck('chat:join', { chatId: chat.id })).toMatchObject({ ok: true });

    // A socket command at the front starts the turn in the messages process; its events come back.
    fake.script({ tokens: ['Far', ' away', ' but', ' here'] });
    const ack = (await tab.emitWithAck('message:send', { chatId: chat.id, content: 'where do you run?', clientMessageId: 'lift-1' })) as {
      ok: boolean;
      data?: { turnId: string; assistantMessageId: string };
    };
    expect(ack).toMatchObject({ ok: true });
    await until('completed', () => tab.got.some((e) => e.event === 'message:completed'), 15_000).catch((err: Error) => {
      throw new Error(`${err.message}\nfront:\n${front.output().slice(-3000)}\nlifted:\n${lifted.output().slice(-3000)}\ngot: ${JSON.stringify(tab.got).slice(0, 2000)}`);
    });
    const deltas = tab.got.filter((e) => e.event === 'message:delta').map((e) => e.data);
    // One up per delta (tokens that arrive together go as one), in order.
    expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i + 1));
    expect(deltas.map((d) => d.delta).join('')).toBe('Far away but here');
    expect(deltas.every((d) => d.turnId === ack.data!.turnId)).toBe(true);
    const items = (await call<{ items: { role: string; status: string; content: string }[] }>('GET', `/messages/${chat.id}`)).body.items;
    expect(items.map((m) => [m.role, m.status, m.content])).toEqual([
      ['user', 'complete', 'where do you run?'],
      ['assistant', 'complete', 'Far away but here'],
    ]);
    // The same clientMessageId again answers the same turn, across the binding.
    const again = (await tab.emitWithAck('message:send', { chatId: chat.id, content: 'where do you run?', clientMessageId: 'lift-1' })) as { data?: { turnId: string } };
    expect(again.data?.turnId).toBe(ack.data!.turnId);

    // Server-sent events through the front: the lifted messages module streams the turn's events.
    fake.script({ tokens: ['S', 'S', 'E'] });
    const res = await fetch(`${front.url}/api/v1/messages`, {
      method: 'POST',
      headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ chatId: chat.id, content: 'stream it from there' }),
    });
    expect(res.status).toBe(200);
    const events: { event: string; data: Record<string, unknown> }[] = [];
    const parser = createParser({ onEvent: (e) => events.push({ event: e.event ?? 'message', data: JSON.parse(e.data) as Record<string, unknown> }) });
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    expect(events[0]).toMatchObject({ event: 'turn:status', data: { status: 'accepted' } });
    expect(events.filter((e) => e.event === 'message:delta').map((e) => e.data.delta).join('')).toBe('SSE');
    expect(events.at(-1)).toMatchObject({ event: 'message:completed', data: { message: { status: 'complete', content: 'SSE' } } });

    // Stop over the socket at the front: the messages process cancels the generation, which the llm
    // module (back in the front) closes at Ollama.
    fake.script({ tokens: Array.from({ length: 500 }, (_, i) => ` y${i}`), tokenDelayMs: 20 });
    const seen = tab.got.length;
    const long = (await tab.emitWithAck('message:send', { chatId: chat.id, content: 'talk for long' })) as { data?: { assistantMessageId: string } };
    await until('deltas flowing', () => tab.got.slice(seen).filter((e) => e.event === 'message:delta').length > 10);
    const aborted = fake.aborted().length;
    expect(await tab.emitWithAck('message:stop', { chatId: chat.id })).toMatchObject({ ok: true, data: { stopping: true } });
    await until('the abort at Ollama', () => fake.aborted().length > aborted, 5000);
    const stopped = await until('stopped', async () => {
      const m = (await call<{ items: { id: string; status: string; content: string }[] }>('GET', `/messages/${chat.id}`)).body.items.find((x) => x.id === long.data!.assistantMessageId);
      return m?.status === 'stopped' ? m : undefined;
    });
    expect(stopped.content.length).toBeGreaterThan(0);
  }, 90_000);
});
