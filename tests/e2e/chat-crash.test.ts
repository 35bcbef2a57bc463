// No answer is ever left `streaming`: the process running a turn is killed (SIGKILL) mid-reply, a new
// process starts, the saga resumes from its journal and the answer ends `failed` ("interrupted") with
// the text saved so far, within 10 s of the restart, without asking the model a second time; the
// chat's counters match its messages and the chat takes the next message.
import { describe, expect, it } from 'vitest';
import type { ChildApp } from '../support/process.js';
import { chatProcesses } from '../support/chat-processes.js';
import { until } from '../modules/messages/chat-app.js';

const processes = chatProcesses();
const start = () => processes.start();
const call = processes.call.bind(processes);

interface Msg {
  id: string;
  role: string;
  status: string;
  content: string;
  error?: string;
}

describe('chat turn after kill -9', () => {
  it('ends the interrupted answer within 10 s of a restart, keeps its text, and the counters match', async () => {
    processes.fake.script({ tokens: Array.from({ length: 400 }, (_, i) => ` word${i}`), tokenDelayMs: 25 });
    const first = await start();
    const chat = (await call<{ id: string }>(first, 'POST', '/chats', { title: 'crash' })).body;
    const sent = await call<{ turnId: string; assistantMessageId: string }>(first, 'POST', '/messages', { chatId: chat.id, content: 'tell me everything' });
    expect(sent.status).toBe(202);
    const transcript = async (app: ChildApp) => (await call<{ items: Msg[] }>(app, 'GET', `/messages/${chat.id}`)).body.items;
    // Mid-reply: some text is saved (it is saved at least every 500 ms).
    const partial = await until('saved text', async () => {
      const a = (await transcript(first)).find((m) => m.role === 'assistant');
      return a && a.content.length > 40 ? a.content : undefined;
    });
    const requestsBefore = processes.fake.chats().length;
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await start();
    const restartedAt = Date.now();
    const answer = await until(
      'the answer final',
      async () => {
        const a = (await transcript(second)).find((m) => m.role === 'assistant');
        return a && a.status !== 'streaming' ? a : undefined;
      },
      15_000,
    );
    const tookMs = Date.now() - restartedAt;
    expect(tookMs).toBeLessThan(10_000);
    expect(answer.status).toBe('failed');
    expect(answer.error).toMatch(/interrupted/);
    expect(answer.content.startsWith(partial)).toBe(true);
    // The model was not asked again for this turn.
    expect(processes.fake.chats().length).toBe(requestsBefore);
    const items = await transcript(second);
    expect(items.map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'failed'],
    ]);
    const counted = await until('counters', async () => {
      const c = (await call<{ messageCount: number }>(second, 'GET', `/chats/${chat.id}`)).body;
      return c.messageCount === items.length ? c : undefined;
    });
    expect(counted.messageCount).toBe(2);
    // The chat is free: the next message gets an answer.
    processes.fake.script({ tokens: ['fine', ' again'] });
    const next = await call<{ assistantMessageId: string }>(second, 'POST', '/messages', { chatId: chat.id, content: 'still there?' });
    expect(next.status).toBe(202);
    const again = await until('next answer', async () => (await transcript(second)).find((m) => m.id === next.body.assistantMessageId && m.status === 'complete'));
    expect(again.content).toBe('fine again');
  }, 60_000);
});
