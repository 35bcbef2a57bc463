import type { Handlers } from '../contract/define.js';
import { ContractError } from '../contract/errors.js';
import type { SystemInfo } from '../module/tokens.js';
import type { InstanceInfo } from '../registry/instance-registry.js';
import type { SagaOrchestrator } from '../sagas/saga-orchestrator.js';
import type { EventBus } from '../events/event-bus.js';
import type { systemContract } from './contract.js';

export function systemHandlers(deps: {
  system: SystemInfo;
  instances: () => InstanceInfo[];
  sagas: () => SagaOrchestrator;
  events: () => EventBus;
}): Handlers<typeof systemContract> {
  return {
    async listServices() {
      const instances = deps.instances();
      const items = await Promise.all(
        deps.system.modules().map(async (m) => {
          const report = await m.health();
          const inst = m.url ? instances.find((i) => i.url === m.url && i.modules.includes(m.id)) : undefined;
          return {
            module: m.id,
            where: m.where,
            url: m.url ?? null,
            version: m.where === 'local' ? deps.system.version : (inst?.version ?? null),
            health: report.status,
            ...(report.detail ? { detail: report.detail } : {}),
            lastHeartbeat: inst?.lastHeartbeat ?? null,
          };
        }),
      );
      return { items, instances };
    },
    async listSagas(input) {
      return deps.sagas().list(input);
    },
    async listDeadEvents({ module, limit }) {
      return { items: await deps.events().deadLetters({ limit, ...(module ? { moduleId: module } : {}) }) };
    },
    async getSaga({ id }) {
      const saga = await deps.sagas().get(id);
      if (!saga) throw new ContractError('not_found', `no saga ${id}`);
      return saga;
    },
  };
}
