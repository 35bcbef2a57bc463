import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { browserContract } from '../browser/contract.js';
import { configContract } from '../config/contract.js';
import { embeddingsContract } from '../embeddings/contract.js';
import { filesContract } from '../files/contract.js';
import { documentsContract } from './contract.js';
import { DocumentStore } from './document-store.js';
import { Pipeline } from './pipeline.js';
import { DocumentsService } from './service.js';
import { DocumentsSettingsHolder } from './settings.js';

export const documentsModule = defineModule({
  contract: documentsContract,
  // browser: pages added by URL are read through it (its SSRF guard); Chromium starts only for that.
  dependencies: [configContract, filesContract, embeddingsContract, browserContract],
  subscribes: ['config.settings.changed'],
  redisDb: 3,
  register(c) {
    c.registerSingleton(DocumentsSettingsHolder);
    c.registerSingleton(DocumentStore);
    c.registerSingleton(Pipeline);
    c.registerSingleton(DocumentsService);
  },
  implementation: DocumentsService,
  async start(c) {
    const settings = c.resolve(DocumentsSettingsHolder);
    await settings.reload();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes(documentsContract.id)) await settings.reload();
      },
    });
    await c.resolve(Pipeline).start();
  },
});
