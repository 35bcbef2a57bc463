// The fake Ollama answers the real `ollama` client as Ollama would; if it drifted, every llm test
// would prove less. This file pins its wire behaviour through the client itself.
import { Ollama } from 'ollama';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fakeEmbedding, startFakeOllama, type FakeOllama } from './fake-ollama.js';

let fake: FakeOllama;
let client: Ollama;

beforeAll(async () => {
  fake = await startFakeOllama();
  client = new Ollama({ host: fake.url });
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.script({});
  fake.failAll(null);
});

describe('fake Ollama through the ollama client', () => {
  it('streams chat deltas and a final done object with counters', async () => {
    fake.script({ tokens: ['A', 'B', 'C'] });
    const parts = [];
    for await (const p of await client.chat({ model: 'mistral:7b-instruct', messages: [{ role: 'user', content: 'hi' }], stream: true })) parts.push(p);
    expect(parts.map((p) => p.message.content).join('')).toBe('ABC');
    const last = parts.at(-1)!;
    expect(last.done).toBe(true);
    expect(last.done_reason).toBe('stop');
    expect(last.eval_count).toBe(3);
    expect(last.prompt_eval_count).toBeGreaterThan(0);
    expect(last.eval_duration).toBeGreaterThan(0);
    expect(fake.chats().at(-1)!.finished).toBe(true);
  });

  it('answers a whole chat with stream: false, and tool calls in message.tool_calls', async () => {
    fake.script({ tokens: ['ok'], toolCalls: [{ name: 'get_time', arguments: { tz: 'UTC' } }] });
    const r = await client.chat({
      model: 'mistral:7b-instruct',
      messages: [{ role: 'user', content: 'time?' }],
      tools: [{ type: 'function', function: { name: 'get_time', description: 'time', parameters: { type: 'object', properties: {} } } }],
    });
    expect(r.message.content).toBe('ok');
    expect(r.message.tool_calls).toEqual([{ function: { name: 'get_time', arguments: { tz: 'UTC' } } }]);
    expect(fake.chats().at(-1)!.body?.tools).toHaveLength(1);
    // Without tools in the request, as Ollama, no tool calls: the reply is text only.
    const streamed = await client.chat({ model: 'mistral:7b-instruct', messages: [{ role: 'user', content: 'time?' }], stream: true });
    const parts = [];
    for await (const part of streamed) parts.push(part);
    expect(parts.map((p) => p.message.content).join('')).toBe('ok');
    expect(parts.some((p) => p.message.tool_calls?.length)).toBe(false);
  });

  it('refuses tools for a model without the capability, and unknown models with 404', async () => {
    await expect(
      client.chat({ model: 'gemma:2b', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'a', description: '', parameters: { type: 'object', properties: {} } } }] }),
    ).rejects.toMatchObject({ status_code: 400, error: expect.stringContaining('does not support tools') });
    await expect(client.chat({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      status_code: 404,
      error: expect.stringContaining('not found'),
    });
  });

  it('streams /api/generate', async () => {
    fake.script({ tokens: ['x', 'y'] });
    let text = '';
    for await (const p of await client.generate({ model: 'mistral:7b-instruct', prompt: 'p', stream: true })) text += p.response;
    expect(text).toBe('xy');
  });

  it('embeds deterministically with 768 dimensions for nomic-embed-text, closer for texts sharing words', async () => {
    const r = await client.embed({ model: 'nomic-embed-text', input: ['red apple pie', 'red apple', 'quantum flux'] });
    expect(r.embeddings).toHaveLength(3);
    expect(r.embeddings[0]).toHaveLength(768);
    expect(r.embeddings[0]).toEqual(fakeEmbedding('red apple pie', 768));
    const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);
    expect(dot(r.embeddings[0]!, r.embeddings[1]!)).toBeGreaterThan(dot(r.embeddings[0]!, r.embeddings[2]!));
  });

  it('lists tags, running models, version, and shows capabilities and context length', async () => {
    fake.setLoaded(['llama3.2']);
    const tags = await client.list();
    expect(tags.models.map((m) => m.name)).toContain('mistral:7b-instruct');
    expect((await client.ps()).models.map((m) => m.name)).toEqual(['llama3.2:latest']);
    expect((await client.version()).version).toMatch(/^\d+\.\d+\.\d+$/);
    const show = await client.show({ model: 'mistral:7b-instruct' });
    expect(show.capabilities).toContain('tools');
    // The client types model_info as a Map, but on the wire (and at run time) it is a plain object.
    expect((show.model_info as unknown as Record<string, unknown>)['llama.context_length']).toBe(32_768);
  });

  it('fails before the first token with an HTTP error, and after it with an error line', async () => {
    fake.scriptNext({ failBefore: { status: 500, error: 'llama runner crashed' } });
    await expect(client.chat({ model: 'mistral:7b-instruct', messages: [{ role: 'user', content: 'x' }], stream: true })).rejects.toMatchObject({ status_code: 500 });
    fake.scriptNext({ tokens: ['a', 'b', 'c'], failAfter: { tokens: 2, error: 'out of memory' } });
    let text = '';
    await expect(
      (async () => {
        for await (const p of await client.chat({ model: 'mistral:7b-instruct', messages: [{ role: 'user', content: 'x' }], stream: true })) text += p.message.content;
      })(),
    ).rejects.toThrow('out of memory');
    expect(text).toBe('ab');
  });

  it('records that the client aborted a stream', async () => {
    fake.script({ tokens: Array.from({ length: 100 }, () => 't'), tokenDelayMs: 20 });
    const it = await client.chat({ model: 'mistral:7b-instruct', messages: [{ role: 'user', content: 'x' }], stream: true });
    for await (const _ of it) {
      it.abort();
      break;
    }
    const rec = await fake.waitForAbort(2_000);
    expect(rec.aborted).toBe(true);
    expect(rec.tokensSent).toBeLessThan(100);
  });

  it('answers every endpoint with a scripted error, Ollama-shaped', async () => {
    fake.failAll({ status: 503, error: 'server busy' });
    await expect(client.list()).rejects.toMatchObject({ status_code: 503, error: 'server busy' });
  });
});
