// Document ingestion end to end: 1,000 Markdown files of about 5 KB uploaded through the REST API
// (multipart, 20 files a request, 4 requests at a time) into an AutoBot hosting config, files,
// documents and embeddings (built-in embedder), timed from the first upload until the last document is
// `indexed` (counted from the `document:progress` pushes). Baseline, in the same run: the same parse +
// chunk + embed of the same files in one plain loop, no API, no jobs, no storage.
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { io as connect } from 'socket.io-client';
import { startServer } from '../../src/app/server.js';
import { loadConfig } from '../../src/kernel/config/app-config.js';
import { createLogger } from '../../src/kernel/log/logger.js';
import { EmbeddedRedis } from '../../src/kernel/redis/embedded-redis.js';
import { configModule } from '../../src/modules/config/module.js';
import { filesModule } from '../../src/modules/files/module.js';
import { documentsModule } from '../../src/modules/documents/module.js';
import { embeddingsModule } from '../../src/modules/embeddings/module.js';
import { acceleratorModule } from '../../src/modules/accelerator/module.js';
import { llmModule } from '../../src/modules/llm/module.js';
import { browserModule } from '../../src/modules/browser/module.js';
import { markdownBlocks } from '../../src/modules/documents/blocks.js';
import { chunkBlocks } from '../../src/modules/documents/chunker.js';
import { documentsSettings } from '../../src/modules/documents/contract.js';
import { builtinEmbed } from '../../src/modules/embeddings/builtin-embedder.js';
import { markdownFixture } from '../../tests/support/fixtures/documents.js';
import { testAuthenticator, USER_TOKEN } from '../../tests/support/test-auth.js';
import { fmt, rows } from '../lib.js';

const DOCS = Number(process.env.INGESTION_DOCS ?? 1000);
const PER_REQUEST = 20;
const PARALLEL_REQUESTS = 4;
const TARGET = 50;

/** Redis commands the server has run so far, by command (INFO commandstats). */
async function commandCounts(url: string): Promise<Map<string, number>> {
  const r = new Redis(url);
  try {
    const out = new Map<string, number>();
    for (const m of (await r.info('commandstats')).matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) out.set(m[1]!, Number(m[2]));
    return out;
  } finally {
    r.disconnect();
  }
}

function baseline(files: string[]): number {
  const { chunkSize, chunkOverlap } = documentsSettings.parse({});
  const started = performance.now();
  let vectors = 0;
  for (const text of files) {
    const chunks = chunkBlocks(markdownBlocks(text), { size: chunkSize, overlap: chunkOverlap });
    for (const c of chunks) {
      builtinEmbed(c.headingPath.length ? `${c.headingPath.join(' > ')}\n\n${c.text}` : c.text);
      vectors++;
    }
  }
  if (!vectors) throw new Error('baseline embedded nothing');
  return files.length / ((performance.now() - started) / 1000);
}

export async function run(): Promise<void> {
  const files = Array.from({ length: DOCS }, (_, i) => markdownFixture(i, 5000));
  const base = baseline(files);

  const dir = mkdtempSync(path.join(tmpdir(), 'abi-'));
  const redis = new EmbeddedRedis({ dir: path.join(dir, 'redis'), persistence: false });
  await redis.start();
  const config = loadConfig({
    PORT: '0',
    AUTOBOT_DATA_DIR: dir,
    REDIS_URL: redis.url,
    LOG_LEVEL: 'warn',
    AUTOBOT_RATE_LIMITS: JSON.stringify({ default: { points: 1_000_000, durationS: 60 } }),
  });
  const server = await startServer({
    config,
    catalogue: [configModule, filesModule, documentsModule, embeddingsModule, acceleratorModule, llmModule, browserModule],
    logger: createLogger('warn'),
    authenticate: testAuthenticator,
  });
  const socket = connect(server.url, { path: '/ws', auth: { token: USER_TOKEN }, transports: ['websocket'] });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  const indexed = new Set<string>();
  const failed = new Set<string>();
  let allDone: () => void = () => undefined;
  const finished = new Promise<void>((r) => (allDone = r));
  socket.on('document:progress', (p: { documentId: string; status: string }) => {
    if (p.status === 'indexed') indexed.add(p.documentId);
    if (p.status === 'failed') failed.add(p.documentId);
    if (indexed.size + failed.size >= DOCS) allDone();
  });

  // INGESTION_REDIS_STATS=1: prints the Redis commands per document (where round trips go).
  const countsBefore = process.env.INGESTION_REDIS_STATS ? await commandCounts(redis.url) : undefined;
  const started = performance.now();
  const batches: number[] = [];
  for (let i = 0; i < DOCS; i += PER_REQUEST) batches.push(i);
  let next = 0;
  const uploader = async () => {
    while (next < batches.length) {
      const from = batches[next++]!;
      const form = new FormData();
      for (let i = from; i < Math.min(DOCS, from + PER_REQUEST); i++) form.append('file', new Blob([files[i]!], { type: 'text/markdown' }), `doc-${i}.md`);
      const res = await fetch(`${server.url}/api/v1/documents/upload`, { method: 'POST', headers: { authorization: `Bearer ${USER_TOKEN}` }, body: form });
      if (res.status !== 202) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_REQUESTS }, uploader));
  const uploadedS = (performance.now() - started) / 1000;
  const timeout = setTimeout(() => allDone(), 600_000);
  await finished;
  clearTimeout(timeout);
  const totalS = (performance.now() - started) / 1000;
  if (countsBefore) {
    const after = await commandCounts(redis.url);
    const per = [...after].map(([cmd, n]) => [cmd, (n - (countsBefore.get(cmd) ?? 0)) / DOCS] as const).filter(([, n]) => n >= 0.05).sort((a, b) => b[1] - a[1]);
    const total = per.reduce((t, [, n]) => t + n, 0);
    process.stderr.write(`redis commands per document: ${fmt(total)} (${per.map(([c, n]) => `${c} ${fmt(n)}`).join(', ')})\n`);
  }
  socket.close();
  await server.stop();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
  if (failed.size || indexed.size < DOCS) throw new Error(`ingestion incomplete: ${indexed.size} indexed, ${failed.size} failed`);

  const rate = DOCS / totalS;
  rows.push({
    name: `ingestion: ${DOCS} Markdown files (~5 KB) uploaded via API → all indexed, built-in embedder (docs/s; uploads took ${fmt(uploadedS)} s)`,
    autobot: fmt(rate),
    baseline: `${fmt(base)} (parse + chunk + embed, one plain loop)`,
    ratio: `${fmt((rate / base) * 100)} %`,
    target: `>= ${TARGET} docs/s`,
    met: rate >= TARGET,
  });
}
