// Routing over several Ollama hosts (fake ones, real HTTP, the real `ollama` client): least busy first,
// loaded model preferred on a tie, hosts without the model skipped; failover before the first token
// (connection refused, 5xx, first-token timeout), never after it; the circuit breaker; "no host" at
// once; metrics. The service runs through its local binding, without Redis: settings come from a stub.
import { afterEach, describe, expect, it } from 'vitest';
import type { AppConfig } from '../../../src/kernel/config/app-config.js';
import type { Port } from '../../../src/kernel/contract/define.js';
import { createLogger } from '../../../src/kernel/log/logger.js';
import { Metrics } from '../../../src/kernel/metrics/metrics.js';
import { createLocalBinding } from '../../../src/kernel/transport/local-binding.js';
import type { configContract } from '../../../src/modules/config/contract.js';
import { llmContract } from '../../../src/modules/llm/contract.js';
import { LlmService } from '../../../src/modules/llm/service.js';
import { DEFAULT_FAKE_MODELS, startFakeOllama, type FakeOllama } from '../../support/fake-ollama.js';
import { deltas, drain, refusal } from './llm-app.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fakes(n: number, opts: Parameters<typeof startFakeOllama>[0] = {}): Promise<FakeOllama[]> {
  const list = await Promise.all(Array.from({ length: n }, () => startFakeOllama(opts)));
  cleanups.push(() => Promise.all(list.map((f) => f.close())).then(() => undefined));
  return list;
}

async function service(urls: string[], settings: Record<string, unknown> = {}) {
  const metrics = new Metrics({ defaultMetrics: false });
  const configPort = { getModuleSettings: async () => ({ version: 1, settings }) } as unknown as Port<typeof configContract>;
  const svc = new LlmService(createLogger('silent'), metrics, { OLLAMA_URL: urls } as AppConfig, configPort);
  await svc.settings.reload();
  await svc.pool.start();
  cleanups.push(() => svc.close());
  const llm = createLocalBinding(llmContract, svc);
  return { svc, llm, metrics };
}

const hi = [{ role: 'user' as const, content: 'hi' }];

/** Which fake served each of the last requests. */
const served = (hosts: FakeOllama[]) => hosts.map((h) => h.chats().length);

describe('routing', () => {
  it('sends each request to the host with the fewest in flight', async () => {
    const hosts = await fakes(2, { script: { tokens: ['x'], firstTokenDelayMs: 150 } });
    const { llm } = await service(hosts.map((h) => h.url));
    const first = drain(llm.generate({ messages: hi }));
    await expect.poll(() => hosts[0]!.chats().length + hosts[1]!.chats().length).toBe(1);
    const second = drain(llm.generate({ messages: hi }));
    await Promise.all([first, second]);
    expect(served(hosts)).toEqual([1, 1]);
  });

  it('prefers a host where the model is already loaded when both are as busy', async () => {
    const hosts = await fakes(2);
    hosts[1]!.setLoaded(['mistral:7b-instruct']);
    const { llm } = await service(hosts.map((h) => h.url));
    for (let i = 0; i < 3; i++) {
      const { chunks } = await drain(llm.generate({ messages: hi }));
      expect(chunks.at(-1)).toMatchObject({ type: 'done', host: hosts[1]!.url });
    }
    expect(served(hosts)).toEqual([0, 3]);
  });

  it('skips hosts that do not have the model', async () => {
    const hosts = await fakes(2);
    hosts[0]!.setModels(DEFAULT_FAKE_MODELS.filter((m) => m.name !== 'gemma:2b'));
    const { llm } = await service(hosts.map((h) => h.url));
    for (let i = 0; i < 3; i++) await drain(llm.generate({ model: 'gemma:2b', messages: hi }));
    expect(served(hosts)).toEqual([0, 3]);
  });

  it('finds a model pulled after the last probe without waiting for the next one', async () => {
    const [host] = await fakes(1, { models: DEFAULT_FAKE_MODELS.filter((m) => m.name !== 'gemma:2b') });
    const { llm } = await service([host!.url], { probeIntervalMs: 600_000 });
    host!.setModels(DEFAULT_FAKE_MODELS);
    const { chunks } = await drain(llm.generate({ model: 'gemma:2b', messages: hi }));
    expect(chunks.at(-1)).toMatchObject({ type: 'done', model: 'gemma:2b' });
  });
});

describe('probes', () => {
  it('mark a host down when it stops answering and up again when it is back, with what it has loaded', async () => {
    const hosts = await fakes(2);
    const { llm, svc } = await service(hosts.map((h) => h.url), { probeIntervalMs: 200 });
    await hosts[0]!.stop();
    await expect.poll(() => svc.pool.hosts[0]!.status, { timeout: 3_000 }).toBe('down');
    const provider = (await llm.listProviders({})).items[0]!;
    expect(provider.status).toBe('degraded');
    expect(provider.hosts[0]).toMatchObject({ status: 'down', lastError: expect.any(String) });
    expect((await llm.listModels({})).items.every((m) => m.host === hosts[1]!.url)).toBe(true);
    hosts[0]!.setLoaded(['gemma:2b']);
    await hosts[0]!.start();
    await expect.poll(() => svc.pool.hosts[0]!.status, { timeout: 3_000 }).toBe('up');
    expect((await llm.listModels({})).items).toContainEqual(expect.objectContaining({ id: 'gemma:2b', host: hosts[0]!.url, loaded: true }));
  });
});

describe('failover before the first token', () => {
  it('moves on after a connection error', async () => {
    const hosts = await fakes(2);
    const { llm } = await service(hosts.map((h) => h.url));
    // Both probed up; then the first one goes away. Routing order is round-robin on ties, so stop
    // whichever would be tried first: try both ways and check every request succeeds elsewhere.
    await hosts[0]!.stop();
    for (let i = 0; i < 4; i++) {
      const { chunks, error } = await drain(llm.generate({ messages: hi }));
      expect(error).toBeUndefined();
      expect(chunks.at(-1)).toMatchObject({ type: 'done', host: hosts[1]!.url });
    }
  });

  it('moves on after a 5xx', async () => {
    const hosts = await fakes(2);
    const { llm, metrics } = await service(hosts.map((h) => h.url));
    hosts[0]!.script({ failBefore: { status: 500, error: 'llama runner crashed' } });
    // Ties rotate, so within two requests host 0 is tried first at least once.
    for (let i = 0; i < 2; i++) {
      const r = await drain(llm.generate({ messages: hi }));
      expect(r.chunks.at(-1)).toMatchObject({ type: 'done', host: hosts[1]!.url });
    }
    expect(hosts[0]!.chats().length).toBeGreaterThanOrEqual(1);
    expect(await metrics.registry.metrics()).toMatch(/autobot_llm_errors_total\{host="[^"]+",reason="http_5xx"\} [1-9]/);
  });

  it('moves on after a first-token timeout, closing the request it gave up on', async () => {
    const hosts = await fakes(2);
    const { llm, metrics } = await service(hosts.map((h) => h.url), { firstTokenTimeoutMs: 150 });
    hosts[0]!.script({ hang: 'before' });
    for (let i = 0; i < 2; i++) {
      const r = await drain(llm.generate({ messages: hi }));
      expect(r.chunks.at(-1)).toMatchObject({ type: 'done', host: hosts[1]!.url });
    }
    expect(hosts[0]!.chats().length).toBeGreaterThanOrEqual(1);
    await expect.poll(() => hosts[0]!.aborted().length).toBe(hosts[0]!.chats().length);
    expect(await metrics.registry.metrics()).toMatch(/autobot_llm_errors_total\{host="[^"]+",reason="first_token_timeout"\} [1-9]/);
  });

  it('fails with timeout when every host misses the first-token deadline', async () => {
    const hosts = await fakes(2, { script: { hang: 'before' } });
    const { llm } = await service(hosts.map((h) => h.url), { firstTokenTimeoutMs: 100 });
    const { chunks, error } = await drain(llm.generate({ messages: hi }));
    expect(chunks).toEqual([]);
    expect(error?.code).toBe('timeout');
    expect(served(hosts)).toEqual([1, 1]);
  });

  it('never retries after the first token: the reply fails with its partial text', async () => {
    const hosts = await fakes(2, { script: { tokens: ['a', 'b', 'c'], failAfter: { tokens: 2, mode: 'drop' } } });
    const { llm, svc } = await service(hosts.map((h) => h.url));
    const { chunks, error } = await drain(llm.generate({ messages: hi }));
    expect(deltas(chunks).join('')).toBe('ab');
    expect(chunks.every((c) => c.type === 'delta')).toBe(true);
    expect(error).toMatchObject({ code: 'unavailable', details: { partial: 'ab', reason: 'connection' } });
    expect(served(hosts).reduce((a, b) => a + b)).toBe(1);
    for (const h of svc.pool.hosts) expect(h.client.streamsHeld()).toBe(0);
  });
});

describe('no host, unknown model, breaker', () => {
  it('answers unavailable at once when no host can be reached', async () => {
    const hosts = await fakes(2);
    await Promise.all(hosts.map((h) => h.stop()));
    const { llm } = await service(hosts.map((h) => h.url));
    const started = Date.now();
    const { error } = await drain(llm.generate({ messages: hi }));
    expect(error?.code).toBe('unavailable');
    expect(error?.message).toContain('no Ollama host is reachable');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await refusal(llm.embed({ input: 'x' }))).code).toBe('unavailable');
  });

  it('answers unavailable, not unknown model, when only a down host has the model', async () => {
    const hosts = await fakes(2);
    hosts[1]!.setModels(DEFAULT_FAKE_MODELS.filter((m) => m.name !== 'gemma:2b'));
    const { llm, svc } = await service(hosts.map((h) => h.url), { probeIntervalMs: 600_000 });
    await hosts[0]!.stop();
    await svc.pool.probeAll();
    const { error } = await drain(llm.generate({ model: 'gemma:2b', messages: hi }));
    expect(error?.code).toBe('unavailable');
    const unknown = await drain(llm.generate({ model: 'nope:1b', messages: hi }));
    expect(unknown.error?.code).toBe('invalid_input');
    expect(unknown.error?.message).not.toContain('gemma:2b');
  });

  it('opens a host breaker after repeated failures: the host gets no requests until it resets', async () => {
    const hosts = await fakes(2);
    const { llm, svc } = await service(hosts.map((h) => h.url), { breakerFailures: 2, breakerResetMs: 60_000 });
    hosts[0]!.script({ failBefore: { status: 503, error: 'busy' } });
    for (let i = 0; i < 6; i++) {
      const r = await drain(llm.generate({ messages: hi }));
      expect(r.chunks.at(-1)).toMatchObject({ type: 'done', host: hosts[1]!.url });
    }
    const failedOn0 = hosts[0]!.chats().length;
    expect(failedOn0).toBeGreaterThanOrEqual(2);
    const provider = (await llm.listProviders({})).items[0]!;
    expect(provider.hosts.find((h) => h.url === hosts[0]!.url)).toMatchObject({ breaker: 'open' });
    for (let i = 0; i < 4; i++) await drain(llm.generate({ messages: hi }));
    expect(hosts[0]!.chats().length).toBe(failedOn0);
    expect(svc.pool.hosts[0]!.breakerState()).toBe('open');
  });

  it('an unknown model and a caller mistake do not count against the host', async () => {
    const [host] = await fakes(1);
    const { llm, svc } = await service([host!.url], { breakerFailures: 1 });
    for (let i = 0; i < 3; i++) {
      await drain(llm.generate({ model: 'gemma:2b', messages: hi, tools: [{ type: 'function', function: { name: 't' } }] }));
    }
    expect(svc.pool.hosts[0]!.breakerState()).toBe('closed');
    const r = await drain(llm.generate({ messages: hi }));
    expect(r.error).toBeUndefined();
  });
});

describe('metrics and in-flight counts', () => {
  it('records time to first token, tokens per second, duration and in-flight per host', async () => {
    const [host] = await fakes(1, { script: { tokens: ['a', 'b', 'c'], tokenDelayMs: 5 } });
    const { llm, metrics, svc } = await service([host!.url]);
    const it = llm.generate({ messages: hi })[Symbol.asyncIterator]();
    await it.next();
    expect(svc.pool.hosts[0]!.inFlight).toBe(1);
    expect(await metrics.registry.metrics()).toMatch(new RegExp(`autobot_llm_in_flight\\{host="${host!.url}"\\} 1`));
    for (let r = await it.next(); !r.done; r = await it.next());
    expect(svc.pool.hosts[0]!.inFlight).toBe(0);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/autobot_llm_time_to_first_token_seconds_count\{host="[^"]+",model="mistral:7b-instruct"\} 1/);
    expect(text).toMatch(/autobot_llm_tokens_per_second_count\{host="[^"]+",model="mistral:7b-instruct"\} 1/);
    expect(text).toMatch(/autobot_llm_generation_duration_seconds_count\{host="[^"]+",model="mistral:7b-instruct",outcome="ok"\} 1/);
    expect(text).toMatch(new RegExp(`autobot_llm_in_flight\\{host="${host!.url}"\\} 0`));
  });

  it('counts a stopped generation as stopped and releases its host', async () => {
    const [host] = await fakes(1, { script: { tokens: Array.from({ length: 100 }, () => 'x'), tokenDelayMs: 10 } });
    const { llm, metrics, svc } = await service([host!.url]);
    const it = llm.generate({ messages: hi })[Symbol.asyncIterator]();
    await it.next();
    await it.return!();
    await host!.waitForAbort(2_000);
    await expect.poll(() => svc.pool.hosts[0]!.inFlight).toBe(0);
    await expect.poll(async () => metrics.registry.metrics()).toMatch(/autobot_llm_generation_duration_seconds_count\{[^}]*outcome="stopped"\} 1/);
    // The client does not keep the stopped stream (it would hold every stopped reply of the server's life).
    expect(svc.pool.hosts[0]!.client.streamsHeld()).toBe(0);
  });
});
