import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { embeddingsContract } from '../embeddings/contract.js';
import { CategoryStore } from './category-store.js';
import { knowledgeContract } from './contract.js';
import { EmbeddingsSync, type SyncHint } from './embeddings-sync.js';
import { EntityStore } from './entity-store.js';
import { FactStore } from './fact-store.js';
import { KnowledgeService } from './service.js';

interface FactEvent {
  factId: string;
  changes?: string[];
}

/** What a fact event means for its vector; undefined when the vector does not carry what changed. */
function hintOf(type: string, payload: FactEvent): SyncHint | undefined {
  if (type === 'knowledge.fact.deleted') return 'delete';
  if (type === 'knowledge.fact.created' || payload.changes?.includes('content')) return 'content';
  const carried = ['shared', 'categoryId', 'tags'];
  return payload.changes?.some((c) => carried.includes(c)) ? 'metadata' : undefined;
}

export const knowledgeModule = defineModule({
  contract: knowledgeContract,
  dependencies: [configContract, embeddingsContract],
  // Its own fact events feed the vector index: durable, so a change made while this module's worker
  // was down is still synced.
  subscribes: ['config.settings.changed', 'auth.user.deleted', 'knowledge.fact.created', 'knowledge.fact.updated', 'knowledge.fact.deleted'],
  redisDb: 2,
  register(c) {
    c.registerSingleton(FactStore);
    c.registerSingleton(CategoryStore);
    c.registerSingleton(EntityStore);
    c.registerSingleton(EmbeddingsSync);
    c.registerSingleton(KnowledgeService);
  },
  implementation: KnowledgeService,
  // Facts are stored either way; what health reports is whether their vectors keep up.
  async health(c) {
    const { pending, failed } = await c.resolve(EmbeddingsSync).backlog();
    if (failed > 0) return { status: 'degraded', detail: `${failed} fact vector syncs failed for good (${pending} pending)` };
    return { status: 'ok', detail: `${pending} fact vector syncs pending` };
  },
  async start(c) {
    const service = c.resolve(KnowledgeService);
    const sync = c.resolve(EmbeddingsSync);
    await service.settings.reload();
    sync.startWorker();
    const onFact = async (event: { id: string; type: string; payload: unknown }) => {
      const payload = event.payload as FactEvent;
      const hint = hintOf(event.type, payload);
      if (hint) await sync.enqueue(event.id, { factId: payload.factId, hint });
    };
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes(knowledgeContract.id)) await service.settings.reload();
      },
      // A deleted user's knowledge goes with them (their shared facts stop being shown to everyone).
      'auth.user.deleted': async (event) => service.purgeOwner((event.payload as { userId: string }).userId),
      'knowledge.fact.created': onFact,
      'knowledge.fact.updated': onFact,
      'knowledge.fact.deleted': onFact,
    });
  },
});
