// The llm REST surface as a frontend or script sees it: POST /llm/completion as JSON and, with
// `stream: true`, as NDJSON on the same path; /llm/embedding; /llm/models; /llm/providers for admins;
// the error envelope for bad input, unknown models and an unreachable Ollama; a client that hangs up
// mid-stream closes the request to Ollama.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TestApp } from '../../support/app.js';
import { startFakeOllama, type FakeOllama } from '../../support/fake-ollama.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, bearer, USER_TOKEN } from '../../support/test-auth.js';
import { startLlmApp } from './llm-app.js';

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
beforeEach(() => fake.script({}));

const api = (path: string) => `${app.url}/api/v1${path}`;
const post = (path: string, body: unknown, token = USER_TOKEN, signal?: AbortSignal) =>
  fetch(api(path), { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(token) }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });

describe('POST /llm/completion', () => {
  it('answers one JSON completion', async () => {
    fake.script({ tokens: ['Bonjour', ' !'] });
    const res = await post('/llm/completion', { prompt: 'Say hello in French' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(await res.json()).toMatchObject({ content: 'Bonjour !', model: 'mistral:7b-instruct', usage: { completionTokens: 2 } });
  });

  it('streams NDJSON with stream: true: {delta} lines, then {done: true, usage}', async () => {
    fake.script({ tokens: ['a', 'b', 'c'] });
    const res = await post('/llm/completion', { messages: [{ role: 'user', content: 'abc' }], model: 'llama3.2', stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    // Tokens that reached AutoBot in one read are one {delta} line.
    const text = lines.slice(0, -1).map((l) => l.delta as string);
    expect(text.join('')).toBe('abc');
    expect(text.every((t) => t.length > 0)).toBe(true);
    expect(lines.at(-1)).toMatchObject({ done: true, model: 'llama3.2', usage: { completionTokens: 3 } });
    // `stream` is the route's switch, not something Ollama gets as an option.
    expect(fake.chats().at(-1)!.body).toMatchObject({ model: 'llama3.2', stream: true });
  });

  it('answers 400 invalid_input naming the field, and the models that exist for an unknown one', async () => {
    const bad = await post('/llm/completion', { messages: [{ role: 'user' }] });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: { code: string; details: { path: string }[] } };
    expect(body.error.code).toBe('invalid_input');
    expect(body.error.details.map((d) => d.path)).toContain('messages.0.content');
    const unknown = await post('/llm/completion', { prompt: 'x', model: 'gpt-9', stream: true });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { message: string } }).error.message).toContain('mistral:7b-instruct');
  });

  it('needs a signed-in user', async () => {
    const res = await fetch(api('/llm/completion'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt":"x"}' });
    expect(res.status).toBe(401);
  });

  it('a client hanging up mid-stream closes the request to Ollama', async () => {
    fake.script({ tokens: Array.from({ length: 500 }, () => 'x'), tokenDelayMs: 10 });
    const ac = new AbortController();
    const res = await post('/llm/completion', { prompt: 'long', stream: true }, USER_TOKEN, ac.signal);
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    const rec = await fake.waitForAbort(2_000);
    expect(rec.tokensSent).toBeLessThan(500);
  });
});

describe('hang-ups', () => {
  it('a client hanging up on a JSON completion also closes the request to Ollama', async () => {
    fake.script({ tokens: Array.from({ length: 500 }, () => 'x'), tokenDelayMs: 10 });
    const seq = fake.lastSeq();
    const ac = new AbortController();
    const call = post('/llm/completion', { prompt: 'long' }, USER_TOKEN, ac.signal).catch(() => undefined);
    await expect.poll(() => fake.chats().find((r) => r.seq > seq)?.tokensSent ?? 0).toBeGreaterThan(0);
    ac.abort();
    await call;
    const rec = await fake.waitForAbort(2_000, seq);
    expect(rec.tokensSent).toBeLessThan(500);
  });
});

describe('other routes', () => {
  it('OpenAPI lists every llm route, the completion with its NDJSON alternative and its stream switch', async () => {
    const doc = (await (await fetch(api('/openapi.json'))).json()) as { paths: Record<string, Record<string, any>> }; // eslint-disable-line @typescript-eslint/no-explicit-any -- a JSON document walked in a test
    for (const p of ['/api/v1/llm/completion', '/api/v1/llm/embedding', '/api/v1/llm/models', '/api/v1/llm/providers']) expect(doc.paths[p]).toBeDefined();
    const completion = doc.paths['/api/v1/llm/completion']!.post;
    expect(Object.keys(completion.responses['200'].content)).toEqual(['application/json', 'application/x-ndjson']);
    expect(completion.requestBody.content['application/json'].schema.properties).toHaveProperty('stream');
  });

  it('POST /llm/embedding answers like /embeddings/generate', async () => {
    const res = await post('/llm/embedding', { input: ['one', 'two'] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { model: string; dimensions: number; embeddings: number[][] };
    expect(body.model).toBe('nomic-embed-text');
    expect(body.dimensions).toBe(768);
    expect(body.embeddings).toHaveLength(2);
  });

  it('GET /llm/models lists models with their host', async () => {
    const res = await fetch(api('/llm/models'), { headers: bearer(USER_TOKEN) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { items: { id: string; provider: string; host: string }[] };
    expect(body.items).toContainEqual(expect.objectContaining({ id: 'mistral:7b-instruct', provider: 'ollama', host: fake.url }));
  });

  it('GET /llm/providers is for admins', async () => {
    expect((await fetch(api('/llm/providers'), { headers: bearer(USER_TOKEN) })).status).toBe(403);
    const res = await fetch(api('/llm/providers'), { headers: bearer(ADMIN_TOKEN) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ items: [{ id: 'ollama', status: 'up', hosts: [{ url: fake.url, breaker: 'closed' }] }] });
  });
});

describe('settings', () => {
  it('a changed llm.defaultModel takes effect without a restart; a bad value is refused naming the field', async () => {
    const patch = (body: unknown) =>
      fetch(api('/config'), { method: 'PATCH', headers: { 'content-type': 'application/json', ...bearer(ADMIN_TOKEN) }, body: JSON.stringify(body) });
    const bad = await patch({ llm: { firstTokenTimeoutMs: 5 } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toContain('firstTokenTimeoutMs');
    expect((await patch({ llm: { defaultModel: 'llama3.2:latest' } })).status).toBe(200);
    try {
      await expect
        .poll(async () => ((await (await post('/llm/completion', { prompt: 'which model?' })).json()) as { model: string }).model, { timeout: 5_000 })
        .toBe('llama3.2:latest');
    } finally {
      await patch({ llm: { defaultModel: null } });
    }
  });
});

describe('Ollama unreachable', () => {
  it('answers 503 unavailable at once', async () => {
    const dead = await startFakeOllama();
    await dead.stop();
    const other = await startLlmApp(redis.url, [dead.url]);
    try {
      const started = Date.now();
      const res = await fetch(`${other.url}/api/v1/llm/completion`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(USER_TOKEN) },
        body: JSON.stringify({ prompt: 'anyone?' }),
      });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unavailable');
      expect(Date.now() - started).toBeLessThan(5_000);
      const health = (await (await fetch(`${other.url}/api/v1/health`)).json()) as { modules: Record<string, { status: string; detail?: string }> };
      expect(health.modules.llm).toMatchObject({ status: 'degraded', detail: expect.stringContaining('0 of 1 Ollama hosts up') });
    } finally {
      await other.stop();
    }
  });
});
