// Answers with citations, end to end over REST and server-sent events: documents uploaded and indexed,
// a question in a chat with knowledge; the prompt the (fake) model received quotes the right chunk as a
// numbered source with the instruction to cite, and the answer's citations point to that document in
// the order of the numbers; `turn:status` shows the retrieve step. Another user's private document never
// reaches a prompt or a citation. A regeneration retrieves for the last user message. A chat without
// knowledge runs no retrieval; when search cannot be reached the turn still answers, with a warning;
// when only embeddings cannot be reached, the sources come from keyword search, with no warning.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createParser } from 'eventsource-parser';
import type { TestApp } from '../../support/app.js';
import { DEFAULT_FAKE_MODELS, startFakeOllama, type FakeOllama, type RecordedRequest } from '../../support/fake-ollama.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, USER_TOKEN, bearer } from '../../support/test-auth.js';
import { api, eventually, uploadIndexed } from '../search/support/search-app.js';
import { CITE_INSTRUCTION } from '../../../src/modules/messages/prompt.js';
import type { MessageView } from '../../../src/modules/history/contract.js';
import type { DocumentView } from '../../../src/modules/documents/contract.js';
import { CONVERSATION_MODULES, startChatApp, until } from './chat-app.js';

const LIGHTHOUSE = `# Lighthouse maintenance

## Lens

The Fresnel lens of the Skerryvore lighthouse is polished every Tuesday with chamois leather.

## Fuel

Paraffin for the backup lamp is delivered by boat in March.
`;
const GARDEN = `# Garden

Tomatoes in the greenhouse need watering every evening in July.
`;
// The admin's own, not shared: alice must never see it.
const SECRET = `# Skerryvore payroll

Confidential: the Skerryvore lighthouse keeper earns 4217 per month; the lens polishing bonus is secret.
`;

interface TurnEvent {
  event: string;
  data: Record<string, unknown>;
}

let redis: TestRedis;
let fake: FakeOllama;
let app: TestApp;
let lighthouse: DocumentView;
let secret: DocumentView;

beforeAll(async () => {
  redis = await startTestRedis();
  fake = await startFakeOllama();
  app = await startChatApp(redis.url, fake.url, { knowledge: true });
  lighthouse = (await uploadIndexed(app.url, USER_TOKEN, [{ name: 'lighthouse.md', content: LIGHTHOUSE }]))[0]!;
  await uploadIndexed(app.url, USER_TOKEN, [{ name: 'garden.md', content: GARDEN }]);
  secret = (await uploadIndexed(app.url, ADMIN_TOKEN, [{ name: 'payroll.md', content: SECRET }]))[0]!;
  // Search follows the indexed events: wait until it shows both users' documents to their owners.
  await eventually(() => api<{ items: unknown[] }>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'Fresnel', mode: 'keyword' }), (r) => r.body.items.length > 0);
  await eventually(() => api<{ items: unknown[] }>(app.url, ADMIN_TOKEN, 'POST', '/search/documents', { query: 'payroll', mode: 'keyword' }), (r) => r.body.items.length > 0);
}, 90_000);
afterAll(async () => {
  await app?.stop();
  await fake?.close();
  await redis?.stop();
});

async function newChat(url: string, useKnowledge: boolean, model?: string): Promise<{ id: string }> {
  const r = await api<{ id: string; useKnowledge: boolean }>(url, USER_TOKEN, 'POST', '/chats', { title: 'knowledge', useKnowledge, ...(model ? { model } : {}) });
  expect(r.status).toBe(201);
  expect(r.body.useKnowledge).toBe(useKnowledge);
  return r.body;
}

/** Sends a message as alice, following the turn as server-sent events until it ends. */
async function ask(url: string, chatId: string, content: string): Promise<TurnEvent[]> {
  const res = await fetch(`${url}/api/v1/messages`, {
    method: 'POST',
    headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ chatId, content }),
  });
  expect(res.status).toBe(200);
  const events: TurnEvent[] = [];
  const parser = createParser({ onEvent: (e) => events.push({ event: e.event ?? 'message', data: JSON.parse(e.data) as Record<string, unknown> }) });
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
  return events;
}

const finalMessage = (events: TurnEvent[]) => events.find((e) => e.event === 'message:completed')!.data.message as MessageView;
const statuses = (events: TurnEvent[]) => events.filter((e) => e.event === 'turn:status').map((e) => `${String(e.data.status)}:${String(e.data.step)}`);

/** The streamed chat request the fake model received for `question` (titles are asked without streaming). */
function promptFor(question: string): { role: string; content: string }[] {
  const req = fake
    .chats()
    .filter((r: RecordedRequest) => r.body?.stream !== false)
    .findLast((r) => (r.body?.messages as { content: string }[] | undefined)?.at(-1)?.content === question);
  if (!req) throw new Error(`the model was not asked "${question}"`);
  return req.body!.messages as { role: string; content: string }[];
}

describe('answers with citations', () => {
  it('quotes the right chunk as a numbered source, cites its document in number order, and shows the retrieve step', async () => {
    fake.script({ tokens: ['The lens', ' is polished', ' every Tuesday', ' [1].'] });
    const chat = await newChat(app.url, true);
    const question = 'How often is the Skerryvore lighthouse lens polished?';
    const events = await ask(app.url, chat.id, question);

    // turn:status shows the retrieval step, before generation.
    const seen = statuses(events);
    expect(seen).toContain('retrieving:retrieve');
    expect(seen.indexOf('retrieving:retrieve')).toBeLessThan(seen.indexOf('generating:generate'));

    const system = promptFor(question)[0]!;
    expect(system.role).toBe('system');
    expect(system.content).toContain(CITE_INSTRUCTION);
    expect(system.content).toContain('[1] lighthouse.md › Lighthouse maintenance › Lens\nThe Fresnel lens of the Skerryvore lighthouse is polished every Tuesday with chamois leather.');
    // The other user's private document shares the question's words, and still never reaches the prompt.
    expect(system.content).not.toContain('4217');
    expect(system.content).not.toContain('payroll');

    const answer = finalMessage(events);
    expect(answer.status).toBe('complete');
    expect(answer.warnings).toBeUndefined();
    const citations = answer.citations!;
    expect(citations[0]).toMatchObject({ sourceType: 'document', sourceId: lighthouse.id, title: 'lighthouse.md' });
    expect(citations[0]!.snippet).toContain('<mark>');
    expect(citations.some((c) => c.sourceId === secret.id)).toBe(false);
    expect(JSON.stringify(citations)).not.toContain('4217');
    // Citation n is the source the prompt numbered [n].
    citations.forEach((c, i) => expect(system.content).toContain(`[${i + 1}] ${c.title}`));
    expect(system.content).not.toContain(`[${citations.length + 1}] `);
    // The stored message says the same as the event.
    const stored = (await api<{ items: MessageView[] }>(app.url, USER_TOKEN, 'GET', `/messages/${chat.id}`)).body.items.at(-1)!;
    expect(stored.citations).toEqual(citations);
  });

  it('cites facts too, and a regeneration retrieves for the last user message', async () => {
    const fact = await api<{ id: string }>(app.url, USER_TOKEN, 'POST', '/knowledge/facts', { content: 'The greenhouse thermometer must stay below 30 degrees' });
    expect(fact.status).toBe(201);
    await eventually(() => api<{ items: { sourceId: string }[] }>(app.url, USER_TOKEN, 'POST', '/search/documents', { query: 'thermometer', mode: 'keyword' }), (r) => r.body.items.some((i) => i.sourceId === fact.body.id));
    fake.script({ tokens: ['Below 30 degrees [1].'] });
    const chat = await newChat(app.url, true);
    const question = 'What temperature must the greenhouse thermometer stay below?';
    const first = finalMessage(await ask(app.url, chat.id, question));
    expect(first.citations?.[0]).toMatchObject({ sourceType: 'fact', sourceId: fact.body.id });

    const asked = fake.chats().length;
    const again = await api<{ assistantMessageId: string }>(app.url, USER_TOKEN, 'POST', `/messages/${chat.id}/regenerate`);
    expect(again.status).toBe(202);
    const regenerated = await until('the new answer', async () => {
      const { items } = (await api<{ items: MessageView[] }>(app.url, USER_TOKEN, 'GET', `/messages/${chat.id}`)).body;
      const a = items.find((x) => x.id === again.body.assistantMessageId);
      return a && a.status !== 'streaming' ? a : undefined;
    });
    expect(fake.chats().length).toBeGreaterThan(asked);
    expect(regenerated.status).toBe('complete');
    expect(regenerated.citations?.[0]).toMatchObject({ sourceType: 'fact', sourceId: fact.body.id });
    // A fact is its own title: quoted once.
    expect(promptFor(question)[0]!.content).toContain('[1] The greenhouse thermometer must stay below 30 degrees');
    expect(promptFor(question)[0]!.content.split('greenhouse thermometer')).toHaveLength(2);
  });

  it("counts the sources against the model's context window: fewer in a small one, none when nothing fits", async () => {
    fake.setModels([
      ...DEFAULT_FAKE_MODELS,
      { name: 'small:1b', family: 'llama', contextLength: 700, capabilities: ['completion'] },
      { name: 'tiny:1b', family: 'llama', contextLength: 300, capabilities: ['completion'] },
    ]);
    try {
      const question = 'Which lamp of the Skerryvore lighthouse needs paraffin, and how is the lens polished?';
      fake.script({ tokens: ['Answer [1].'] });
      const wide = finalMessage(await ask(app.url, (await newChat(app.url, true)).id, question));
      const narrow = finalMessage(await ask(app.url, (await newChat(app.url, true, 'small:1b')).id, question));
      expect(narrow.status).toBe('complete');
      expect(narrow.citations!.length).toBeGreaterThan(0);
      expect(narrow.citations!.length).toBeLessThan(wide.citations!.length);
      expect(narrow.citations![0]!.sourceId).toBe(lighthouse.id);
      // The prompt the small model got fits its window less the reply reserve (half of it): 350 tokens.
      const prompt = fake.chats().filter((r) => r.body?.model === 'small:1b').at(-1)!.body!.messages as { content: string }[];
      expect(prompt.reduce((sum, m) => sum + Math.ceil(m.content.length / 3.5) + 4, 0)).toBeLessThanOrEqual(350);
      // A window too small for any source: the turn answers without, and says why.
      const tiny = finalMessage(await ask(app.url, (await newChat(app.url, true, 'tiny:1b')).id, question));
      expect(tiny.status).toBe('complete');
      expect(tiny.citations).toBeUndefined();
      expect(tiny.warnings).toEqual([expect.stringMatching(/context window \(300 tokens\) leaves no room for knowledge sources/)]);
    } finally {
      fake.setModels(DEFAULT_FAKE_MODELS);
    }
  });

  it('runs no retrieval in a chat without knowledge', async () => {
    const before = (await api<{ byMode: Record<string, number>; queries: number }>(app.url, ADMIN_TOKEN, 'GET', '/search/analytics')).body;
    fake.script({ tokens: ['From', ' memory.'] });
    const chat = await newChat(app.url, false);
    const question = 'How often is the Skerryvore lighthouse lens polished, without knowledge?';
    const events = await ask(app.url, chat.id, question);
    expect(statuses(events).some((s) => s.includes('retrieve'))).toBe(false);
    const answer = finalMessage(events);
    expect(answer).toMatchObject({ status: 'complete', content: 'From memory.' });
    expect(answer.citations).toBeUndefined();
    const system = promptFor(question)[0]!.content;
    expect(system).not.toContain(CITE_INSTRUCTION);
    expect(system).not.toContain('Fresnel');
    // Search was not asked at all.
    const after = (await api<{ queries: number }>(app.url, ADMIN_TOKEN, 'GET', '/search/analytics')).body;
    expect(after.queries).toBe(before.queries);
  });
});

describe('answers with citations when search cannot be reached', () => {
  let redis2: TestRedis;
  let plain: TestApp;
  beforeAll(async () => {
    redis2 = await startTestRedis();
    // The conversation modules alone: search is known, and hosted nowhere.
    plain = await startChatApp(redis2.url, fake.url);
  }, 60_000);
  afterAll(async () => {
    await plain?.stop();
    await redis2?.stop();
  });

  it('still answers, with no citations and a warning', async () => {
    fake.script({ tokens: ['An answer', ' anyway.'] });
    const chat = await newChat(plain.url, true);
    const question = 'Does this answer without a search?';
    const events = await ask(plain.url, chat.id, question);
    expect(statuses(events)).toContain('retrieving:retrieve');
    const answer = finalMessage(events);
    expect(answer).toMatchObject({ status: 'complete', content: 'An answer anyway.' });
    expect(answer.citations).toBeUndefined();
    expect(answer.warnings).toHaveLength(1);
    expect(answer.warnings![0]).toMatch(/^Knowledge search failed, so this answer cites no sources/);
    expect(promptFor(question)[0]!.content).not.toContain(CITE_INSTRUCTION);
  });
});

describe('answers with citations when embeddings cannot be reached', () => {
  let redis3: TestRedis;
  let keywordOnly: TestApp;
  beforeAll(async () => {
    redis3 = await startTestRedis();
    // Search hosted, embeddings (and what only it needs) nowhere: hybrid search answers keyword-only.
    keywordOnly = await startChatApp(redis3.url, fake.url, { knowledge: true, env: { AUTOBOT_MODULES: `${CONVERSATION_MODULES},files,documents,knowledge,search` } });
  }, 60_000);
  afterAll(async () => {
    await keywordOnly?.stop();
    await redis3?.stop();
  });

  it('cites what keyword search found, without a warning (degraded search is no failure)', async () => {
    const fact = await api<{ id: string }>(keywordOnly.url, USER_TOKEN, 'POST', '/knowledge/facts', { content: 'The boiler room key hangs behind the reception desk' });
    expect(fact.status).toBe(201);
    const found = await eventually(() => api<{ items: { sourceId: string }[]; degraded?: true }>(keywordOnly.url, USER_TOKEN, 'POST', '/search/documents', { query: 'boiler key' }), (r) => r.body.items.length > 0);
    expect(found.body.degraded).toBe(true);
    fake.script({ tokens: ['Behind the reception desk [1].'] });
    const chat = await newChat(keywordOnly.url, true);
    const question = 'Where does the boiler room key hang?';
    const answer = finalMessage(await ask(keywordOnly.url, chat.id, question));
    expect(answer.status).toBe('complete');
    expect(answer.warnings).toBeUndefined();
    expect(answer.citations).toEqual([expect.objectContaining({ sourceType: 'fact', sourceId: fact.body.id })]);
    expect(promptFor(question)[0]!.content).toContain('[1] The boiler room key hangs behind the reception desk');
  });
});
