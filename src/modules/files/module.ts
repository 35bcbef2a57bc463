import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { filesContract } from './contract.js';
import { FileStore } from './file-store.js';
import { FilesService } from './service.js';

const STALE_TEMPORARY_MS = 3600_000;

export const filesModule = defineModule({
  contract: filesContract,
  dependencies: [configContract],
  subscribes: ['config.settings.changed'],
  redisDb: 6,
  register(c) {
    c.registerSingleton(FileStore);
    c.registerSingleton(FilesService);
  },
  implementation: FilesService,
  async start(c) {
    const service = c.resolve(FilesService);
    await service.blobs.init();
    await service.blobs.sweepTemporary(STALE_TEMPORARY_MS);
    await service.settings.reload();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes(filesContract.id)) await service.settings.reload();
      },
    });
  },
});
