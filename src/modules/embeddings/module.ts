import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { acceleratorContract } from '../accelerator/contract.js';
import { configContract } from '../config/contract.js';
import { llmContract } from '../llm/contract.js';
import { embeddingsContract } from './contract.js';
import { EmbeddingsService } from './service.js';

export const embeddingsModule = defineModule({
  contract: embeddingsContract,
  dependencies: [configContract, llmContract, acceleratorContract],
  subscribes: ['config.settings.changed'],
  redisDb: 1,
  register(c) {
    c.registerSingleton(EmbeddingsService);
  },
  implementation: EmbeddingsService,
  async start(c) {
    const service = c.resolve(EmbeddingsService);
    await service.start();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes(embeddingsContract.id)) {
          await service.settings.reload();
          service.collections.retune();
        }
      },
    });
  },
  async stop(c) {
    await c.resolve(EmbeddingsService).stop();
  },
});
