// The chats contract over both bindings: owner-scoped CRUD (another user's chat is not_found), the list
// by last activity with cursor paging, counters that only move forward, generated titles that never
// overwrite the user's, and deletion that takes the chat's messages with it (through the event).
import { beforeAll, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { chatsContract } from '../../../src/modules/chats/contract.js';
import { historyContract } from '../../../src/modules/history/contract.js';
import type { TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import type { FakeOllama } from '../../support/fake-ollama.js';
import { adminActor, userActor } from '../../support/test-auth.js';
import { as, chatAppSuite, refusal, until } from '../messages/chat-app.js';

let fake: FakeOllama;
let app: TestApp;

chatAppSuite((s) => ({ fake, app } = s));

describe.each(bindingKinds)('chats contract (%s binding)', (kind) => {
  let chats: Port<typeof chatsContract>;
  let history: Port<typeof historyContract>;
  const alice = userActor;
  const other = adminActor;

  beforeAll(() => {
    chats = portFor(kind, app, chatsContract);
    history = portFor(kind, app, historyContract);
  });

  it('creates, reads, changes and deletes a chat of the caller; another user sees none of it', async () => {
    const chat = await as(alice, () => chats.createChat({ title: '  Trip plans ', systemPrompt: 'Be brief.', useKnowledge: true }));
    expect(chat).toMatchObject({ title: 'Trip plans', model: null, systemPrompt: 'Be brief.', useKnowledge: true, messageCount: 0 });
    expect(Object.keys(chat).sort()).toEqual(['createdAt', 'id', 'lastActivityAt', 'messageCount', 'model', 'systemPrompt', 'title', 'updatedAt', 'useKnowledge']);
    expect(await as(alice, () => chats.getChat({ id: chat.id }))).toEqual(chat);

    const changed = await as(alice, () => chats.updateChat({ id: chat.id, model: 'gemma:2b', systemPrompt: null, title: 'Holiday' }));
    expect(changed).toMatchObject({ id: chat.id, title: 'Holiday', model: 'gemma:2b', systemPrompt: null, useKnowledge: true });

    for (const call of [
      () => chats.getChat({ id: chat.id }),
      () => chats.updateChat({ id: chat.id, title: 'mine now' }),
      () => chats.deleteChat({ id: chat.id }),
      () => chats.recordActivity({ id: chat.id, messageCount: 99, lastActivityAt: new Date(Date.now() + 60_000).toISOString() }),
    ]) {
      expect(await refusal(as(other, call))).toMatchObject({ code: 'not_found' });
    }
    // Refused, and changed nothing.
    expect(await as(alice, () => chats.getChat({ id: chat.id }))).toMatchObject({ messageCount: chat.messageCount, title: 'Holiday' });
    expect((await as(other, () => chats.listChats({}))).items.map((c) => c.id)).not.toContain(chat.id);

    expect(await as(alice, () => chats.deleteChat({ id: chat.id }))).toBeNull();
    expect(await refusal(as(alice, () => chats.getChat({ id: chat.id })))).toMatchObject({ code: 'not_found' });
    expect(await refusal(as(alice, () => chats.deleteChat({ id: chat.id })))).toMatchObject({ code: 'not_found' });
  });

  it('refuses bad input naming the field, and callers without a user', async () => {
    expect(await refusal(as(alice, () => chats.createChat({ title: '' })))).toMatchObject({ code: 'invalid_input', details: [{ path: 'title' }] });
    expect(await refusal(as(alice, () => chats.createChat({ model: 'bad model!' })))).toMatchObject({ code: 'invalid_input', details: [{ path: 'model' }] });
    expect(await refusal(as(alice, () => chats.listChats({ cursor: 'nonsense' })))).toMatchObject({ code: 'invalid_input', details: [{ path: 'cursor' }] });
    expect(await refusal(chats.listChats({}))).toMatchObject({ code: 'unauthenticated' });
  });

  it('lists by last activity, newest first, a page at a time', async () => {
    const user = { type: 'user' as const, id: `u-list-${kind}`, roles: ['user'] };
    const made: { id: string }[] = [];
    for (let i = 0; i < 5; i++) {
      made.push(await as(user, () => chats.createChat({ title: `chat ${i}` })));
      // Chats made in the same millisecond have the same activity time, and ties have no defined order.
      await new Promise((r) => setTimeout(r, 3));
    }
    // Activity on the oldest moves it to the top.
    await as(user, () => chats.recordActivity({ id: made[0]!.id, messageCount: 2, lastActivityAt: new Date(Date.now() + 1000).toISOString() }));
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await as(user, () => chats.listChats({ limit: 2, ...(cursor ? { cursor } : {}) }));
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((c) => c.title!));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(['chat 0', 'chat 4', 'chat 3', 'chat 2', 'chat 1']);
  });

  it('moves counters only forward, and gives a generated title only to an untitled chat', async () => {
    const chat = await as(alice, () => chats.createChat({}));
    const later = new Date(Date.now() + 5000).toISOString();
    expect(await as(alice, () => chats.recordActivity({ id: chat.id, messageCount: 4, lastActivityAt: later }))).toMatchObject({ messageCount: 4, lastActivityAt: later });
    // A late report of an earlier turn changes nothing.
    expect(await as(alice, () => chats.recordActivity({ id: chat.id, messageCount: 2, lastActivityAt: chat.createdAt }))).toMatchObject({ messageCount: 4, lastActivityAt: later });
    expect(await as(alice, () => chats.setGeneratedTitle({ id: chat.id, title: 'Generated' }))).toMatchObject({ applied: true, chat: { title: 'Generated' } });
    await as(alice, () => chats.updateChat({ id: chat.id, title: 'Mine' }));
    expect(await as(alice, () => chats.setGeneratedTitle({ id: chat.id, title: 'Other' }))).toMatchObject({ applied: false, chat: { title: 'Mine' } });
  });

  it("deletes the chat's messages with it (from the transcript and the search index)", async () => {
    const chat = await as(alice, () => chats.createChat({ title: 'doomed' }));
    const word = `zebrafish${kind}`;
    for (const [i, role] of (['user', 'assistant'] as const).entries()) {
      await as(alice, () =>
        history.appendMessage({ message: { id: `m-del-${kind}-${i}`, chatId: chat.id, role, content: `about ${word} ${i}`, status: 'complete', createdAt: new Date().toISOString() } }),
      );
    }
    expect((await as(alice, () => history.searchMessages({ q: word }))).items).toHaveLength(2);
    await as(alice, () => chats.deleteChat({ id: chat.id }));
    await until('messages gone', () => as(alice, () => history.getMessage({ id: `m-del-${kind}-0` })).then(() => false, (err: { code: string }) => err.code === 'not_found'));
    await until('index cleared', async () => (await as(alice, () => history.searchMessages({ q: word }))).items.length === 0);
  });
});
