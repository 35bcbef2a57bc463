// A chat with knowledge whose `search` (and the documents it indexes) runs in another process: the
// chat process's retrieve step reaches search over its HTTP binding, as the user (the actor crosses the
// wire), and the answer cites the user's document and never another user's private one.
import path from 'node:path';
import { expect, it } from 'vitest';
import type { MessageView } from '../../src/modules/history/contract.js';
import { startFakeOllama } from '../support/fake-ollama.js';
import { liftedProcesses } from '../support/lifted-processes.js';
import { ADMIN_TOKEN, USER_TOKEN } from '../support/test-auth.js';
import { api, eventually, uploadIndexed } from '../modules/search/support/search-app.js';
import { CONVERSATION_MODULES, until } from '../modules/messages/chat-app.js';

const { start, waitUntilSeen } = liftedProcesses(path.resolve(import.meta.dirname, '../modules/messages/chat-process-main.ts'));

it('retrieves from a search process of its own and cites what the user may see', async () => {
  const fake = await startFakeOllama();
  try {
    const retrieval = await start('config,files,documents,embeddings,accelerator,llm,knowledge,search');
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
    const answer = await until(
      'the answer',
      async () => {
        const { items } = (await api<{ items: MessageView[] }>(chat.url, USER_TOKEN, 'GET', `/messages/${created.body.id}`)).body;
        const a = items.find((m) => m.id === sent.body.assistantMessageId);
        return a && a.status !== 'streaming' ? a : undefined;
      },
      20_000,
    );
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
