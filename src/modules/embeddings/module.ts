import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { acceleratorContract } from '../accelerator/contract.js';
import { configContract } from '../config/contract.js';
import { llmContract } from '../llm/contract.js';
import { embeddingsContract } from './contract.js';
import { EmbeddingsService } from './service.js';

const SETTINGS_REFRESH_MS = 5000;
const refresh = new WeakMap<object, NodeJS.Timeout>();

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
    // A subscription's events are shared out among the instances of a module, so with several
    // instances only one hears of a change: the others read their settings again every few seconds.
    const timer = setInterval(() => {
      void service.settings.reload().then(() => service.collections.retune());
    }, SETTINGS_REFRESH_MS);
    timer.unref();
    refresh.set(c, timer);
  },
  async stop(c) {
    clearInterval(refresh.get(c));
    await c.resolve(EmbeddingsService).stop();
  },
});
