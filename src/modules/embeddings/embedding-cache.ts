// Embeddings cached by model and content hash: the same text embedded twice with the same model (a
// document uploaded again, a reindex after a crash) costs one Redis read, not a provider call.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { fromBytes, toBytes } from './vector-store.js';

export function contentHash(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

export class EmbeddingCache {
  hits = 0;
  misses = 0;

  constructor(private readonly redis: Redis) {}

  private key(model: string, text: string): string {
    return `e:${model}:${contentHash(text)}`;
  }

  /** One entry per text: the cached vector, or undefined. */
  async getMany(model: string, texts: string[], dimensions: number): Promise<(Float32Array | undefined)[]> {
    if (texts.length === 0) return [];
    const raw = await this.redis.mgetBuffer(...texts.map((t) => this.key(model, t)));
    return raw.map((b) => {
      const v = b && b.length === dimensions * 4 ? fromBytes(b) : undefined;
      if (v) this.hits++;
      else this.misses++;
      return v;
    });
  }

  async setMany(model: string, entries: { text: string; vector: Float32Array }[], ttlS: number): Promise<void> {
    if (entries.length === 0) return;
    const tx = this.redis.pipeline();
    for (const e of entries) tx.set(this.key(model, e.text), toBytes(e.vector), 'EX', ttlS);
    await tx.exec();
  }
}
