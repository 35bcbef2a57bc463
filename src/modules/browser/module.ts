import { instanceCachingFactory } from 'tsyringe';
import type { Port } from '../../kernel/contract/define.js';
import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken, ModuleLogger } from '../../kernel/module/tokens.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import { configContract } from '../config/contract.js';
import { BrowserEngine } from './browser-engine.js';
import { DEFAULT_CHROMIUM_PATH } from './chromium.js';
import { browserContract, browserSettings } from './contract.js';
import { BrowserService } from './service.js';
import { BrowserEngineToken, BrowserSettingsToken } from './tokens.js';

/**
 * Which Chromium: AUTOBOT_CHROMIUM_PATH, else Playwright's own variable (the Docker image sets it), else
 * Debian's path. Read from the environment, not from runtime settings: which program the server runs is
 * the operator's decision, not something to change over the API.
 */
export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.AUTOBOT_CHROMIUM_PATH || env.PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH || DEFAULT_CHROMIUM_PATH;
}

export const browserModule = defineModule({
  contract: browserContract,
  dependencies: [configContract],
  // auth.session.revoked: a logout closes the browser sessions its sign-in opened.
  subscribes: ['config.settings.changed', 'auth.session.revoked'],
  // The automation database (ARCHITECTURE.md §5); sessions themselves live in this process's Chromium.
  redisDb: 9,
  register(c) {
    c.register(BrowserSettingsToken, {
      useFactory: instanceCachingFactory((inner) => {
        const config = inner.resolve<Port<typeof configContract>>(configContract.token);
        return new SettingsHolder(browserSettings, async () => (await config.getModuleSettings({ module: browserContract.id })).settings, inner.resolve(ModuleLogger));
      }),
    });
    c.register(BrowserEngineToken, {
      useFactory: instanceCachingFactory((inner) => {
        const settings = inner.resolve(BrowserSettingsToken);
        return new BrowserEngine({ executablePath: chromiumPath(), logger: inner.resolve(ModuleLogger), settings: () => settings.current() });
      }),
    });
    c.registerSingleton(BrowserService);
  },
  implementation: BrowserService,
  async start(c) {
    const service = c.resolve(BrowserService);
    await service.reloadSettings();
    await c.resolve(BrowserEngineToken).start();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes(browserContract.id)) await service.reloadSettings();
      },
      'auth.session.revoked': async (event) => {
        const { userId, sessionId, reason } = event.payload as { userId: string; sessionId: string | null; reason: string };
        await service.authSessionRevoked(userId, sessionId, reason);
      },
    });
  },
  async stop(c) {
    await c.resolve(BrowserEngineToken).stop();
  },
  health: (c) => c.resolve(BrowserEngineToken).health(),
});
