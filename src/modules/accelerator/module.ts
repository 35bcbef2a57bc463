import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { acceleratorContract } from './contract.js';
import { AcceleratorService } from './service.js';

export const acceleratorModule = defineModule({
  contract: acceleratorContract,
  dependencies: [configContract],
  subscribes: ['config.settings.changed'],
  // Keeps no data of its own; database 1 is the embeddings one it is usually hosted with.
  redisDb: 1,
  register(c) {
    c.registerSingleton(AcceleratorService);
  },
  implementation: AcceleratorService,
  async start(c) {
    const service = c.resolve(AcceleratorService);
    await service.settings.reload();
    service.applySettings();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes(acceleratorContract.id)) {
          await service.settings.reload();
          service.applySettings();
        }
      },
    });
  },
  async stop(c) {
    await c.resolve(AcceleratorService).stop();
  },
});
