import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken, ModuleLogger, ProcessConfigToken } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { AccessTokens } from './access-tokens.js';
import { ApiKeyStore } from './api-key-store.js';
import { ensureFirstAdmin } from './bootstrap-admin.js';
import { authContract } from './contract.js';
import { LoginLimiter } from './login-limiter.js';
import { Passwords } from './passwords.js';
import { AuthService } from './service.js';
import { SessionStore } from './session-store.js';
import { UserStore } from './user-store.js';

export const authModule = defineModule({
  contract: authContract,
  dependencies: [configContract],
  subscribes: ['config.settings.changed'],
  redisDb: 5,
  register(c) {
    c.registerSingleton(UserStore);
    c.registerSingleton(SessionStore);
    c.registerSingleton(ApiKeyStore);
    c.registerSingleton(AccessTokens);
    c.registerSingleton(LoginLimiter);
    c.registerSingleton(Passwords);
    c.registerSingleton(AuthService);
  },
  implementation: AuthService,
  async start(c) {
    const service = c.resolve(AuthService);
    await c.resolve(AccessTokens).init();
    await service.settings.reload();
    await ensureFirstAdmin(c.resolve(UserStore), c.resolve(Passwords), c.resolve(ProcessConfigToken).AUTOBOT_ADMIN_PASSWORD, c.resolve(ModuleLogger));
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes(authContract.id)) await service.settings.reload();
      },
    });
  },
  async stop(c) {
    c.resolve(AccessTokens).stop();
  },
});
