// The messages contract over both bindings: a turn end to end through the saga (user message, streamed
// answer saved with usage, counters, a title), content rules (cleaning, empty 400, too long 413), one
// turn per clientMessageId, 409 while a turn runs, Stop (the request to Ollama closes, the answer ends
// `stopped` with its text), failures (`failed` with the error), regenerate (supersededBy), the
// prompt (system prompt, history within the model's context window), and a chat with knowledge whose
// search runs nowhere (answered, with a warning).
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { chatsContract } from '../../../src/modules/chats/contract.js';
import { historyContract } from '../../../src/modules/history/contract.js';
import { messagesContract } from '../../../src/modules/messages/contract.js';
import type { TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import type { FakeOllama } from '../../support/fake-ollama.js';
import { adminActor, userActor } from '../../support/test-auth.js';
import { as, chatAppSuite, refusal, until, waitForFinal } from './chat-app.js';

let fake: FakeOllama;
let app: TestApp;

chatAppSuite((s) => ({ fake, app } = s));

describe.each(bindingKinds)('messages contract (%s binding)', (kind) => {
  let messages: Port<typeof messagesContract>;
  let chats: Port<typeof chatsContract>;
  let history: Port<typeof historyContract>;
  const alice = userActor;

  beforeAll(() => {
    messages = portFor(kind, app, messagesContract);
    chats = portFor(kind, app, chatsContract);
    history = portFor(kind, app, historyContract);
  });
  beforeEach(() => {
    fake.script({});
    fake.failAll(null);
  });

  const newChat = (over: Record<string, unknown> = {}) => as(alice, () => chats.createChat(over));

  it('runs a turn: the user message, the streamed answer with usage, the counters and a title', async () => {
    fake.scriptNext({ tokens: ['The', ' sky', ' is', ' blue', '.'], promptEvalCount: 21 }, { tokens: ['Sky', ' colour'] });
    const chat = await newChat();
    const sent = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'Why is the sky blue?' }));
    expect(sent.userMessage).toMatchObject({ chatId: chat.id, role: 'user', content: 'Why is the sky blue?', status: 'complete', turnId: sent.turnId });
    const answer = await waitForFinal(history, alice, sent.assistantMessageId);
    expect(answer).toMatchObject({ role: 'assistant', status: 'complete', content: 'The sky is blue.', model: 'mistral:7b-instruct', turnId: sent.turnId });
    expect(answer.usage).toMatchObject({ promptTokens: 21, completionTokens: 5 });
    const transcript = await as(alice, () => history.listMessages({ chatId: chat.id }));
    expect(transcript.items.map((m) => [m.role, m.content])).toEqual([
      ['user', 'Why is the sky blue?'],
      ['assistant', 'The sky is blue.'],
    ]);
    // The chat's counters and its generated title follow the turn.
    const after = await until('the title', async () => {
      const c = await as(alice, () => chats.getChat({ id: chat.id }));
      return c.title ? c : undefined;
    });
    expect(after).toMatchObject({ messageCount: 2, title: 'Sky colour' });
    expect(Date.parse(after.lastActivityAt)).toBeGreaterThanOrEqual(Date.parse(chat.lastActivityAt));
    // What the model was asked: the default system prompt, then the question.
    const request = fake.chats().find((r) => (r.body?.messages as { content: string }[])?.some((m) => m.content === 'Why is the sky blue?') && r.body?.stream !== false);
    expect((request?.body?.messages as { role: string }[]).map((m) => m.role)).toEqual(['system', 'user']);
  });

  it('cleans control characters, refuses empty (400) and too long (413) messages, and another user’s chat (404)', async () => {
    const chat = await newChat({ title: 'rules' });
    const sent = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'a\u0000b\u0007c\r\nd\te\u001b' }));
    expect(sent.userMessage.content).toBe('abc\nd\te');
    await waitForFinal(history, alice, sent.assistantMessageId);
    expect(await refusal(as(alice, () => messages.sendMessage({ chatId: chat.id, content: ' \u0000\n ' })))).toMatchObject({
      code: 'invalid_input',
      details: [{ path: 'content' }],
    });
    expect(await refusal(as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'x'.repeat(32_001) })))).toMatchObject({ code: 'payload_too_large' });
    expect(await refusal(as(adminActor, () => messages.sendMessage({ chatId: chat.id, content: 'hi' })))).toMatchObject({ code: 'not_found' });
    expect(await refusal(as(alice, () => messages.sendMessage({ chatId: chat.id } as never)))).toMatchObject({ code: 'invalid_input' });
  });

  it('starts one turn for the same clientMessageId, and answers 409 to a second message while a turn runs', async () => {
    fake.script({ tokens: ['slow', ' answer'], firstTokenDelayMs: 400 });
    const chat = await newChat({ title: 'dedupe' });
    const first = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'once', clientMessageId: 'c-1' }));
    const again = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'once', clientMessageId: 'c-1' }));
    expect(again).toEqual(first);
    expect(await refusal(as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'twice' })))).toMatchObject({ code: 'conflict' });
    await waitForFinal(history, alice, first.assistantMessageId);
    const transcript = await as(alice, () => history.listMessages({ chatId: chat.id }));
    expect(transcript.items).toHaveLength(2);
    // Free again once the answer is final.
    fake.script({});
    const next = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'twice' }));
    await waitForFinal(history, alice, next.assistantMessageId);
  });

  it('stops a generation: the request to Ollama closes and the answer ends stopped with the text so far', async () => {
    fake.script({ tokens: Array.from({ length: 200 }, (_, i) => ` w${i}`), tokenDelayMs: 20 });
    const chat = await newChat({ title: 'stop' });
    const sent = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'talk a lot' }));
    // Two words saved before Stop: on a quiet machine a Stop sent after the first save lands before the
    // second token (20 ms later), and the assertion below is about keeping the text so far.
    await until('some text saved', async () => ((await as(alice, () => history.getMessage({ id: sent.assistantMessageId })).catch(() => undefined))?.content ?? '').startsWith(' w0 w1'));
    const before = fake.aborted().length;
    const stop = await as(alice, () => messages.stopTurn({ chatId: chat.id }));
    expect(stop).toEqual({ chatId: chat.id, turnId: sent.turnId, stopping: true });
    const answer = await waitForFinal(history, alice, sent.assistantMessageId);
    expect(answer.status).toBe('stopped');
    expect(answer.content).toMatch(/^ w0 w1/);
    expect(answer.content.length).toBeLessThan(200 * 4);
    await until('the abort at Ollama', () => fake.aborted().length > before);
    // Nothing left to stop.
    expect(await as(alice, () => messages.stopTurn({ chatId: chat.id }))).toEqual({ chatId: chat.id, turnId: null, stopping: false });
  });

  it('ends a failed generation failed, with the error and the partial text; the user message stays', async () => {
    fake.script({ tokens: ['partial', ' text', ' lost'], failAfter: { tokens: 2, error: 'model crashed' } });
    const chat = await newChat({ title: 'fail' });
    const sent = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'break' }));
    const answer = await waitForFinal(history, alice, sent.assistantMessageId);
    expect(answer.status).toBe('failed');
    expect(answer.error).toBeTruthy();
    expect(answer.content).toBe('partial text');
    const transcript = await as(alice, () => history.listMessages({ chatId: chat.id }));
    expect(transcript.items.map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'failed'],
    ]);
    const c = await until('counters', async () => {
      const x = await as(alice, () => chats.getChat({ id: chat.id }));
      return x.messageCount === 2 ? x : undefined;
    });
    expect(c.messageCount).toBe(2);
  });

  it('regenerates: a new answer to the last user message, the previous one marked supersededBy', async () => {
    fake.scriptNext({ tokens: ['first'] }, { tokens: ['second'] });
    const chat = await newChat({ title: 'regen' });
    const sent = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'answer twice' }));
    await waitForFinal(history, alice, sent.assistantMessageId);
    const again = await as(alice, () => messages.regenerate({ chatId: chat.id }));
    const second = await waitForFinal(history, alice, again.assistantMessageId);
    expect(second.content).toBe('second');
    const first = await as(alice, () => history.getMessage({ id: sent.assistantMessageId }));
    expect(first).toMatchObject({ content: 'first', supersededBy: again.assistantMessageId });
    // The replaced answer is not in the prompt of the new one.
    const last = fake.chats().at(-1)!.body!.messages as { role: string; content: string }[];
    expect(last.map((m) => m.content)).not.toContain('first');
    expect(last.at(-1)).toEqual({ role: 'user', content: 'answer twice' });
    const c = await until('counters', async () => {
      const x = await as(alice, () => chats.getChat({ id: chat.id }));
      return x.messageCount === 3 ? x : undefined;
    });
    expect(c.messageCount).toBe(3);
  });

  it("builds the prompt from the chat's system prompt and as much history as fits the model's context window", async () => {
    // gemma:2b has an 8,192-token window: with a 1,024-token reply reserve, about 25,000 characters
    // (3.5 per token) fit: two of the 9,000-character questions with their answers, not three.
    const chat = await newChat({ title: 'window', model: 'gemma:2b', systemPrompt: 'You are terse.' });
    for (let i = 0; i < 4; i++) {
      fake.script({ tokens: [`reply ${i}`] });
      const s = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: `${i}:${'x'.repeat(9_000)}` }));
      await waitForFinal(history, alice, s.assistantMessageId);
    }
    const last = fake.chats().at(-1)!.body!;
    expect(last.model).toBe('gemma:2b');
    const sentMessages = last.messages as { role: string; content: string }[];
    expect(sentMessages[0]).toEqual({ role: 'system', content: 'You are terse.' });
    expect(sentMessages.at(-1)!.content.startsWith('3:')).toBe(true);
    // Not everything fits: the oldest turns were left out, the newest kept.
    const users = sentMessages.filter((m) => m.role === 'user').map((m) => m.content.slice(0, 2));
    expect(users).toEqual(['2:', '3:']);
    expect(sentMessages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(sentMessages[1]!.role).toBe('user');
  });

  it('answers in a chat with knowledge when search runs nowhere: no citations, a warning; the retrieve step never throws for it', async () => {
    fake.script({ tokens: ['Without', ' sources.'] });
    const chat = await newChat({ title: 'knowledge', useKnowledge: true });
    const sent = await as(alice, () => messages.sendMessage({ chatId: chat.id, content: 'What do my notes say about bees?' }));
    const answer = await waitForFinal(history, alice, sent.assistantMessageId);
    expect(answer).toMatchObject({ status: 'complete', content: 'Without sources.' });
    expect(answer.citations).toBeUndefined();
    expect(answer.warnings).toEqual([expect.stringMatching(/^Knowledge search failed, so this answer cites no sources/)]);
    // The step itself, called as the orchestrator calls it: an outcome, not an error.
    const now = new Date().toISOString();
    const turn = { turnId: 't-direct', chatId: chat.id, userMessage: { id: 'm-q', content: 'bees?', createdAt: now }, assistantMessageId: 'm-a', assistantCreatedAt: now, titleNeeded: false, sse: false, useKnowledge: true };
    const outcome = await as(alice, () => messages.retrieve(turn));
    expect(outcome.sources).toEqual([]);
    expect(outcome.warning).toMatch(/^Knowledge search failed/);
    // Bad input is refused, naming the field; a turn journaled before useKnowledge existed still parses.
    const bad = await refusal(as(alice, () => messages.retrieve({ ...turn, useKnowledge: 'yes' as never })));
    expect(bad.code).toBe('invalid_input');
    expect(JSON.stringify(bad.details)).toContain('useKnowledge');
    const { useKnowledge: _old, ...older } = turn;
    expect((await as(alice, () => messages.retrieve(older as typeof turn))).sources).toEqual([]);
  });
});
