// `llm` lifted into its own process: a child AutoBot hosts `llm` (and `config`), this process hosts
// the gateway and reaches `llm` over the HTTP binding. A stop must still reach Ollama: the REST client
// hanging up, a consumer's return(), or the caller's signal, each closes the request to the (fake)
// Ollama, which records when. The issue asks for that within 200 ms; the figures are printed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext } from '../../../src/kernel/context/request-context.js';
import { llmContract } from '../../../src/modules/llm/contract.js';
import { INTERNAL_TOKEN, type TestApp } from '../../support/app.js';
import { startFakeOllama, type FakeOllama, type RecordedRequest } from '../../support/fake-ollama.js';
import { freePort, spawnApp, type ChildApp } from '../../support/process.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { bearer, userActor, USER_TOKEN } from '../../support/test-auth.js';
import { deltas, drain, startLlmApp } from './llm-app.js';

let redis: TestRedis;
let fake: FakeOllama;
let child: ChildApp;
let app: TestApp;
let llm: Port<typeof llmContract>;
let dataDir: string;

beforeAll(async () => {
  redis = await startTestRedis();
  fake = await startFakeOllama();
  dataDir = mkdtempSync(path.join(tmpdir(), 'abllm-'));
  const port = await freePort();
  child = await spawnApp({
    PORT: String(port),
    REDIS_URL: redis.url,
    AUTOBOT_DATA_DIR: dataDir,
    AUTOBOT_INTERNAL_TOKEN: INTERNAL_TOKEN,
    AUTOBOT_MODULES: 'llm,config',
    OLLAMA_URL: fake.url,
  });
  app = await startLlmApp(redis.url, [fake.url], {
    AUTOBOT_MODULES: 'health',
    AUTOBOT_REMOTE_MODULES: `llm=${child.url},config=${child.url}`,
  });
  llm = app.runtime.port(llmContract);
}, 60_000);

afterAll(async () => {
  await app?.stop();
  if (child && child.child.exitCode === null) {
    child.child.kill('SIGTERM');
    await child.exited;
  }
  await fake?.close();
  await redis?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

beforeEach(() => fake.script({ tokens: Array.from({ length: 1_000 }, (_, i) => `w${i} `), tokenDelayMs: 25 }));

interface Stopped {
  /** The request to Ollama that the stop should close. */
  rec: RecordedRequest;
  stoppedAt: number;
}

/**
 * Runs `once` (start a generation, stop it) a warm-up time and then `n` times, and answers how long
 * each stop took to reach Ollama (the fake's record of the closed request), in milliseconds.
 */
async function stopLatencies(label: string, once: () => Promise<Stopped>, n = 3): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i <= n; i++) {
    const { rec, stoppedAt } = await once();
    await expect.poll(() => rec.aborted, { timeout: 3_000, interval: 2 }).toBe(true);
    if (i > 0) ms.push(rec.abortedAt! - stoppedAt);
  }
  process.stdout.write(`[llm lifted] ${label} → Ollama request closed in ${ms.join(', ')} ms\n`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The chat request the fake received after `seq`. */
async function chatAfter(seq: number): Promise<RecordedRequest> {
  await expect.poll(() => fake.chats().find((r) => r.seq > seq), { timeout: 3_000, interval: 2 }).toBeDefined();
  return fake.chats().find((r) => r.seq > seq)!;
}

describe('llm in another process', () => {
  it('is remote here, and streams a reply through the HTTP binding', async () => {
    const health = (await (await fetch(`${app.url}/api/v1/health`)).json()) as { modules: Record<string, { where: string }> };
    expect(health.modules.llm).toMatchObject({ where: 'remote' });
    fake.script({ tokens: ['lifted', ' reply'] });
    const { chunks } = await drain(llm.generate({ messages: [{ role: 'user', content: 'hi' }] }));
    expect(chunks.at(-1)).toMatchObject({ type: 'done', host: fake.url });
  });

  it('a REST client hanging up mid-stream closes the Ollama request within 200 ms', async () => {
    const ms = await stopLatencies('REST hang-up', async () => {
      const seq = fake.lastSeq();
      const ac = new AbortController();
      const res = await fetch(`${app.url}/api/v1/llm/completion`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(USER_TOKEN) },
        body: JSON.stringify({ prompt: 'go on', stream: true }),
        signal: ac.signal,
      });
      const reader = res.body!.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain('"delta"');
      const rec = await chatAfter(seq);
      const stoppedAt = Date.now();
      ac.abort();
      return { rec, stoppedAt };
    });
    expect(median(ms)).toBeLessThan(200);
  });

  it("a consumer's return() between tokens closes the Ollama request within 200 ms", async () => {
    const ms = await stopLatencies('return()', async () => {
      const seq = fake.lastSeq();
      const it = llm.generate({ messages: [{ role: 'user', content: 'hi' }] })[Symbol.asyncIterator]();
      await it.next();
      const rec = await chatAfter(seq);
      const pending = it.next();
      const stoppedAt = Date.now();
      await it.return!();
      await pending.catch(() => undefined);
      return { rec, stoppedAt };
    });
    expect(median(ms)).toBeLessThan(200);
  });

  it("the caller's signal closes the Ollama request within 200 ms, also before the first token", async () => {
    fake.script({ hang: 'before' });
    const ms = await stopLatencies('caller signal', async () => {
      const seq = fake.lastSeq();
      const ac = new AbortController();
      const outcome = runWithContext({ requestId: 'lifted-stop', actor: userActor, signal: ac.signal }, () =>
        drain(llm.generate({ messages: [{ role: 'user', content: 'hi' }] })),
      );
      const rec = await chatAfter(seq);
      const stoppedAt = Date.now();
      ac.abort();
      const { error } = await outcome;
      expect(error?.details).toMatchObject({ cancelled: true });
      return { rec, stoppedAt };
    });
    expect(median(ms)).toBeLessThan(200);
  });

  it('a failure after the first token carries the partial text across the wire', async () => {
    fake.script({ tokens: ['par', 'tial', '!'], failAfter: { tokens: 2, error: 'runner died' } });
    const { chunks, error } = await drain(llm.generate({ messages: [{ role: 'user', content: 'hi' }] }));
    expect(deltas(chunks).join('')).toBe('partial');
    expect(error).toMatchObject({ code: 'unavailable', details: { partial: 'partial', reason: 'http_5xx' } });
  });
});
