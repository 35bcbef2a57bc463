import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { documentsContract } from '../documents/contract.js';
import { embeddingsContract } from '../embeddings/contract.js';
import { SearchAnalytics } from './analytics.js';
import { searchContract } from './contract.js';
import { SearchIndex, type DocumentIndexed, type DocumentMeta, type FactEvent } from './search-index.js';
import { SearchService } from './service.js';

export const searchModule = defineModule({
  contract: searchContract,
  dependencies: [configContract, embeddingsContract, documentsContract],
  // Durable subscriptions: a change made while search was down is applied when it comes back.
  subscribes: [
    'config.settings.changed',
    'auth.user.deleted',
    'documents.document.indexed',
    'documents.document.updated',
    'documents.document.deleted',
    'knowledge.fact.created',
    'knowledge.fact.updated',
    'knowledge.fact.deleted',
  ],
  redisDb: 11,
  register(c) {
    c.registerSingleton(SearchIndex);
    c.registerSingleton(SearchAnalytics);
    c.registerSingleton(SearchService);
  },
  implementation: SearchService,
  async start(c) {
    const service = c.resolve(SearchService);
    const index = c.resolve(SearchIndex);
    await service.settings.reload();
    c.resolve(SearchAnalytics).samples = service.settings.current().analyticsSamples;
    await index.start();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (!namespaces.includes(searchContract.id)) return;
        await service.settings.reload();
        c.resolve(SearchAnalytics).samples = service.settings.current().analyticsSamples;
      },
      'auth.user.deleted': (event) => index.dropOwner((event.payload as { userId: string }).userId),
      'documents.document.indexed': (event) => index.documentIndexed(event.payload as DocumentIndexed),
      'documents.document.updated': (event) => index.documentUpdated(event.payload as DocumentMeta, event.occurredAt),
      'documents.document.deleted': (event) => index.documentDeleted(event.payload as { documentId: string }),
      'knowledge.fact.created': (event) => index.fact('created', event.payload as FactEvent),
      'knowledge.fact.updated': (event) => index.fact('updated', event.payload as FactEvent),
      'knowledge.fact.deleted': (event) => index.fact('deleted', event.payload as FactEvent),
    });
  },
  async stop(c) {
    await c.resolve(SearchIndex).stop();
  },
});
