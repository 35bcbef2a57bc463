// A stand-in for the embeddings module while it is being built elsewhere: the same contract, vectors
// kept in its own Redis database (so a restarted process sees them), no real similarity. The documents
// tests use the real module when the catalogue has it (see documents-app.ts).
import { injectable, inject, type InjectionToken } from 'tsyringe';
import type { Redis } from 'ioredis';
import type { Handlers } from '../../../../src/kernel/contract/define.js';
import { defineModule } from '../../../../src/kernel/module/define-module.js';
import { ModuleRedis } from '../../../../src/kernel/module/tokens.js';
import { embeddingsContract } from '../../../../src/modules/embeddings/contract.js';

type Meta = Record<string, unknown> & { ownerId: string; documentId?: string };

@injectable()
class EmbeddingsDouble {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async generate(input: { texts: string[] }) {
    return { model: 'double', dimensions: 2, embeddings: input.texts.map((t) => [t.length, 1]) };
  }

  async upsert(input: { collection: string; items: { id: string; text: string; metadata: Meta }[] }) {
    const tx = this.redis.multi();
    for (const item of input.items) {
      tx.hset(`${input.collection}:vec`, item.id, JSON.stringify(item.metadata));
      if (item.metadata.documentId) tx.sadd(`${input.collection}:doc:${item.metadata.documentId}`, item.id);
    }
    await tx.exec();
    return { upserted: input.items.length, model: 'double', dimensions: 2 };
  }

  async remove(input: { collection: string; ids?: string[] | undefined; documentId?: string | undefined }) {
    const ids = [...(input.ids ?? []), ...(input.documentId ? await this.redis.smembers(`${input.collection}:doc:${input.documentId}`) : [])];
    if (!ids.length) return { removed: 0 };
    const metas = await this.redis.hmget(`${input.collection}:vec`, ...ids);
    const tx = this.redis.multi().hdel(`${input.collection}:vec`, ...ids);
    metas.forEach((m, i) => {
      const doc = m ? (JSON.parse(m) as Meta).documentId : undefined;
      if (doc) tx.srem(`${input.collection}:doc:${doc}`, ids[i]!);
    });
    await tx.exec();
    return { removed: metas.filter(Boolean).length };
  }

  async setMetadata(input: { collection: string; documentId: string; patch: Record<string, unknown> }) {
    const ids = await this.redis.smembers(`${input.collection}:doc:${input.documentId}`);
    for (const id of ids) {
      const m = await this.redis.hget(`${input.collection}:vec`, id);
      if (m) await this.redis.hset(`${input.collection}:vec`, id, JSON.stringify({ ...(JSON.parse(m) as Meta), ...input.patch }));
    }
    return { updated: ids.length };
  }

  async search(input: { collection: string; topK: number; filter?: { documentIds?: string[] | undefined; visibleTo?: string | undefined } | undefined }) {
    const all = await this.redis.hgetall(`${input.collection}:vec`);
    const items = Object.entries(all)
      .map(([id, m]) => ({ id, score: 1, metadata: JSON.parse(m) as Meta }))
      .filter((i) => !input.filter?.documentIds || input.filter.documentIds.includes(i.metadata.documentId ?? ''))
      .filter((i) => !input.filter?.visibleTo || i.metadata.ownerId === input.filter.visibleTo || i.metadata.shared === true)
      .slice(0, input.topK);
    return { items, model: 'double', dimensions: 2 };
  }

  async listModels() {
    return { items: [] };
  }

  async listCollections() {
    return { items: [] };
  }

  async resetCollection() {
    return { removed: 0 };
  }
}

export const embeddingsDoubleModule = defineModule({
  contract: embeddingsContract,
  redisDb: 1,
  register(c) {
    c.registerSingleton(EmbeddingsDouble);
  },
  // A double of a contract still moving: checked by the binding at run time, not by the compiler.
  implementation: EmbeddingsDouble as unknown as InjectionToken<Handlers<typeof embeddingsContract>>,
});
