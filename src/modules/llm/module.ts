import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { llmContract } from './contract.js';
import { LlmService } from './service.js';

export const llmModule = defineModule({
  contract: llmContract,
  dependencies: [configContract],
  subscribes: ['config.settings.changed'],
  // Database 10 holds the llm cache and monitoring (ARCHITECTURE.md §5); the module keeps no data yet.
  redisDb: 10,
  register(c) {
    c.registerSingleton(LlmService);
  },
  implementation: LlmService,
  async start(c) {
    const service = c.resolve(LlmService);
    await service.settings.reload();
    // The first probe is bounded (2 s per host), so a down Ollama does not hold the start back.
    await service.pool.start();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (!namespaces.includes(llmContract.id)) return;
        await service.settings.reload();
        service.pool.reconfigure();
      },
    });
  },
  stop(c) {
    c.resolve(LlmService).close();
  },
  health(c) {
    const hosts = c.resolve(LlmService).pool.hosts;
    const up = hosts.filter((h) => h.status === 'up').length;
    if (up === hosts.length) return { status: 'ok' };
    // The module itself works (it answers 503 at once); its dependency does not, as for a missing Chromium.
    const detail = hosts.filter((h) => h.status !== 'up').map((h) => `${h.label}: ${h.lastError ?? h.status}`).join('; ');
    return { status: 'degraded', detail: `${up} of ${hosts.length} Ollama hosts up; ${detail}` };
  },
});
