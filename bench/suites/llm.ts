// What the llm module adds on top of Ollama: time to first token and per-token relay of a 50-token
// reply from the fake Ollama (all tokens at once), through the `llm` port in process, through its HTTP
// binding (llm lifted into a second server), and through REST NDJSON, against the `ollama` client
// talking to the same fake directly. Rounds alternate so machine drift hits every path alike.
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import { startServer, type RunningServer } from '../../src/app/server.js';
import { loadConfig } from '../../src/kernel/config/app-config.js';
import { createLogger } from '../../src/kernel/log/logger.js';
import { configModule } from '../../src/modules/config/module.js';
import { healthModule } from '../../src/modules/health/module.js';
import { llmContract } from '../../src/modules/llm/contract.js';
import { llmModule } from '../../src/modules/llm/module.js';
import { startFakeOllama } from '../../tests/support/fake-ollama.js';
import { startTestRedis } from '../../tests/support/redis.js';
import { testAuthenticator, USER_TOKEN } from '../../tests/support/test-auth.js';
import { fmt, percentile, rows } from '../lib.js';

const TOKEN = 'bench-internal-token-0123456789';
const ROUNDS = 200;
const TOKENS = 50;
const messages = [{ role: 'user' as const, content: 'Tell me something' }];

interface Sample {
  ttft: number;
  total: number;
}

async function timeStream(start: () => AsyncIterable<unknown>): Promise<Sample> {
  const t0 = performance.now();
  let ttft = -1;
  for await (const _ of start()) if (ttft < 0) ttft = performance.now() - t0;
  return { ttft, total: performance.now() - t0 };
}

/** NDJSON lines of a fetch body, as an async iterable (first line = first token). */
async function* ndjson(res: Response): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(part, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
}

export async function run(): Promise<void> {
  const fake = await startFakeOllama({ script: { tokens: Array.from({ length: TOKENS }, (_, i) => `tok${i} `) } });
  const dirs = [mkdtempSync(path.join(tmpdir(), 'abbl-')), mkdtempSync(path.join(tmpdir(), 'abbl-'))];
  const limits = JSON.stringify({ default: { points: 10_000_000, durationS: 60 }, expensive: { points: 10_000_000, durationS: 60 } });
  const servers: RunningServer[] = [];
  const redis = await startTestRedis();
  try {
    const host = await startServer({
      config: loadConfig({ PORT: '0', AUTOBOT_DATA_DIR: dirs[0]!, LOG_LEVEL: 'silent', AUTOBOT_INTERNAL_TOKEN: TOKEN, REDIS_URL: redis.url, OLLAMA_URL: fake.url, AUTOBOT_RATE_LIMITS: limits }),
      catalogue: [configModule, healthModule, llmModule],
      logger: createLogger('silent'),
      authenticate: testAuthenticator,
    });
    servers.push(host);
    // A second server reaching `llm` (and `config`) on the first one over HTTP, sharing its Redis.
    const lifted = await startServer({
      config: loadConfig({
        PORT: '0',
        AUTOBOT_DATA_DIR: dirs[1]!,
        LOG_LEVEL: 'silent',
        AUTOBOT_INTERNAL_TOKEN: TOKEN,
        REDIS_URL: redis.url,
        AUTOBOT_MODULES: 'health',
        AUTOBOT_REMOTE_MODULES: `llm=${host.url},config=${host.url}`,
        OLLAMA_URL: fake.url,
      }),
      catalogue: [configModule, healthModule, llmModule],
      logger: createLogger('silent'),
      authenticate: testAuthenticator,
    });
    servers.push(lifted);

    const client = new Ollama({ host: fake.url });
    const local = host.runtime.port(llmContract);
    const remote = lifted.runtime.port(llmContract);
    const paths: Record<string, () => Promise<Sample>> = {
      direct: () =>
        timeStream(async function* () {
          for await (const part of await client.chat({ model: 'mistral:7b-instruct', messages, stream: true })) if (part.message.content || part.done) yield part;
        }),
      local: () => timeStream(() => local.generate({ messages })),
      lifted: () => timeStream(() => remote.generate({ messages })),
      rest: () =>
        timeStream(async function* () {
          const res = await fetch(`${host.url}/api/v1/llm/completion`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${USER_TOKEN}` },
            body: JSON.stringify({ messages, stream: true }),
          });
          yield* ndjson(res);
        }),
    };
    const samples: Record<string, Sample[]> = Object.fromEntries(Object.keys(paths).map((k) => [k, []]));
    for (let i = 0; i < 20; i++) for (const p of Object.values(paths)) await p(); // warm-up
    for (let i = 0; i < ROUNDS; i++) for (const [k, p] of Object.entries(paths)) samples[k]!.push(await p());

    const p50 = (k: string, f: (s: Sample) => number) => percentile(samples[k]!.map(f), 50);
    const baseTtft = p50('direct', (s) => s.ttft);
    const baseRelay = p50('direct', (s) => (s.total - s.ttft) / (TOKENS - 1));
    for (const [k, label] of [
      ['local', 'llm.generate in process'],
      ['lifted', 'llm.generate, llm lifted (HTTP binding)'],
      ['rest', 'POST /api/v1/llm/completion stream: true (REST NDJSON)'],
    ] as const) {
      const ttft = p50(k, (s) => s.ttft);
      const relay = p50(k, (s) => (s.total - s.ttft) / (TOKENS - 1));
      rows.push({
        name: `${label}: time to first token, p50 of ${ROUNDS} (ms; added over the ollama client alone)`,
        autobot: fmt(ttft, 2),
        baseline: `${fmt(baseTtft, 2)} (ollama client → fake Ollama)`,
        ratio: `+${fmt(ttft - baseTtft, 2)} ms`,
        target: 'added ≤ 15 ms (the chat turn\'s budget, of which llm is a part)',
        met: ttft - baseTtft <= 15,
      });
      rows.push({
        name: `${label}: per-token relay after the first, p50 (ms per token, ${TOKENS}-token reply sent at once)`,
        autobot: fmt(relay, 3),
        baseline: `${fmt(baseRelay, 3)} (ollama client)`,
        ratio: `+${fmt(relay - baseRelay, 3)} ms`,
        target: 'added ≤ 2 ms per token (the chat relay budget)',
        met: relay - baseRelay <= 2,
      });
    }
  } finally {
    for (const s of servers.reverse()) await s.stop();
    await fake.close();
    await redis.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
