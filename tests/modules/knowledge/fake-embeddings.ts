// A stand-in for the embeddings module, serving the real embeddings contract: it keeps the `facts`
// collection's items in memory, records every call, and can be switched "down" (every call answers
// `unavailable`, as a remote module behind an open breaker would), so the knowledge module's vector
// sync can be watched and its retries proved without depending on how embeddings computes vectors.
import { injectable } from 'tsyringe';
import type { Handlers } from '../../../src/kernel/contract/define.js';
import { ContractError } from '../../../src/kernel/contract/errors.js';
import { currentContext } from '../../../src/kernel/context/request-context.js';
import { defineModule } from '../../../src/kernel/module/define-module.js';
import { embeddingsContract } from '../../../src/modules/embeddings/contract.js';

export interface FakeVector {
  text: string;
  metadata: Record<string, unknown>;
}

export interface FakeEmbeddingsState {
  down: boolean;
  /** collection -> id -> item */
  items: Map<string, Map<string, FakeVector>>;
  calls: { op: string; input: unknown; actor: string | undefined; failed: boolean }[];
}

export const fakeEmbeddings: FakeEmbeddingsState = { down: false, items: new Map(), calls: [] };

export function resetFakeEmbeddings(): void {
  fakeEmbeddings.down = false;
  fakeEmbeddings.items.clear();
  fakeEmbeddings.calls.length = 0;
}

function collection(name: string): Map<string, FakeVector> {
  let c = fakeEmbeddings.items.get(name);
  if (!c) fakeEmbeddings.items.set(name, (c = new Map()));
  return c;
}

function record(op: string, input: unknown): void {
  const actor = currentContext()?.actor;
  const failed = fakeEmbeddings.down;
  fakeEmbeddings.calls.push({ op, input, actor: actor?.type === 'service' ? `service:${actor.name}` : actor?.id, failed });
  if (failed) throw new ContractError('unavailable', 'embeddings is down (test)');
}

const DIMENSIONS = 4;

@injectable()
class FakeEmbeddingsService implements Handlers<typeof embeddingsContract> {
  generate({ texts }: { texts: string[] }) {
    record('generate', { texts });
    return { model: 'fake', dimensions: DIMENSIONS, embeddings: texts.map(() => [1, 0, 0, 0]) };
  }

  upsert(input: { collection: string; items: { id: string; text: string; metadata: Record<string, unknown> }[] }) {
    record('upsert', input);
    for (const item of input.items) collection(input.collection).set(item.id, { text: item.text, metadata: item.metadata });
    return { upserted: input.items.length, model: 'fake', dimensions: DIMENSIONS };
  }

  remove(input: { collection: string; ids?: string[] | undefined; documentId?: string | undefined }) {
    record('remove', input);
    let removed = 0;
    const c = collection(input.collection);
    for (const [id, v] of c) {
      if (input.ids?.includes(id) || (input.documentId !== undefined && v.metadata.documentId === input.documentId)) {
        c.delete(id);
        removed++;
      }
    }
    return { removed };
  }

  setMetadata(input: { collection: string; documentId: string; patch: Record<string, unknown> }) {
    record('setMetadata', input);
    let updated = 0;
    for (const v of collection(input.collection).values()) {
      if (v.metadata.documentId !== input.documentId) continue;
      for (const [k, val] of Object.entries(input.patch)) if (val !== undefined) v.metadata[k] = val;
      updated++;
    }
    return { updated };
  }

  search() {
    record('search', {});
    return { items: [], model: 'fake', dimensions: DIMENSIONS };
  }

  listModels() {
    record('listModels', {});
    return { items: [] };
  }

  listCollections() {
    record('listCollections', {});
    return { items: [] };
  }

  resetCollection({ collection: name }: { collection: string }) {
    record('resetCollection', { collection: name });
    const removed = collection(name).size;
    collection(name).clear();
    return { removed };
  }
}

export const fakeEmbeddingsModule = defineModule({
  contract: embeddingsContract,
  redisDb: 1,
  register(c) {
    c.registerSingleton(FakeEmbeddingsService);
  },
  implementation: FakeEmbeddingsService,
});
