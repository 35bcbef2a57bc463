import { instanceCachingFactory } from 'tsyringe';
import type { Port } from '../../kernel/contract/define.js';
import { defineModule } from '../../kernel/module/define-module.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import { ModuleEventsToken, ModuleLogger } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { desktopContract, desktopSettings } from './contract.js';
import { DesktopService } from './service.js';
import { DesktopSettingsToken } from './tokens.js';

export const desktopModule = defineModule({
  contract: desktopContract,
  dependencies: [configContract],
  subscribes: ['config.settings.changed'],
  // The automation database (ARCHITECTURE.md §5); the module keeps nothing there yet.
  redisDb: 9,
  register(c) {
    c.register(DesktopSettingsToken, {
      useFactory: instanceCachingFactory((inner) => {
        const config = inner.resolve<Port<typeof configContract>>(configContract.token);
        return new SettingsHolder(desktopSettings, async () => (await config.getModuleSettings({ module: desktopContract.id })).settings, inner.resolve(ModuleLogger));
      }),
    });
    c.registerSingleton(DesktopService);
  },
  implementation: DesktopService,
  async start(c) {
    const service = c.resolve(DesktopService);
    await service.settings.reload();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (!namespaces.includes(desktopContract.id)) return;
        await service.settings.reload();
        service.settingsChanged();
      },
    });
  },
  stop(c) {
    c.resolve(DesktopService).close();
  },
  // A missing display is a fact about the host, not a fault of the module.
  health: (c) => {
    const name = c.resolve(DesktopService).displayName();
    return { status: 'ok', detail: name ? `display ${name}` : 'no display configured' };
  },
});
