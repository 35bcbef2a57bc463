// The llm contract over both bindings, against a fake Ollama speaking the real wire protocol through
// the real `ollama` client: streaming with usage, tool calls, whole completions, model description,
// embeddings, listings, refusals (unknown model, bad input, prompt too large), a failure after the
// first token carrying the partial text, and a stop that closes the request to Ollama.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext } from '../../../src/kernel/context/request-context.js';
import { llmContract } from '../../../src/modules/llm/contract.js';
import type { TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { fakeEmbedding, startFakeOllama, type FakeOllama } from '../../support/fake-ollama.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { userActor } from '../../support/test-auth.js';
import { deltas, drain, refusal, startLlmApp } from './llm-app.js';

let redis: TestRedis;
let fake: FakeOllama;
let app: TestApp;

beforeAll(async () => {
  redis = await startTestRedis();
  fake = await startFakeOllama();
  app = await startLlmApp(redis.url, [fake.url]);
});
afterAll(async () => {
  await app?.stop();
  await fake?.close();
  await redis?.stop();
});

const hi = [{ role: 'user' as const, content: 'Say hello' }];

describe.each(bindingKinds)('llm contract (%s binding)', (kind) => {
  let llm: Port<typeof llmContract>;
  beforeAll(() => {
    llm = portFor(kind, app, llmContract);
  });
  beforeEach(() => {
    fake.script({});
    fake.failAll(null);
  });

  it('streams deltas, then done with the model, host and usage', async () => {
    fake.script({ tokens: ['Hel', 'lo', '!'], promptEvalCount: 12 });
    const { chunks, error } = await drain(llm.generate({ messages: hi }));
    expect(error).toBeUndefined();
    // Tokens written in one tick may arrive in one read, and then go on as one delta.
    expect(deltas(chunks).join('')).toBe('Hello!');
    expect(deltas(chunks).every((d) => d.length > 0)).toBe(true);
    const done = chunks.at(-1)!;
    expect(done).toMatchObject({
      type: 'done',
      model: 'mistral:7b-instruct',
      host: fake.url,
      doneReason: 'stop',
      usage: { promptTokens: 12, completionTokens: 3 },
    });
    const usage = (done as { usage: { timeToFirstTokenMs: number; durationMs: number } }).usage;
    expect(usage.durationMs).toBeGreaterThanOrEqual(usage.timeToFirstTokenMs);
    // The request Ollama saw: the default model, the messages as sent, streaming.
    expect(fake.chats().at(-1)!.body).toMatchObject({ model: 'mistral:7b-instruct', messages: [{ role: 'user', content: 'Say hello' }], stream: true });
  });

  it('passes on tokens that arrived together as one delta, and tokens that arrived apart as they came', async () => {
    fake.script({ tokens: ['one ', 'read ', 'only'], burst: true });
    const together = await drain(llm.generate({ messages: hi }));
    expect(deltas(together.chunks)).toEqual(['one read only']);
    expect(together.chunks.at(-1)).toMatchObject({ type: 'done', usage: { completionTokens: 3 } });
    fake.script({ tokens: ['one ', 'at ', 'a time'], tokenDelayMs: 80 });
    const apart = await drain(llm.generate({ messages: hi }));
    expect(deltas(apart.chunks)).toEqual(['one ', 'at ', 'a time']);
  });

  it('passes tools, tool results and options through, and streams the tool calls the model asks for', async () => {
    fake.script({ tokens: [''], toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] });
    const { chunks } = await drain(
      llm.generate({
        model: 'llama3.2',
        messages: [
          { role: 'user', content: 'Weather?' },
          { role: 'assistant', content: '', toolCalls: [{ name: 'get_time', arguments: {} }] },
          { role: 'tool', content: '12:00', toolName: 'get_time' },
        ],
        options: { temperature: 0.1 },
        tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      }),
    );
    expect(chunks).toContainEqual({ type: 'toolCalls', toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] });
    expect(chunks.at(-1)).toMatchObject({ type: 'done', model: 'llama3.2' });
    const body = fake.chats().at(-1)!.body!;
    expect(body.options).toMatchObject({ temperature: 0.1 });
    expect(body.tools).toHaveLength(1);
    expect(body.messages).toEqual([
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_time', arguments: {} } }] },
      { role: 'tool', content: '12:00', tool_name: 'get_time' },
    ]);
  });

  it('refuses tools for a model without the capability as invalid_input', async () => {
    const err = await refusal(
      drain(llm.generate({ model: 'gemma:2b', messages: hi, tools: [{ type: 'function', function: { name: 'x', parameters: {} } }] })).then((r) => {
        if (r.error) throw r.error;
        return r;
      }),
    );
    expect(err.code).toBe('invalid_input');
    expect(err.message).toContain('does not support tools');
  });

  it('answers an unknown model with invalid_input naming the models that exist', async () => {
    const { chunks, error } = await drain(llm.generate({ model: 'no-such-model:1b', messages: hi }));
    expect(chunks).toEqual([]);
    expect(error?.code).toBe('invalid_input');
    expect(error?.message).toContain('mistral:7b-instruct');
    expect(error?.message).toContain('llama3.2:latest');
    expect(error?.details).toEqual([{ path: 'model', message: expect.stringContaining('available') }]);
  });

  it('refuses bad input naming the field, before anything reaches Ollama', async () => {
    const before = fake.chats().length;
    const empty = await drain(llm.generate({ messages: [] }));
    expect(empty.error?.code).toBe('invalid_input');
    expect(empty.error?.details).toContainEqual(expect.objectContaining({ path: 'messages' }));
    const role = await drain(llm.generate({ messages: [{ role: 'robot' as 'user', content: 'x' }] }));
    expect(role.error?.code).toBe('invalid_input');
    expect(await refusal(llm.complete({ prompt: 'x', messages: hi }))).toMatchObject({ code: 'invalid_input' });
    expect(await refusal(llm.complete({}))).toMatchObject({ code: 'invalid_input' });
    expect(fake.chats().length).toBe(before);
  });

  it('completes a prompt at once, with usage', async () => {
    fake.script({ tokens: ['A short', ' title'] });
    const out = await llm.complete({ prompt: 'Name this chat' });
    expect(out).toMatchObject({ content: 'A short title', model: 'mistral:7b-instruct', host: fake.url, usage: { completionTokens: 2 } });
    expect(fake.chats().at(-1)!.body!.messages).toEqual([{ role: 'user', content: 'Name this chat' }]);
  });

  it('fails after the first token with what was produced, and never asks again', async () => {
    fake.script({ tokens: ['one ', 'two ', 'three'], failAfter: { tokens: 2, error: 'llama runner process has terminated' } });
    const before = fake.chats().length;
    const { chunks, error } = await drain(llm.generate({ messages: hi }));
    // Every piece of text that came before the failure is passed on, then the failure.
    expect(chunks.every((c) => c.type === 'delta')).toBe(true);
    expect(deltas(chunks).join('')).toBe('one two ');
    expect(error?.code).toBe('unavailable');
    expect(error?.details).toMatchObject({ partial: 'one two ' });
    expect(fake.chats().length).toBe(before + 1);
    // The same for a whole completion: the partial text is in the error.
    fake.script({ tokens: ['a', 'b', 'c'], failAfter: { tokens: 1, mode: 'drop' } });
    expect(await refusal(llm.complete({ prompt: 'x' }))).toMatchObject({ code: 'unavailable', details: { partial: 'a' } });
  });

  it('answers unavailable when the only host fails before the first token', async () => {
    fake.script({ failBefore: { status: 500, error: 'out of memory' } });
    const { chunks, error } = await drain(llm.generate({ messages: hi }));
    expect(chunks).toEqual([]);
    expect(error?.code).toBe('unavailable');
    expect(error?.message).toContain('out of memory');
  });

  it('stopping the stream closes the request to Ollama', async () => {
    fake.script({ tokens: Array.from({ length: 200 }, (_, i) => `t${i} `), tokenDelayMs: 20 });
    const it = llm.generate({ messages: hi })[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual({ type: 'delta', delta: 't0 ' });
    const pending = it.next();
    await it.return!();
    await pending.catch(() => undefined);
    const rec = await fake.waitForAbort(2_000);
    expect(rec.aborted).toBe(true);
    expect(rec.tokensSent).toBeLessThan(200);
  });

  it("aborting the caller's signal while waiting for the first token closes the request", async () => {
    fake.script({ hang: 'before' });
    const ac = new AbortController();
    const outcome = runWithContext({ requestId: 'stop-test', actor: userActor, signal: ac.signal }, () => drain(llm.generate({ messages: hi })));
    await fake.waitForRequests(fake.chats().length + 1, '/api/chat').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    const open = fake.chats().at(-1)!;
    expect(open.finished).toBe(false);
    ac.abort();
    const { error } = await outcome;
    expect(error?.details).toMatchObject({ cancelled: true });
    await expect.poll(() => open.aborted, { timeout: 2_000 }).toBe(true);
  });

  it('describes a model: context length and capabilities from /api/show, a fallback when it is missing', async () => {
    expect(await llm.describeModel({})).toEqual({ model: 'mistral:7b-instruct', contextLength: 32_768, capabilities: ['completion', 'tools'] });
    expect(await llm.describeModel({ model: 'nomic-embed-text' })).toMatchObject({ contextLength: 2_048, capabilities: ['embedding'] });
    expect((await refusal(llm.describeModel({ model: 'missing:7b' }))).code).toBe('invalid_input');
  });

  it('embeds with nomic-embed-text by default: 768 dimensions, deterministic', async () => {
    const one = await llm.embed({ input: 'the quick brown fox' });
    expect(one).toMatchObject({ model: 'nomic-embed-text', dimensions: 768 });
    expect(one.embeddings[0]).toEqual(fakeEmbedding('the quick brown fox', 768));
    const many = await llm.embed({ input: ['a', 'b', 'c'], model: 'nomic-embed-text:latest' });
    expect(many.embeddings).toHaveLength(3);
    expect(fake.requests.filter((r) => r.path === '/api/embed').at(-1)!.body).toMatchObject({ input: ['a', 'b', 'c'] });
    // A chat model cannot embed: Ollama's 400 is the caller's mistake.
    expect((await refusal(llm.embed({ input: 'x', model: 'gemma:2b' }))).code).toBe('invalid_input');
  });

  it('lists models per host, and providers with health, breaker and in-flight counts', async () => {
    const { items } = await llm.listModels({});
    expect(items).toContainEqual(expect.objectContaining({ id: 'mistral:7b-instruct', provider: 'ollama', host: fake.url, size: 4_113_301_824 }));
    expect(items.map((m) => m.id).sort()).toEqual(['gemma:2b', 'llama3.2:latest', 'mistral:7b-instruct', 'nomic-embed-text:latest']);
    const providers = await llm.listProviders({});
    expect(providers.items).toEqual([
      {
        id: 'ollama',
        status: 'up',
        hosts: [expect.objectContaining({ url: fake.url, status: 'up', breaker: 'closed', inFlight: 0, version: '0.9.0', loaded: expect.any(Array) })],
      },
    ]);
  });

  it('refuses listProviders to a signed-in user who is not an admin', async () => {
    const err = await refusal(runWithContext({ requestId: 'r', actor: userActor }, () => llm.listProviders({})));
    expect(err.code).toBe('forbidden');
  });
});
