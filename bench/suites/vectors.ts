// Vector search at 100,000 × 384 dimensions, on the embeddings module's own collection code over a real
// Redis: query p50 through the HNSW graph against an exact scan of the same vectors in the same run
// (also the recall@10 reference), filtered queries (the over-fetch + exact fallback path), the time a
// restarted instance takes until it answers (loading from Redis, no re-embedding) and until its graph
// is back, and the resident memory the collection costs. Vectors come from the built-in embedder over
// synthetic topical texts, so they have the structure real text has (random vectors would not).
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { EmbeddedRedis } from '../../src/kernel/redis/embedded-redis.js';
import { createLogger } from '../../src/kernel/log/logger.js';
import { builtinEmbed } from '../../src/modules/embeddings/builtin-embedder.js';
import { BUILTIN_MODEL } from '../../src/modules/embeddings/contract.js';
import { Collections } from '../../src/modules/embeddings/collections.js';
import type { VectorIndex } from '../../src/modules/embeddings/vector-index.js';
import { VectorStore } from '../../src/modules/embeddings/vector-store.js';
import { fmt, percentile, rows, rng } from '../lib.js';

/** BENCH_VECTORS (default 100,000): fewer for a quick look on a busy machine. */
const N = Number(process.env.BENCH_VECTORS ?? 100_000);
const DIMS = 384;
const QUERIES = 200;
const K = 10;
const OWNERS = 50;

function corpus(count: number, seed: number): string[] {
  const r = rng(seed);
  const syllables = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'pa', 'qu', 'fi', 'do', 'gu', 'he', 'ja'];
  const vocab = Array.from({ length: 6000 }, () => Array.from({ length: 2 + Math.floor(r() * 3) }, () => syllables[Math.floor(r() * syllables.length)]).join(''));
  const topics = Array.from({ length: 800 }, () => Array.from({ length: 40 }, () => vocab[Math.floor(r() * vocab.length)]!));
  return Array.from({ length: count }, () => {
    const topic = topics[Math.floor(r() * topics.length)]!;
    const words = Array.from({ length: 20 + Math.floor(r() * 30) }, () => (r() < 0.7 ? topic[Math.floor(r() * topic.length)]! : vocab[Math.floor(Math.pow(r(), 2) * vocab.length)]!));
    return words.join(' ');
  });
}

function exactTopK(all: Float32Array[], q: Float32Array, k: number, accept: (i: number) => boolean = () => true): number[] {
  const best: { i: number; s: number }[] = [];
  for (let i = 0; i < all.length; i++) {
    if (!accept(i)) continue;
    const v = all[i]!;
    let s = 0;
    for (let d = 0; d < DIMS; d++) s += v[d]! * q[d]!;
    if (best.length < k) {
      best.push({ i, s });
      best.sort((a, b) => b.s - a.s);
    } else if (s > best[k - 1]!.s) {
      best[k - 1] = { i, s };
      best.sort((a, b) => b.s - a.s);
    }
  }
  return best.map((b) => b.i);
}

const mib = (bytes: number) => bytes / 1024 / 1024;
/** Progress on stderr: the first graph build takes minutes at 100k. */
const progress = (what: string) => process.stderr.write(`  vectors: ${what}\n`);

export async function run(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'abv-'));
  const redisServer = new EmbeddedRedis({ dir, persistence: false });
  await redisServer.start();
  const connect = () => new Redis({ path: redisServer.socketPath, db: 1, keyPrefix: 'embeddings:', enableAutoPipelining: true });
  const logger = createLogger('silent');
  const tuning = () => ({ exactBelow: 2000, overFetch: 4 });
  try {
    let t = performance.now();
    // Queries come from the same vocabulary and topics as the corpus (as users' questions share words
    // with their documents), held out of the index.
    const all = corpus(N + QUERIES, 42);
    const texts = all.slice(0, N);
    const vectors = texts.map((x) => builtinEmbed(x));
    const embedS = (performance.now() - t) / 1000;
    progress(`embedded ${N} texts in ${fmt(embedS)} s`);
    const queryVectors = all.slice(N).map((x) => builtinEmbed(x));
    const ownerOf = (i: number) => `owner-${i % OWNERS}`;

    // Stored the way upserts store them, 1,000 per write.
    const writer = connect();
    const store = new VectorStore(writer);
    t = performance.now();
    for (let i = 0; i < N; i += 1000) {
      const items = [];
      for (let j = i; j < Math.min(N, i + 1000); j++) items.push({ id: `chunk-${j}`, vector: vectors[j]!, metadata: { ownerId: ownerOf(j), documentId: `doc-${Math.floor(j / 20)}` } });
      await store.put('documents', { model: BUILTIN_MODEL, dimensions: DIMS }, items);
    }
    const writeS = (performance.now() - t) / 1000;
    progress(`stored in Redis in ${fmt(writeS)} s`);
    await store.close();
    writer.disconnect();

    // First instance: load, then build the graph.
    const rssBefore = process.memoryUsage().rss;
    const redis1 = connect();
    const graphs = path.join(dir, 'graphs');
    const store1 = new VectorStore(redis1);
    const first = new Collections(redis1, store1, tuning, logger, graphs);
    t = performance.now();
    await first.start();
    const loadS = (performance.now() - t) / 1000;
    const idx1 = first.index('documents')!;
    await idx1.settled();
    const buildS = (performance.now() - t) / 1000;
    progress(`loaded in ${fmt(loadS, 2)} s, graph built in ${fmt(buildS)} s`);
    const rssAfter = process.memoryUsage().rss;

    const idOf = (id: string) => Number(id.slice('chunk-'.length));
    const measure = (idx: VectorIndex, filterOwner?: number) => {
      const lat: number[] = [];
      const exactLat: number[] = [];
      let hits = 0;
      for (let qi = 0; qi < queryVectors.length; qi++) {
        const q = queryVectors[qi]!;
        const filter = filterOwner === undefined ? undefined : { ownerId: `owner-${(qi + filterOwner) % OWNERS}` };
        let s = performance.now();
        const got = idx.search(q, K, filter);
        lat.push(performance.now() - s);
        s = performance.now();
        const truth = exactTopK(vectors, q, K, filter ? (i) => ownerOf(i) === filter.ownerId : undefined);
        exactLat.push(performance.now() - s);
        const want = new Set(truth);
        for (const g of got) if (want.has(idOf(g.id))) hits++;
      }
      return { p50: percentile(lat, 50), p99: percentile(lat, 99), exactP50: percentile(exactLat, 50), recall: hits / (queryVectors.length * K) };
    };
    const plain = measure(idx1);
    const filtered = measure(idx1, 3);

    progress(`measured: p50 ${fmt(plain.p50, 2)} ms, recall ${fmt(plain.recall, 3)}`);
    // Restart: a new instance over the same Redis; nothing is embedded again, and the graph the first
    // instance saved when it stopped is loaded rather than rebuilt.
    t = performance.now();
    await first.stop();
    const saveS = (performance.now() - t) / 1000;
    await store1.close();
    redis1.disconnect();
    const redis2 = connect();
    const store2 = new VectorStore(redis2);
    const second = new Collections(redis2, store2, tuning, logger, graphs);
    t = performance.now();
    await second.start();
    const idx2 = second.index('documents')!;
    const answered = idx2.search(queryVectors[0]!, K);
    const searchableS = (performance.now() - t) / 1000;
    await idx2.settled();
    const graphBackS = (performance.now() - t) / 1000;
    const afterRestart = measure(idx2);
    await second.stop();
    await store2.close();
    redis2.disconnect();

    const perHundredK = (mib(rssAfter - rssBefore) * 100_000) / N;
    rows.push(
      { name: `vectors: query p50, ${N / 1000}k×${DIMS} (HNSW vs exact scan)`, autobot: `${fmt(plain.p50, 2)} ms`, baseline: `${fmt(plain.exactP50, 2)} ms`, ratio: `${fmt(plain.exactP50 / plain.p50)}× faster`, target: '≤ 5 ms', met: plain.p50 <= 5 },
      { name: 'vectors: recall@10 vs exact search', autobot: fmt(plain.recall, 3), baseline: '1.000', ratio: fmt(plain.recall, 3), target: '≥ 0.95', met: plain.recall >= 0.95 },
      { name: `vectors: filtered query p50 (1 owner of ${OWNERS})`, autobot: `${fmt(filtered.p50, 2)} ms`, baseline: `${fmt(filtered.exactP50, 2)} ms`, ratio: `recall ${fmt(filtered.recall, 3)}`, target: 'topK filled', met: filtered.recall >= 0.95 },
      { name: 'vectors: restart to searchable (load from Redis)', autobot: `${fmt(searchableS, 2)} s`, baseline: `${fmt(embedS, 1)} s re-embed`, ratio: `${fmt(embedS / searchableS)}×`, target: '≤ 5 s', met: searchableS <= 5 && answered.length === K },
      { name: 'vectors: restart to graph speed (saved graph)', autobot: `${fmt(graphBackS, 2)} s`, baseline: `${fmt(buildS, 1)} s first build`, ratio: `p50 ${fmt(afterRestart.p50, 2)} ms, recall ${fmt(afterRestart.recall, 3)}`, target: 'info', met: afterRestart.recall >= 0.95 },
      { name: 'vectors: graph snapshot written at stop', autobot: `${fmt(saveS, 2)} s`, baseline: '-', ratio: '-', target: 'info', met: true },
      { name: `vectors: resident memory per 100k×${DIMS}`, autobot: `${fmt(perHundredK, 0)} MiB`, baseline: `${fmt((100_000 * DIMS * 4) / 1024 / 1024, 0)} MiB raw f32`, ratio: `${fmt(perHundredK / ((100_000 * DIMS * 4) / 1024 / 1024))}×`, target: 'printed', met: true },
      { name: `vectors: write ${N / 1000}k to Redis / load`, autobot: `${fmt(writeS, 1)} s / ${fmt(loadS, 2)} s`, baseline: '-', ratio: '-', target: 'info', met: true },
    );
  } finally {
    await redisServer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
