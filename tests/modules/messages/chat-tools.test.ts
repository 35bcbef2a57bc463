// Tools in chat, end to end over REST and real socket.io clients, with the fake Ollama answering with
// tool calls: tools are offered only to models whose /api/show capabilities include `tools` (and not
// when `messages.toolsEnabled` is off); a safe command runs at once, its result goes back to the model
// as a `tool` message and stays on the answer (`toolCalls`), with `tool:call` events on the socket; a
// `high` command waits for its owner's approval (`approval:requested`), decided over REST or socket
// `approval:decide`; a denied call reaches the model as denied; Stop during the wait withdraws the
// approval; the round limit; read_file in the workspace (an escape refused); fetch_page of an
// allow-listed local page while the SSRF guard still refuses the rest; search_knowledge over the user's
// own documents.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import type { MessageView } from '../../../src/modules/history/contract.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { startFakeOllama, type ChatScript, type FakeOllama, type RecordedRequest } from '../../support/fake-ollama.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, USER_TOKEN, userActor } from '../../support/test-auth.js';
import { startForbiddenServer, startSite, type CountingServer, type SiteServer } from '../browser/web-fixtures.js';
import { api, eventually, uploadIndexed } from '../search/support/search-app.js';
import { knowledgeChatCatalogue, startChatApp, until } from './chat-app.js';

const MAX_ROUNDS = 2;

let redis: TestRedis;
let fake: FakeOllama;
let app: TestApp;
let site: SiteServer;
let forbidden: CountingServer;
const sockets: Socket[] = [];

interface Seen {
  event: string;
  data: Record<string, unknown>;
}
interface ToolCallSeen {
  id: string;
  tool: string;
  status: string;
  arguments: Record<string, unknown>;
  result?: Record<string, unknown>;
  approvalId?: string;
}

beforeAll(async () => {
  redis = await startTestRedis();
  fake = await startFakeOllama();
  forbidden = await startForbiddenServer();
  site = await startSite(forbidden.port);
  // Settings stored before the chat app starts, so every module reads them at start.
  const setup = await startTestApp({ redisUrl: redis.url, catalogue: knowledgeChatCatalogue(), env: { AUTOBOT_MODULES: 'config,health' } });
  const patched = await api(setup.url, ADMIN_TOKEN, 'PATCH', '/config', {
    messages: { maxToolRounds: MAX_ROUNDS },
    browser: { allowHosts: [`127.0.0.1:${site.port}`] },
  });
  expect(patched.status).toBe(200);
  await setup.stop();
  app = await startChatApp(redis.url, fake.url, { knowledge: true });
}, 90_000);

afterAll(async () => {
  for (const s of sockets) s.close();
  await app?.stop();
  await fake?.close();
  await redis?.stop();
  await site?.close();
  await forbidden?.close();
});

beforeEach(() => {
  fake.script({});
});

async function socketFor(token: string): Promise<{ socket: Socket; seen: Seen[] }> {
  const socket = connectSocket(app.url, { path: '/ws', transports: ['websocket'], reconnection: false, forceNew: true, auth: { token } });
  sockets.push(socket);
  const seen: Seen[] = [];
  socket.onAny((event: string, data: Record<string, unknown>) => seen.push({ event, data }));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return { socket, seen };
}

async function newChat(token: string, socket: Socket, over: Record<string, unknown> = {}): Promise<string> {
  const chat = await api<{ id: string }>(app.url, token, 'POST', '/chats', { title: 'tools', ...over });
  expect(chat.status).toBe(201);
  expect(await socket.timeout(5000).emitWithAck('chat:join', { chatId: chat.body.id })).toMatchObject({ ok: true });
  return chat.body.id;
}

async function send(token: string, chatId: string, content: string): Promise<string> {
  const sent = await api<{ assistantMessageId: string }>(app.url, token, 'POST', '/messages', { chatId, content });
  expect(sent.status).toBe(202);
  return sent.body.assistantMessageId;
}

async function final(token: string, chatId: string, messageId: string, timeoutMs = 20_000): Promise<MessageView> {
  return until(
    `answer ${messageId} final`,
    async () => {
      const items = (await api<{ items: MessageView[] }>(app.url, token, 'GET', `/messages/${chatId}?limit=100`)).body.items;
      const m = items.find((x) => x.id === messageId);
      return m && m.status !== 'streaming' ? m : undefined;
    },
    timeoutMs,
  );
}

/** The chat requests of one turn (its question is the user message the prompt ends on, then tool rounds). */
function requestsFor(question: string): RecordedRequest[] {
  return fake.chats().filter((r) => (r.body?.messages as { role: string; content: string }[] | undefined)?.some((m) => m.role === 'user' && m.content === question));
}

const toolNames = (r: RecordedRequest) => ((r.body?.tools ?? []) as { function: { name: string } }[]).map((t) => t.function.name);
const toolMessages = (r: RecordedRequest) => (r.body?.messages as { role: string; content: string; tool_name?: string }[]).filter((m) => m.role === 'tool');
const toolCallEvents = (seen: Seen[], messageId: string) =>
  seen.filter((e) => e.event === 'tool:call' && e.data.messageId === messageId).map((e) => e.data.toolCall as ToolCallSeen);
const call = (name: string, args: Record<string, unknown>): ChatScript => ({ tokens: [], toolCalls: [{ name, arguments: args }] });
const workspace = () => path.join(app.dataDir, 'terminal', 'workspaces', (userActor as { id: string }).id);

describe('tools in chat', () => {
  it('offers the tools only to models whose capabilities include tools', async () => {
    const { socket } = await socketFor(USER_TOKEN);
    const withTools = await newChat(USER_TOKEN, socket, { model: 'mistral:7b-instruct' });
    await final(USER_TOKEN, withTools, await send(USER_TOKEN, withTools, 'which tools do you have?'));
    expect(toolNames(requestsFor('which tools do you have?')[0]!)).toEqual(['run_command', 'fetch_page', 'search_knowledge', 'read_file']);
    // gemma:2b says `completion` only: no tools (the real Ollama would answer 400 to tools).
    const without = await newChat(USER_TOKEN, socket, { model: 'gemma:2b' });
    const answer = await final(USER_TOKEN, without, await send(USER_TOKEN, without, 'and you?'));
    expect(answer.status).toBe('complete');
    expect(requestsFor('and you?')[0]!.body?.tools).toBeUndefined();
  });

  it('runs a safe command at once: tool:call events, the result back to the model, toolCalls on the answer', async () => {
    const { socket, seen } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    fake.scriptNext({ tokens: ['Let me look.'], toolCalls: [{ name: 'run_command', arguments: { command: 'echo hello tools' } }] }, { tokens: ['It', ' says', ' hello.'] });
    const id = await send(USER_TOKEN, chatId, 'say hello with a command');
    const answer = await final(USER_TOKEN, chatId, id);
    expect(answer).toMatchObject({ status: 'complete', content: 'Let me look.\n\nIt says hello.' });
    expect(answer.toolCalls).toHaveLength(1);
    expect(answer.toolCalls![0]).toMatchObject({ id: 'call_1_1', tool: 'run_command', arguments: { command: 'echo hello tools' }, status: 'completed', result: { exitCode: 0, stdout: 'hello tools\n', risk: 'safe' } });
    // The second round: the assistant's call, then the tool's result, named.
    const [first, second] = requestsFor('say hello with a command');
    expect(toolNames(first!)).toContain('run_command');
    const msgs = second!.body!.messages as { role: string; content: string; tool_calls?: unknown[]; tool_name?: string }[];
    expect(msgs.at(-2)).toMatchObject({ role: 'assistant', content: 'Let me look.', tool_calls: [{ function: { name: 'run_command', arguments: { command: 'echo hello tools' } } }] });
    expect(msgs.at(-1)).toMatchObject({ role: 'tool', tool_name: 'run_command' });
    expect(JSON.parse(msgs.at(-1)!.content)).toMatchObject({ status: 'completed', exitCode: 0, stdout: 'hello tools\n' });
    // No approval was asked for; the socket saw the call move on to its end.
    expect(seen.some((e) => e.event === 'approval:requested')).toBe(false);
    await until('the completed message on the socket', () => seen.some((e) => e.event === 'message:completed'));
    const statuses = toolCallEvents(seen, id).map((c) => c.status);
    expect(statuses[0]).toBe('pending');
    expect(statuses).toContain('running');
    expect(statuses.at(-1)).toBe('completed');
    // The deltas make up the content, separator included.
    const deltas = seen.filter((e) => e.event === 'message:delta' && e.data.messageId === id);
    expect(deltas.map((d) => d.data.delta).join('')).toBe(answer.content);
    expect(deltas.map((d) => d.data.seq)).toEqual(deltas.map((_, i) => i + 1));
  });

  it('holds a high command for its owner: approved over REST it runs, and the model gets its result', async () => {
    const { socket, seen } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    const command = `node -e "require('fs').appendFileSync('approved.txt', 'ran\\n')"`;
    fake.scriptNext(call('run_command', { command }), { tokens: ['Written.'] });
    const id = await send(USER_TOKEN, chatId, 'write a file with node');
    const requested = await until('approval:requested', () => seen.find((e) => e.event === 'approval:requested')?.data);
    expect(requested).toMatchObject({ command, risk: 'high' });
    const waiting = await until('the call waiting', () => toolCallEvents(seen, id).find((c) => c.status === 'pending_approval'));
    expect(waiting.approvalId).toBe(requested.approvalId);
    // Nothing ran yet, and the answer is still being written.
    expect(() => readFileSync(path.join(workspace(), 'approved.txt'))).toThrow();
    const decided = await api(app.url, USER_TOKEN, 'POST', `/terminal/approvals/${String(requested.approvalId)}`, { approve: true });
    expect(decided.status).toBe(200);
    const answer = await final(USER_TOKEN, chatId, id);
    expect(answer).toMatchObject({ status: 'complete', content: 'Written.' });
    expect(answer.toolCalls![0]).toMatchObject({ tool: 'run_command', status: 'completed', result: { exitCode: 0, risk: 'high' } });
    expect(readFileSync(path.join(workspace(), 'approved.txt'), 'utf8')).toBe('ran\n');
    expect(JSON.parse(toolMessages(requestsFor('write a file with node')[1]!)[0]!.content)).toMatchObject({ status: 'completed', exitCode: 0 });
  });

  it('takes the decision from socket approval:decide too', async () => {
    const { socket, seen } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    fake.scriptNext(call('run_command', { command: 'node -e "console.log(6*7)"' }), { tokens: ['42.'] });
    const id = await send(USER_TOKEN, chatId, 'compute with node');
    const requested = await until('approval:requested', () => seen.find((e) => e.event === 'approval:requested')?.data);
    expect(await socket.timeout(5000).emitWithAck('approval:decide', { approvalId: requested.approvalId, approve: true })).toMatchObject({ ok: true });
    const answer = await final(USER_TOKEN, chatId, id);
    expect(answer.toolCalls![0]).toMatchObject({ status: 'completed', result: { stdout: '42\n' } });
  });

  it('reports a denied call to the model as denied, and nothing runs', async () => {
    const { socket, seen } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    fake.scriptNext(call('run_command', { command: `node -e "require('fs').writeFileSync('denied.txt', 'x')"` }), { tokens: ['Understood.'] });
    const id = await send(USER_TOKEN, chatId, 'try something risky');
    const requested = await until('approval:requested', () => seen.find((e) => e.event === 'approval:requested')?.data);
    expect((await api(app.url, USER_TOKEN, 'POST', `/terminal/approvals/${String(requested.approvalId)}`, { approve: false })).status).toBe(200);
    const answer = await final(USER_TOKEN, chatId, id);
    expect(answer).toMatchObject({ status: 'complete', content: 'Understood.' });
    expect(answer.toolCalls![0]).toMatchObject({ status: 'denied', result: { error: expect.stringMatching(/denied/) } });
    const told = JSON.parse(toolMessages(requestsFor('try something risky')[1]!)[0]!.content) as { status: string; error: string };
    expect(told).toMatchObject({ status: 'denied' });
    expect(told.error).toMatch(/user denied/);
    expect(() => readFileSync(path.join(workspace(), 'denied.txt'))).toThrow();
  });

  it('stops during an approval wait: the answer ends stopped and the approval is withdrawn', async () => {
    const { socket, seen } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    fake.scriptNext({ tokens: ['Checking.'], toolCalls: [{ name: 'run_command', arguments: { command: 'node -e "1"' } }] }, { tokens: ['never asked'] });
    const id = await send(USER_TOKEN, chatId, 'wait for me');
    const requested = await until('approval:requested', () => seen.find((e) => e.event === 'approval:requested')?.data);
    const asked = requestsFor('wait for me').length;
    expect((await api<{ stopping: boolean }>(app.url, USER_TOKEN, 'POST', `/messages/${chatId}/stop`)).body.stopping).toBe(true);
    const answer = await final(USER_TOKEN, chatId, id);
    expect(answer).toMatchObject({ status: 'stopped', content: 'Checking.' });
    expect(answer.toolCalls![0]).toMatchObject({ status: 'cancelled' });
    const approval = await api<{ status: string }>(app.url, USER_TOKEN, 'GET', `/terminal/approvals/${String(requested.approvalId)}`);
    expect(approval.body.status).toBe('denied');
    expect(requestsFor('wait for me')).toHaveLength(asked);
  });

  it('never runs a forbidden command: refused without asking anyone, and the model is told', async () => {
    const { socket, seen } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    fake.scriptNext(call('run_command', { command: 'rm -rf /' }), { tokens: ['I will not.'] });
    const id = await send(USER_TOKEN, chatId, 'wipe the disk');
    const answer = await final(USER_TOKEN, chatId, id);
    expect(answer.toolCalls![0]).toMatchObject({ status: 'denied', result: { risk: 'forbidden', error: expect.stringMatching(/^refused/) } });
    expect(seen.some((e) => e.event === 'approval:requested')).toBe(false);
    expect(toolCallEvents(seen, id).map((c) => c.status)).not.toContain('running');
    expect(JSON.parse(toolMessages(requestsFor('wipe the disk')[1]!)[0]!.content)).toMatchObject({ status: 'denied' });
  });

  it('stops during a running command: its process is killed and the answer ends stopped', async () => {
    const { socket, seen } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    // An unusual duration, to find this very process.
    const running = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).some((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8') === 'sleep\u000031.4159\u0000';
      } catch {
        return false;
      }
    });
    fake.scriptNext(call('run_command', { command: 'sleep 31.4159' }), { tokens: ['never asked'] });
    const id = await send(USER_TOKEN, chatId, 'sleep for a while');
    await until('the command running', () => toolCallEvents(seen, id).some((c) => c.status === 'running') && running());
    expect((await api<{ stopping: boolean }>(app.url, USER_TOKEN, 'POST', `/messages/${chatId}/stop`)).body.stopping).toBe(true);
    const answer = await final(USER_TOKEN, chatId, id);
    expect(answer.status).toBe('stopped');
    expect(answer.toolCalls![0]).toMatchObject({ tool: 'run_command', status: 'cancelled' });
    await until('the command gone', () => !running());
    expect(requestsFor('sleep for a while')).toHaveLength(1);
  });

  it(`runs at most ${MAX_ROUNDS} rounds of tools, then asks once more without tools`, async () => {
    const { socket } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    // A model that would call a tool forever (without tools offered it can only answer in text).
    fake.script({ tokens: ['More.'], toolCalls: [{ name: 'run_command', arguments: { command: 'echo again' } }] });
    const id = await send(USER_TOKEN, chatId, 'loop forever');
    const answer = await final(USER_TOKEN, chatId, id);
    fake.script({});
    expect(answer).toMatchObject({ status: 'complete', content: 'More.\n\nMore.\n\nMore.' });
    expect(answer.toolCalls!.map((c) => c.status)).toEqual(['completed', 'completed']);
    const asked = requestsFor('loop forever');
    expect(asked).toHaveLength(MAX_ROUNDS + 1);
    expect(asked.map((r) => toolNames(r).length > 0)).toEqual([true, true, false]);
    expect(toolMessages(asked.at(-1)!)).toHaveLength(MAX_ROUNDS);
  });

  it('reads a workspace file, and refuses a path leading outside the workspace', async () => {
    const { socket } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    mkdirSync(path.join(workspace(), 'docs'), { recursive: true });
    writeFileSync(path.join(workspace(), 'docs', 'notes.txt'), 'first line\n');
    fake.scriptNext(
      { tokens: [], toolCalls: [{ name: 'run_command', arguments: { command: 'ls docs' } }] },
      { tokens: [], toolCalls: [{ name: 'read_file', arguments: { path: 'docs/notes.txt' } }, { name: 'read_file', arguments: { path: '../../../../etc/passwd' } }] },
      { tokens: ['Read.'] },
    );
    const id = await send(USER_TOKEN, chatId, 'read my files');
    const answer = await final(USER_TOKEN, chatId, id);
    expect(answer.toolCalls!.map((c) => [c.tool, c.status])).toEqual([
      ['run_command', 'completed'],
      ['read_file', 'completed'],
      ['read_file', 'failed'],
    ]);
    expect(answer.toolCalls![0]!.result).toMatchObject({ stdout: 'notes.txt\n' });
    expect(answer.toolCalls![1]!.result).toMatchObject({ path: 'docs/notes.txt', content: 'first line\n' });
    expect(String((answer.toolCalls![2]!.result as { error: string }).error)).toMatch(/^forbidden: .*inside your workspace/);
    const told = toolMessages(requestsFor('read my files').at(-1)!);
    expect(told.map((m) => m.tool_name)).toEqual(['run_command', 'read_file', 'read_file']);
    expect(told[2]!.content).not.toMatch(/root:/);
  });

  it('fetches an allow-listed local page as Markdown, while the SSRF guard refuses the rest', async () => {
    // Admins' policy allows `moderate` (reading a web page) without approval.
    const { socket, seen } = await socketFor(ADMIN_TOKEN);
    const chatId = await newChat(ADMIN_TOKEN, socket);
    const before = forbidden.connections();
    fake.scriptNext(
      {
        tokens: [],
        toolCalls: [
          { name: 'fetch_page', arguments: { url: `${site.url}/article` } },
          { name: 'fetch_page', arguments: { url: `http://127.0.0.1:${forbidden.port}/` } },
        ],
      },
      { tokens: ['Summarised.'] },
    );
    const id = await send(ADMIN_TOKEN, chatId, 'read that page');
    const answer = await final(ADMIN_TOKEN, chatId, id, 90_000);
    expect(answer.status).toBe('complete');
    const [ok, refused] = answer.toolCalls!;
    expect(ok).toMatchObject({ tool: 'fetch_page', status: 'completed', result: { title: 'Reading with AutoBot', status: 200 } });
    expect(String((ok!.result as { markdown: string }).markdown)).toMatch(/Paragraph 1 of the article/);
    expect(refused).toMatchObject({ tool: 'fetch_page', status: 'failed' });
    expect(String((refused!.result as { error: string }).error)).toMatch(/^forbidden/);
    expect(forbidden.connections()).toBe(before);
    expect(seen.some((e) => e.event === 'approval:requested')).toBe(false);
  }, 120_000);

  it('asks a user to approve reading a web page (moderate is above their policy)', async () => {
    const { socket, seen } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    fake.scriptNext(call('fetch_page', { url: `${site.url}/article` }), { tokens: ['Fine.'] });
    const id = await send(USER_TOKEN, chatId, 'fetch it for me');
    const requested = await until('approval:requested', () => seen.find((e) => e.event === 'approval:requested')?.data);
    expect(requested).toMatchObject({ risk: 'moderate', command: `fetch_page ${site.url}/article` });
    await api(app.url, USER_TOKEN, 'POST', `/terminal/approvals/${String(requested.approvalId)}`, { approve: true });
    const answer = await final(USER_TOKEN, chatId, id, 90_000);
    expect(answer.toolCalls![0]).toMatchObject({ status: 'completed', result: { title: 'Reading with AutoBot' } });
  }, 120_000);

  it("searches the user's own knowledge (hybrid, scoped to the caller)", async () => {
    await uploadIndexed(app.url, USER_TOKEN, [{ name: 'kettle.md', content: '# Kettle\n\nThe blue kettle descales with citric acid every month.\n' }]);
    await uploadIndexed(app.url, ADMIN_TOKEN, [{ name: 'private.md', content: '# Private\n\nThe admin kettle password is hunter2.\n' }]);
    await eventually(() => api<{ items: unknown[] }>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'kettle', mode: 'keyword' }), (r) => r.body.items.length > 0);
    await eventually(() => api<{ items: unknown[] }>(app.url, ADMIN_TOKEN, 'POST', '/search/documents', { query: 'hunter2', mode: 'keyword' }), (r) => r.body.items.length > 0);
    const { socket } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    fake.scriptNext(call('search_knowledge', { query: 'kettle' }), { tokens: ['Citric acid.'] });
    const answer = await final(USER_TOKEN, chatId, await send(USER_TOKEN, chatId, 'how do I descale?'));
    const result = answer.toolCalls![0]!.result as { items: { title: string; snippet: string }[] };
    expect(answer.toolCalls![0]!.status).toBe('completed');
    expect(result.items.map((i) => i.title)).toContain('kettle.md');
    expect(JSON.stringify(result)).not.toMatch(/hunter2/);
    expect(result.items.find((i) => i.title === 'kettle.md')!.snippet).toMatch(/citric acid/);
  }, 60_000);

  it('offers no tools when messages.toolsEnabled is off', async () => {
    expect((await api(app.url, ADMIN_TOKEN, 'PATCH', '/config', { messages: { toolsEnabled: false } })).status).toBe(200);
    const { socket } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    // The module applies the change when it hears config.settings.changed: ask until it shows.
    let n = 0;
    await until('tools off', async () => {
      const q = `no tools ${n++}`;
      await final(USER_TOKEN, chatId, await send(USER_TOKEN, chatId, q));
      return requestsFor(q)[0]!.body?.tools === undefined;
    });
    await api(app.url, ADMIN_TOKEN, 'PATCH', '/config', { messages: { toolsEnabled: true } });
  });

  // Last: the short TTL stays.
  it('counts an approval nobody decided as denied once it expires', async () => {
    expect((await api(app.url, ADMIN_TOKEN, 'PATCH', '/config', { terminal: { approvalTtlS: 1 } })).status).toBe(200);
    const { socket, seen } = await socketFor(USER_TOKEN);
    const chatId = await newChat(USER_TOKEN, socket);
    // terminal applies the new TTL when it hears config.settings.changed: ask until an approval has it.
    let answer: MessageView | undefined;
    for (let n = 0; !answer; n++) {
      fake.script({});
      fake.scriptNext(call('run_command', { command: 'node -e "2"' }), { tokens: ['Too late.'] });
      const id = await send(USER_TOKEN, chatId, `expire ${n}`);
      const requested = await until('approval:requested', () => seen.find((e) => e.event === 'approval:requested' && e.data.command === 'node -e "2"' && !e.data.seen)?.data);
      requested.seen = true;
      const short = Date.parse(String(requested.expiresAt)) - Date.now() < 5000;
      if (!short) await api(app.url, USER_TOKEN, 'POST', `/terminal/approvals/${String(requested.approvalId)}`, { approve: false });
      const m = await final(USER_TOKEN, chatId, id);
      if (short) answer = m;
      expect(n).toBeLessThan(50);
    }
    expect(answer.toolCalls![0]).toMatchObject({ status: 'denied', result: { error: expect.stringMatching(/expired/) } });
    expect(answer.content).toBe('Too late.');
  });
});
