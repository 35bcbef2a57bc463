import { defineModule } from '../../kernel/module/define-module.js';
import { configContract } from './contract.js';
import { ConfigService } from './service.js';
import { SettingsStore } from './settings-store.js';

export const configModule = defineModule({
  contract: configContract,
  redisDb: 7,
  register(c) {
    c.registerSingleton(SettingsStore);
    c.registerSingleton(ConfigService);
  },
  implementation: ConfigService,
});
