// A chat with knowledge whose `search` (and the documents it indexes) runs in another process: the
// chat process's retrieve step reaches search over its HTTP binding, as the user (the actor crosses the
// wire), and the answer cites the user's document and never another user's private one. And a turn
// whose chat process is killed mid-answer cites, once resumed, the sources it retrieved before the
// crash (journaled), even though its document was deleted in between.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MessageView } from '../../src/modules/history/contract.js';
import { startFakeOllama } from '../support/fake-ollama.js';
import { liftedProcesses } from '../support/lifted-processes.js';
import { ADMIN_TOKEN, USER_TOKEN } from '../support/test-auth.js';
import { api, eventually, uploadIndexed } from '../modules/search/support/search-app.js';
import { CONVERSATION_MODULES, until } from '../modules/messages/chat-app.js';

const MAIN = path.resolve(import.meta.dirname, '../modules/messages/chat-process-main.ts');
const RETRIEVAL_MODULES = 'config,files,documents,embeddings,accelerator,llm,knowledge,search';
const { start, waitUntilSeen } = liftedProcesses(MAIN);

async function answerOf(url: string, chatId: string, messageId: string, timeoutMs = 20_000): Promise<MessageView> {
  return until(
    'the answer',
    async () => {
      const { items } = (await api<{ items: MessageView[] }>(url, USER_TOKEN, 'GET', `/messages/${chatId}`)).body;
      const a = items.find((m) => m.id === messageId);
      return a && a.status !== 'streaming' ? a : undefined;
    },
    timeoutMs,
  );
}

it('retrieves from a search process of its own and cites what the user may see', async () => {
  const fake = await startFakeOllama();
  try {
    const retrieval = await start(RETRIEVAL_MODULES);
    const chat = await start(CONVERSATION_MODULES, { OLLAMA_URL: fake.url });
    await waitUntilSeen(chat, [retrieval]);
    const [mine] = await uploadIndexed(retrieval.url, USER_TOKEN, [{ name: 'beekeeping.md', content: '# Beekeeping\n\nThe hives on the roof are inspected every second Thursday for queen cells.' }]);
    const [theirs] = await uploadIndexed(retrieval.url, ADMIN_TOKEN, [{ name: 'hive-accounts.md', content: '# Hive accounts\n\nThe roof hives earned 977 euros of honey; inspection costs are private.' }]);
    await eventually(() => api<{ items: unknown[] }>(retrieval.url, USER_TOKEN, 'POST', '/search/documents', { query: 'queen cells', mode: 'keyword' }), (r) => r.body.items.length > 0, 20_000);
    await eventually(() => api<{ items: unknown[] }>(retrieval.url, ADMIN_TOKEN, 'POST', '/search/documents', { query: 'honey', mode: 'keyword' }), (r) => r.body.items.length > 0, 20_000);

    fake.script({ tokens: ['Every second Thursday', ' [1].'] });
    const created = await api<{ id: string }>(chat.url, USER_TOKEN, 'POST', '/chats', { title: 'bees', useKnowledge: true });
    const question = 'How often are the roof hives inspected?';
    const sent = await api<{ assistantMessageId: string }>(chat.url, USER_TOKEN, 'POST', '/messages', { chatId: created.body.id, content: question });
    expect(sent.status).toBe(202);
    const answer = await answerOf(chat.url, created.body.id, sent.body.assistantMessageId);
    expect(answer).toMatchObject({ status: 'complete', content: 'Every second Thursday [1].' });
    expect(answer.warnings).toBeUndefined();
    expect(answer.citations?.[0]).toMatchObject({ sourceType: 'document', sourceId: mine!.id, title: 'beekeeping.md' });
    expect(answer.citations!.some((c) => c.sourceId === theirs!.id)).toBe(false);
    const prompt = fake.chats().find((r) => (r.body?.messages as { content: string }[] | undefined)?.at(-1)?.content === question)!;
    const system = (prompt.body!.messages as { content: string }[])[0]!.content;
    expect(system).toContain('[1] beekeeping.md › Beekeeping\nThe hives on the roof are inspected every second Thursday for queen cells.');
    expect(system).not.toContain('977');
  } finally {
    await fake.close();
  }
}, 120_000);

describe('a knowledge turn resumed after its process was killed', () => {
  const lifted = liftedProcesses(MAIN);

  it('cites the sources journaled before the crash', async () => {
    const fake = await startFakeOllama();
    try {
      const retrieval = await lifted.start(RETRIEVAL_MODULES);
      const first = await lifted.start(CONVERSATION_MODULES, { OLLAMA_URL: fake.url });
      await lifted.waitUntilSeen(first, [retrieval]);
      const [doc] = await uploadIndexed(retrieval.url, USER_TOKEN, [{ name: 'smoker.md', content: '# Smoker\n\nThe bee smoker is lit with dry pine needles before opening a hive.' }]);
      await eventually(() => api<{ items: unknown[] }>(retrieval.url, USER_TOKEN, 'POST', '/search/documents', { query: 'pine needles', mode: 'keyword' }), (r) => r.body.items.length > 0, 20_000);

      fake.script({ tokens: Array.from({ length: 400 }, (_, i) => ` word${i}`), tokenDelayMs: 25 });
      const created = await api<{ id: string }>(first.url, USER_TOKEN, 'POST', '/chats', { title: 'smoke', useKnowledge: true });
      const question = 'What is the bee smoker lit with?';
      const sent = await api<{ assistantMessageId: string }>(first.url, USER_TOKEN, 'POST', '/messages', { chatId: created.body.id, content: question });
      expect(sent.status).toBe(202);
      await until('text saved mid-answer', async () => {
        const { items } = (await api<{ items: MessageView[] }>(retrieval.url, USER_TOKEN, 'GET', `/messages/${created.body.id}`)).body;
        return items.find((m) => m.id === sent.body.assistantMessageId && m.content.length > 40);
      });
      const asked = fake.chats().length;
      expect((fake.chats().at(-1)!.body!.messages as { content: string }[])[0]!.content).toContain('[1] smoker.md › Smoker');
      first.child.kill('SIGKILL');
      await first.exited;

      // The cited document goes before the turn resumes: a second retrieval would no longer find it.
      expect((await api(retrieval.url, USER_TOKEN, 'DELETE', `/documents/${doc!.id}`)).status).toBe(204);
      await eventually(() => api<{ items: unknown[] }>(retrieval.url, USER_TOKEN, 'POST', '/search/documents', { query: 'pine needles smoker' }), (r) => r.body.items.length === 0, 20_000);

      const second = await lifted.start(CONVERSATION_MODULES, { OLLAMA_URL: fake.url });
      const answer = await answerOf(second.url, created.body.id, sent.body.assistantMessageId, 60_000);
      expect(answer.status).toBe('failed');
      expect(answer.error).toMatch(/interrupted/);
      expect(fake.chats().length).toBe(asked);
      expect(answer.citations).toEqual([expect.objectContaining({ sourceType: 'document', sourceId: doc!.id, title: 'smoker.md' })]);
    } finally {
      await fake.close();
    }
  }, 150_000);
});
