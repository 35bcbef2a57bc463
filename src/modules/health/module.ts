import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { healthContract } from './contract.js';
import { HealthService } from './service.js';

export const healthModule = defineModule({
  contract: healthContract,
  dependencies: [configContract],
  subscribes: ['config.settings.changed'],
  redisDb: 0,
  register(c) {
    c.registerSingleton(HealthService);
  },
  implementation: HealthService,
  async start(c) {
    const service = c.resolve(HealthService);
    await service.settings.reload();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes('health')) await service.settings.reload();
      },
    });
  },
});
