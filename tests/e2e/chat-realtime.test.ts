// The chat turn as clients see it, over real socket.io and HTTP: two tabs of the owner receive the same
// deltas in order (seq one up per delta), message:send answers through its acknowledgement, Stop over
// the socket, chat:join of another user's chat refused; POST /messages answers 202, or with
// `Accept: text/event-stream` streams the same events as server-sent events.
import { describe, expect, it } from 'vitest';
import type { Socket } from 'socket.io-client';
import { createParser } from 'eventsource-parser';
import type { TestApp } from '../support/app.js';
import type { FakeOllama } from '../support/fake-ollama.js';
import { openTab, type Tab } from '../support/socket-tab.js';
import { ADMIN_TOKEN, USER_TOKEN, bearer } from '../support/test-auth.js';
import { chatAppSuite, until } from '../modules/messages/chat-app.js';

let fake: FakeOllama;
let app: TestApp;
const sockets: Socket[] = [];

chatAppSuite((s) => ({ fake, app } = s), {
  beforeClose: () => {
    for (const s of sockets) s.close();
  },
});

interface Ack<T = unknown> {
  ok: boolean;
  data?: T;
  error?: { code: string; message: string };
}

const tab = (token = USER_TOKEN): Promise<Tab> => openTab(app.url, token, sockets);

const ask = <T>(s: Socket, event: string, payload: unknown) => s.emitWithAck(event, payload) as Promise<Ack<T>>;

async function rest(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  return fetch(`${app.url}/api/v1${path}`, {
    method,
    headers: { ...bearer(USER_TOKEN), ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
}

async function newChat(title = 'socket chat'): Promise<{ id: string }> {
  const res = await rest('POST', '/chats', { title });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string };
}

describe('chat over socket.io', () => {
  it('streams the same deltas, in order, to every tab that joined the chat', async () => {
    const tokens = Array.from({ length: 20 }, (_, i) => ` t${i}`);
    fake.script({ tokens, tokenDelayMs: 2 });
    const chat = await newChat();
    const [one, two] = [await tab(), await tab()];
    expect(await ask(one, 'chat:join', { chatId: chat.id })).toMatchObject({ ok: true, data: { id: chat.id } });
    expect(await ask(two, 'chat:join', { chatId: chat.id })).toMatchObject({ ok: true });
    const res = await rest('POST', '/messages', { chatId: chat.id, content: 'stream please' });
    expect(res.status).toBe(202);
    const sent = (await res.json()) as { turnId: string; assistantMessageId: string };
    for (const t of [one, two]) await until('completed', () => t.got.some((e) => e.event === 'message:completed'));
    const deltas = (t: typeof one) => t.got.filter((e) => e.event === 'message:delta').map((e) => e.data);
    expect(deltas(one)).toEqual(deltas(two));
    // Tokens that reach AutoBot in one read go on as one delta (2 ms apart, a busy machine may read two
    // at once): seq counts deltas, one up each, and together they carry every token in order.
    expect(deltas(one).length).toBeGreaterThan(1);
    expect(deltas(one).map((d) => d.seq)).toEqual(deltas(one).map((_, i) => i + 1));
    expect(deltas(one).map((d) => d.delta).join('')).toBe(tokens.join(''));
    expect(deltas(one)[0]).toMatchObject({ chatId: chat.id, messageId: sent.assistantMessageId, turnId: sent.turnId, seq: 1 });
    expect(deltas(one)[0]!.delta).toMatch(/^ t0/);
    const names = one.got.map((e) => e.event).filter((e) => e !== 'message:delta');
    expect(names.slice(0, 3)).toEqual(['message:created', 'turn:status', 'message:created']);
    const completed = one.got.find((e) => e.event === 'message:completed')!.data.message as { content: string; status: string };
    expect(completed).toMatchObject({ status: 'complete', content: tokens.join('') });
    // The generated title reaches the owner's sockets.
    await until('chat:updated with a title', () => one.got.some((e) => e.event === 'chat:updated' && (e.data.chat as { title: string | null }).title));
  });

  it('sends with message:send (acknowledged, the socket follows the chat) and stops with message:stop', async () => {
    fake.script({ tokens: Array.from({ length: 300 }, (_, i) => ` s${i}`), tokenDelayMs: 10 });
    const chat = await newChat();
    const s = await tab();
    const ack = await ask<{ turnId: string; assistantMessageId: string }>(s, 'message:send', { chatId: chat.id, content: 'go on' });
    expect(ack.ok).toBe(true);
    await until('a few deltas', () => s.got.filter((e) => e.event === 'message:delta').length >= 3);
    const aborts = fake.aborted().length;
    expect(await ask(s, 'message:stop', { chatId: chat.id })).toMatchObject({ ok: true, data: { stopping: true, turnId: ack.data!.turnId } });
    await until('completed', () => s.got.some((e) => e.event === 'message:completed'));
    const final = s.got.find((e) => e.event === 'message:completed')!.data.message as { status: string; content: string };
    expect(final.status).toBe('stopped');
    const shown = s.got.filter((e) => e.event === 'message:delta').map((e) => e.data.delta).join('');
    expect(final.content.startsWith(shown.slice(0, 10))).toBe(true);
    await until('the abort at Ollama', () => fake.aborted().length > aborts);
    // Refusals come back through the acknowledgement.
    expect(await ask(s, 'message:send', { chatId: chat.id, content: '' })).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
  });

  it("refuses to join another user's chat, and sends none of its events", async () => {
    const chat = await newChat('private');
    const intruder = await tab(ADMIN_TOKEN);
    expect(await ask(intruder, 'chat:join', { chatId: chat.id })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(await ask(intruder, 'message:send', { chatId: chat.id, content: 'hi' })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    fake.script({ tokens: ['secret'] });
    const owner = await tab();
    await ask(owner, 'chat:join', { chatId: chat.id });
    await rest('POST', '/messages', { chatId: chat.id, content: 'hello' });
    await until('owner got it', () => owner.got.some((e) => e.event === 'message:completed'));
    expect(intruder.got.filter((e) => e.event.startsWith('message:'))).toEqual([]);
    expect(await ask(owner, 'chat:leave', { chatId: chat.id })).toMatchObject({ ok: true });
  });
});

describe('chat over server-sent events', () => {
  it('answers POST /messages with Accept: text/event-stream as the turn’s events, ending with message:completed', async () => {
    const tokens = ['Server', '-sent', ' events', '!'];
    fake.script({ tokens });
    const chat = await newChat('sse');
    const res = await rest('POST', '/messages', { chatId: chat.id, content: 'stream it' }, { accept: 'text/event-stream' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events: { event: string; data: Record<string, unknown> }[] = [];
    const parser = createParser({ onEvent: (e) => events.push({ event: e.event ?? 'message', data: JSON.parse(e.data) as Record<string, unknown> }) });
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    const names = events.map((e) => e.event);
    expect(names[0]).toBe('turn:status');
    expect(events[0]!.data).toMatchObject({ status: 'accepted', chatId: chat.id });
    expect(names.at(-1)).toBe('message:completed');
    const deltas = events.filter((e) => e.event === 'message:delta').map((e) => e.data);
    // One up per delta (tokens that arrive together go as one), in order.
    expect(deltas.map((d) => d.delta).join('')).toBe(tokens.join(''));
    expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i + 1));
    expect(events.at(-1)!.data.message).toMatchObject({ status: 'complete', content: tokens.join('') });
    // A reader that leaves mid-turn ends its stream; the turn goes on and completes.
    fake.script({ tokens: Array.from({ length: 100 }, (_, i) => ` z${i}`), tokenDelayMs: 10 });
    const left = await rest('POST', '/messages', { chatId: chat.id, content: 'leave early' }, { accept: 'text/event-stream' });
    const reader = left.body!.getReader();
    await reader.read();
    await reader.cancel();
    const after = await until('the answer completed anyway', async () => {
      const items = ((await (await rest('GET', `/messages/${chat.id}`)).json()) as { items: { role: string; status: string; content: string }[] }).items;
      const last = items.at(-1)!;
      return last.role === 'assistant' && last.status !== 'streaming' ? last : undefined;
    });
    expect(after).toMatchObject({ status: 'complete' });
    expect(after.content.split(' ').length).toBe(101);
    // Errors before the stream are ordinary error responses.
    const bad = await rest('POST', '/messages', { chatId: chat.id, content: ' ' }, { accept: 'text/event-stream' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_input');
  });
});
