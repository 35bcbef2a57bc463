// The history contract over both bindings: transcripts paged both ways, a final message never changed
// by a late progress save, ranked keyword search over the caller's own messages only (stemming,
// "phrases", prefix*, highlights, kept current on save and delete), export as JSON and Markdown, and
// analytics (admins only for scope=all). Then the index survives a restart without a rebuild.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { chatsContract } from '../../../src/modules/chats/contract.js';
import { historyContract } from '../../../src/modules/history/contract.js';
import type { TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import type { FakeOllama } from '../../support/fake-ollama.js';
import { startTestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, USER_TOKEN, adminActor, bearer, userActor } from '../../support/test-auth.js';
import { as, chatAppSuite, refusal, startChatApp } from '../messages/chat-app.js';

let fake: FakeOllama;
let app: TestApp;

chatAppSuite((s) => ({ fake, app } = s));

let n = 0;
const msg = (chatId: string, role: 'user' | 'assistant', content: string, over: Record<string, unknown> = {}) => ({
  id: `m-${Date.now().toString(36)}-${n++}`,
  chatId,
  role,
  content,
  status: 'complete' as const,
  createdAt: new Date().toISOString(),
  ...over,
});

describe.each(bindingKinds)('history contract (%s binding)', (kind) => {
  let history: Port<typeof historyContract>;
  let chats: Port<typeof chatsContract>;
  const alice = userActor;

  beforeAll(() => {
    history = portFor(kind, app, historyContract);
    chats = portFor(kind, app, chatsContract);
  });

  it('pages a transcript oldest first (or newest first), only for the chat’s owner', async () => {
    const chat = await as(alice, () => chats.createChat({ title: 'paging' }));
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await as(alice, () => history.appendMessage({ message: msg(chat.id, i % 2 ? 'assistant' : 'user', `line ${i}`) }))).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await as(alice, () => history.listMessages({ chatId: chat.id, limit: 2, ...(cursor ? { cursor } : {}) }));
      seen.push(...page.items.map((m) => m.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(ids);
    const desc = await as(alice, () => history.listMessages({ chatId: chat.id, limit: 3, order: 'desc' }));
    expect(desc.items.map((m) => m.content)).toEqual(['line 4', 'line 3', 'line 2']);
    expect(await refusal(as(adminActor, () => history.listMessages({ chatId: chat.id })))).toMatchObject({ code: 'not_found' });
    expect(await refusal(as(adminActor, () => history.getMessage({ id: ids[0]! })))).toMatchObject({ code: 'not_found' });
  });

  it('answers what a prompt can use, newest first, up to maxChars, and only the caller’s own messages', async () => {
    const chat = await as(alice, () => chats.createChat({ title: 'prompt' }));
    const add = (role: 'user' | 'assistant', content: string, over: Record<string, unknown> = {}) =>
      as(alice, () => history.appendMessage({ message: msg(chat.id, role, content, over) }));
    // More than one page of history (history reads 128 messages first, then pages four times larger).
    for (let i = 0; i < 140; i++) await add(i % 2 ? 'assistant' : 'user', `turn ${i}`);
    await add('user', '   ');
    const replaced = await add('assistant', 'the first answer');
    await add('assistant', 'stopped half way', { status: 'stopped' });
    await add('assistant', 'failed answer', { status: 'failed' });
    await add('user', 'the question');
    await add('assistant', 'being written', { status: 'streaming' });
    await as(alice, () => history.supersedeMessage({ id: replaced.id, by: 'm-newer' }));

    const all = await as(alice, () => history.recentForPrompt({ chatId: chat.id, maxChars: 1_000_000 }));
    expect(all.items.slice(0, 3)).toEqual([
      { role: 'user', content: 'the question' },
      { role: 'assistant', content: 'stopped half way' },
      { role: 'assistant', content: 'turn 139' },
    ]);
    expect(all.items).toHaveLength(142);
    expect(all.items.at(-1)).toEqual({ role: 'user', content: 'turn 0' });
    // Reading stops at the message whose text passes maxChars ("the question" is 12, "stopped half way" 16).
    const few = await as(alice, () => history.recentForPrompt({ chatId: chat.id, maxChars: 20 }));
    expect(few.items.map((m) => m.content)).toEqual(['the question', 'stopped half way']);
    expect((await as(adminActor, () => history.recentForPrompt({ chatId: chat.id, maxChars: 1_000_000 }))).items).toEqual([]);
    // Characters, not bytes: "üñï" and "ééé" are 3 each (6 bytes each in UTF-8), so with maxChars 6 the
    // reading only stops at "x", which passes it.
    const accents = await as(alice, () => chats.createChat({ title: 'accents' }));
    for (const [role, content] of [['user', 'x'], ['assistant', 'ééé'], ['user', 'üñï']] as const) {
      await as(alice, () => history.appendMessage({ message: msg(accents.id, role, content) }));
    }
    expect((await as(alice, () => history.recentForPrompt({ chatId: accents.id, maxChars: 6 }))).items.map((m) => m.content)).toEqual(['üñï', 'ééé', 'x']);
    expect((await as(alice, () => history.recentForPrompt({ chatId: accents.id, maxChars: 5 }))).items.map((m) => m.content)).toEqual(['üñï', 'ééé']);
    expect(await refusal(as(alice, () => history.recentForPrompt({ chatId: chat.id, maxChars: 0 })))).toMatchObject({ code: 'invalid_input', details: [{ path: 'maxChars' }] });
  });

  it('saves progress while streaming, ends once, and ignores progress after the end', async () => {
    const chat = await as(alice, () => chats.createChat({ title: 'stream' }));
    const m = await as(alice, () => history.appendMessage({ message: msg(chat.id, 'assistant', '', { status: 'streaming' }) }));
    expect(await as(alice, () => history.saveProgress({ id: m.id, content: 'Hel' }))).toEqual({ saved: true });
    const usage = { promptTokens: 3, completionTokens: 2, timeToFirstTokenMs: 5, durationMs: 9 };
    const done = await as(alice, () => history.finishMessage({ id: m.id, status: 'complete', content: 'Hello', usage, model: 'gemma:2b' }));
    expect(done).toMatchObject({ applied: true, messageCount: 1, message: { status: 'complete', content: 'Hello', usage } });
    expect(await as(alice, () => history.saveProgress({ id: m.id, content: 'Hel' }))).toEqual({ saved: false });
    const again = await as(alice, () => history.finishMessage({ id: m.id, status: 'failed', content: 'x', error: 'late' }));
    expect(again).toMatchObject({ applied: false, message: { status: 'complete', content: 'Hello' } });
  });

  it('searches the caller’s own messages: ranked, stemmed, phrases, prefixes, highlighted, filtered by chat', async () => {
    const tag = `k${kind}`;
    const a = await as(alice, () => chats.createChat({ title: `Gardening ${tag}` }));
    const b = await as(alice, () => chats.createChat({ title: `Cooking ${tag}` }));
    await as(alice, () => history.appendMessage({ message: msg(a.id, 'user', `How do I prune ${tag} roses in winter?`) }));
    await as(alice, () => history.appendMessage({ message: msg(a.id, 'assistant', `Pruning ${tag} roses: cut above an outward bud. Roses like pruning <early>.`) }));
    await as(alice, () => history.appendMessage({ message: msg(b.id, 'user', `A ${tag} recipe with winter vegetables and roasted roots`) }));
    await as(adminActor, async () => {
      const own = await chats.createChat({ title: 'not yours' });
      await history.appendMessage({ message: msg(own.id, 'user', `${tag} roses belong to someone else`) });
    });

    const roses = await as(alice, () => history.searchMessages({ q: `${tag} prunes rose` }));
    expect(roses.items.map((i) => i.chatId)).toEqual([a.id, a.id]);
    // The answer mentioning both words more often ranks first; scores descend.
    expect(roses.items[0]!.message.role).toBe('assistant');
    expect(roses.items[0]!.score).toBeGreaterThanOrEqual(roses.items[1]!.score);
    expect(roses.items[0]).toMatchObject({ chatTitle: `Gardening ${tag}` });
    expect(roses.items[0]!.highlight).toContain('<mark>Pruning</mark>');
    expect(roses.items[0]!.highlight).toContain('&lt;early&gt;');

    const phrase = await as(alice, () => history.searchMessages({ q: `${tag} "winter vegetables"` }));
    expect(phrase.items.map((i) => i.chatId)).toEqual([b.id]);
    expect((await as(alice, () => history.searchMessages({ q: `${tag} "vegetables winter"` }))).items).toEqual([]);
    const prefix = await as(alice, () => history.searchMessages({ q: `${tag} veget*` }));
    expect(prefix.items.map((i) => i.chatId)).toEqual([b.id]);
    expect(prefix.items[0]!.highlight).toContain('<mark>vegetables</mark>');
    const inChat = await as(alice, () => history.searchMessages({ q: `${tag} winter`, chatId: a.id }));
    expect(inChat.items.map((i) => i.chatId)).toEqual([a.id]);
    expect(await refusal(as(alice, () => history.searchMessages({ q: '  ' })))).toMatchObject({ code: 'invalid_input', details: [{ path: 'q' }] });
  });

  it('exports a chat as JSON and as Markdown', async () => {
    const chat = await as(alice, () => chats.createChat({ title: 'Export me' }));
    await as(alice, () => history.appendMessage({ message: msg(chat.id, 'user', 'Question?') }));
    await as(alice, () => history.appendMessage({ message: msg(chat.id, 'assistant', 'Answer.', { model: 'gemma:2b' }) }));
    const json = await as(alice, () => history.exportChat({ id: chat.id, format: 'json' }));
    expect(json).toMatchObject({ format: 'json', filename: 'Export-me.json', chat: { id: chat.id, title: 'Export me' } });
    expect(json.messages!.map((m) => m.content)).toEqual(['Question?', 'Answer.']);
    const md = await as(alice, () => history.exportChat({ id: chat.id, format: 'markdown' }));
    expect(md.filename).toBe('Export-me.md');
    expect(md.content).toMatch(/^# Export me\n/);
    expect(md.content).toMatch(/## You\n\n_.*_\n\nQuestion\?\n\n## Assistant\n\n_.* · gemma:2b_\n\nAnswer\./);
    expect(await refusal(as(adminActor, () => history.exportChat({ id: chat.id, format: 'json' })))).toMatchObject({ code: 'not_found' });

    // The same as a file download: over the port, and over REST as GET /chats/:id/export.
    const file = await as(alice, () => history.downloadExport({ id: chat.id, format: 'markdown' }));
    expect(file).toMatchObject({ contentType: 'text/markdown; charset=utf-8', fileName: 'Export-me.md', disposition: 'attachment' });
    const parts: Buffer[] = [];
    for await (const part of file.body) parts.push(Buffer.from(part));
    expect(Buffer.concat(parts).toString('utf8')).toMatch(/^# Export me\n/);
    const res = await fetch(`${app.url}/api/v1/chats/${chat.id}/export?format=json`, { headers: bearer(USER_TOKEN) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="Export-me.json"/);
    const body = (await res.json()) as { chat: { id: string }; messages: { content: string }[] };
    expect(body.chat.id).toBe(chat.id);
    expect(body.messages.map((m) => m.content)).toEqual(['Question?', 'Answer.']);
    const other = await fetch(`${app.url}/api/v1/chats/${chat.id}/export`, { headers: bearer(ADMIN_TOKEN) });
    expect(other.status).toBe(404);
  });

  it('reports analytics of the caller’s conversations; scope=all is for admins', async () => {
    const user = { type: 'user' as const, id: `u-analytics-${kind}`, roles: ['user'] };
    const chat = await as(user, () => chats.createChat({ title: 'stats' }));
    const usage = (d: number) => ({ promptTokens: 10, completionTokens: 5, timeToFirstTokenMs: 2, durationMs: d });
    await as(user, () => history.appendMessage({ message: msg(chat.id, 'user', 'q1') }));
    for (const [i, d] of [100, 300].entries()) {
      const m = await as(user, () => history.appendMessage({ message: msg(chat.id, 'assistant', '', { status: 'streaming' }) }));
      await as(user, () => history.finishMessage({ id: m.id, status: i ? 'stopped' : 'complete', content: 'a', usage: usage(d), model: 'gemma:2b' }));
    }
    const a = await as(user, () => history.conversationAnalytics({}));
    expect(a).toMatchObject({
      scope: 'own',
      messages: 3,
      turns: 2,
      outcomes: { complete: 1, stopped: 1, failed: 0 },
      averageResponseMs: 200,
      p95ResponseMs: 300,
      tokens: { prompt: 20, completion: 10 },
      models: [{ model: 'gemma:2b', turns: 2 }],
    });
    expect(a.days.at(-1)).toMatchObject({ date: new Date().toISOString().slice(0, 10), turns: 2, messages: 3 });
    expect(await refusal(as(user, () => history.conversationAnalytics({ scope: 'all' })))).toMatchObject({ code: 'forbidden' });
    const all = await as(adminActor, () => history.conversationAnalytics({ scope: 'all' }));
    expect(all.messages).toBeGreaterThanOrEqual(3);
  });
});

describe('message search index across a restart', () => {
  it('answers from the snapshot and the log after a restart, without a rebuild, and forgets removed messages', async () => {
    const local = await startTestRedis();
    let first: TestApp | undefined = await startChatApp(local.url, fake.url);
    try {
      const h = first.runtime.port(historyContract);
      const c = first.runtime.port(chatsContract);
      const chat = await as(userActor, () => c.createChat({ title: 'durable' }));
      for (let i = 0; i < 30; i++) await as(userActor, () => h.appendMessage({ message: msg(chat.id, 'user', `durable note ${i} about quokkas`) }));
      await first.stop();
      first = undefined;
      const second = await startChatApp(local.url, fake.url);
      try {
        const h2 = second.runtime.port(historyContract);
        expect((await as(userActor, () => h2.searchMessages({ q: 'quokka', limit: 100 }))).items).toHaveLength(30);
        await as(userActor, () => second.runtime.port(chatsContract).deleteChat({ id: chat.id }));
        const { until } = await import('../messages/chat-app.js');
        await until('removed from the index', async () => (await as(userActor, () => h2.searchMessages({ q: 'quokka' }))).items.length === 0);
      } finally {
        await second.stop();
      }
    } finally {
      await first?.stop();
      await local.stop();
    }
  });
});
