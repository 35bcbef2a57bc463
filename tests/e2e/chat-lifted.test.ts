// The chat turn with `llm` and `history` lifted into another process: the turn streams over socket.io
// from the first process while the model is called, and the messages are stored, by the second; Stop
// sent to the first reaches the fake Ollama through the second; search answers from the lifted history;
// a tool call of the chat runs in the second process, which hosts terminal.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { freePort, spawnApp, type ChildApp } from '../support/process.js';
import { startFakeOllama, type FakeOllama } from '../support/fake-ollama.js';
import { startTestRedis, type TestRedis } from '../support/redis.js';
import { USER_TOKEN, bearer } from '../support/test-auth.js';
import { until } from '../modules/messages/chat-app.js';

const MAIN = path.resolve(import.meta.dirname, '../modules/messages/chat-process-main.ts');
const TOKEN = 'lift-test-internal-token-0123456';
let redis: TestRedis;
let fake: FakeOllama;
let dataDir: string;
let lifted: ChildApp;
let main: ChildApp;
let socket: Socket | undefined;

beforeAll(async () => {
  redis = await startTestRedis();
  fake = await startFakeOllama();
  dataDir = mkdtempSync(path.join(tmpdir(), 'abl-'));
  const liftedPort = await freePort();
  const common = { REDIS_URL: redis.url, OLLAMA_URL: fake.url, AUTOBOT_DATA_DIR: dataDir, AUTOBOT_INTERNAL_TOKEN: TOKEN, AUTOBOT_HEARTBEAT_MS: '300' };
  lifted = await spawnApp({ ...common, PORT: String(liftedPort), AUTOBOT_MODULES: 'llm,history,terminal' }, { script: MAIN, timeoutMs: 30_000 });
  main = await spawnApp(
    { ...common, PORT: '0', AUTOBOT_MODULES: 'config,health,chats,messages,browser', AUTOBOT_REMOTE_MODULES: `llm=http://127.0.0.1:${liftedPort},history=http://127.0.0.1:${liftedPort},terminal=http://127.0.0.1:${liftedPort}` },
    { script: MAIN, timeoutMs: 30_000 },
  );
}, 60_000);

afterAll(async () => {
  socket?.close();
  for (const app of [main, lifted]) {
    if (app && app.child.exitCode === null) {
      app.child.kill('SIGTERM');
      await app.exited;
    }
  }
  await fake?.close();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call<T>(method: string, p: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${main.url}/api/v1${p}`, {
    method,
    headers: { ...bearer(USER_TOKEN), ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

describe('chat turn with llm and history in another process', () => {
  it('streams, stores, searches, and stops across processes', async () => {
    const health = (await (await fetch(`${main.url}/api/v1/health`)).json()) as { modules: Record<string, { where: string }> };
    expect(health.modules.llm?.where).toBe('remote');
    expect(health.modules.history?.where).toBe('remote');

    const chat = (await call<{ id: string }>('POST', '/chats', { title: 'lifted' })).body;
    socket = connectSocket(main.url, { path: '/ws', auth: { token: USER_TOKEN }, transports: ['websocket'], forceNew: true });
    const got: { event: string; data: Record<string, unknown> }[] = [];
    socket.onAny((event: string, data: Record<string, unknown>) => got.push({ event, data }));
    expect(await socket.emitWithAck('chat:join', { chatId: chat.id })).toMatchObject({ ok: true });

    fake.script({ tokens: ['Lifted', ' modules', ' answer', ' too'] });
    const sent = await call<{ assistantMessageId: string }>('POST', '/messages', { chatId: chat.id, content: 'are you far away?' });
    expect(sent.status).toBe(202);
    await until('completed', () => got.some((e) => e.event === 'message:completed')).catch((err: Error) => {
      throw new Error(`${err.message}\nmain:\n${main.output().slice(-3000)}\nlifted:\n${lifted.output().slice(-3000)}\ngot: ${JSON.stringify(got).slice(0, 2000)}`);
    });
    // One up per delta (tokens that arrive together go as one).
    const seqs = got.filter((e) => e.event === 'message:delta').map((e) => e.data.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(got.filter((e) => e.event === 'message:delta').map((e) => e.data.delta).join('')).toBe('Lifted modules answer too');
    const items = (await call<{ items: { role: string; status: string; content: string }[] }>('GET', `/messages/${chat.id}`)).body.items;
    expect(items.map((m) => [m.role, m.status, m.content])).toEqual([
      ['user', 'complete', 'are you far away?'],
      ['assistant', 'complete', 'Lifted modules answer too'],
    ]);
    const found = (await call<{ items: { message: { role: string } }[] }>('GET', '/search/messages?q=lifted%20module')).body.items;
    expect(found.map((i) => i.message.role)).toEqual(['assistant']);

    // Stop, sent to the process without llm, closes the request to Ollama made by the other one.
    fake.script({ tokens: Array.from({ length: 500 }, (_, i) => ` x${i}`), tokenDelayMs: 20 });
    const long = await call<{ assistantMessageId: string }>('POST', '/messages', { chatId: chat.id, content: 'go on and on' });
    await until('deltas flowing', () => got.filter((e) => e.event === 'message:delta').length > 10);
    const aborted = fake.aborted().length;
    expect((await call<{ stopping: boolean }>('POST', `/messages/${chat.id}/stop`)).body.stopping).toBe(true);
    await until('the abort at Ollama', () => fake.aborted().length > aborted, 5000);
    const stopped = await until('stopped', async () => {
      const m = (await call<{ items: { id: string; status: string }[] }>('GET', `/messages/${chat.id}`)).body.items.find((x) => x.id === long.body.assistantMessageId);
      return m?.status === 'stopped' ? m : undefined;
    });
    expect(stopped.status).toBe('stopped');

    // A tool call of the chat runs in the process hosting terminal, and its result comes back.
    expect(health.modules.terminal?.where).toBe('remote');
    fake.script({});
    fake.scriptNext({ tokens: [], toolCalls: [{ name: 'run_command', arguments: { command: 'echo far away' } }] }, { tokens: ['Ran', ' remotely.'] });
    const tool = await call<{ assistantMessageId: string }>('POST', '/messages', { chatId: chat.id, content: 'run something over there' });
    const withTool = await until('the tool answer', async () => {
      const m = (await call<{ items: { id: string; status: string; content: string; toolCalls?: unknown[] }[] }>('GET', `/messages/${chat.id}`)).body.items.find((x) => x.id === tool.body.assistantMessageId);
      return m?.status === 'complete' ? m : undefined;
    });
    expect(withTool.content).toBe('Ran remotely.');
    expect(withTool.toolCalls).toMatchObject([{ tool: 'run_command', status: 'completed', result: { exitCode: 0, stdout: 'far away\n' } }]);
  }, 60_000);
});
