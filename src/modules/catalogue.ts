// Every module this program knows. A process hosts those AUTOBOT_MODULES names (default: all) and
// reaches the others over HTTP. Only the composition root imports this list.
import type { AnyModule } from '../kernel/module/define-module.js';
import { authModule } from './auth/module.js';
import { configModule } from './config/module.js';
import { healthModule } from './health/module.js';

export const catalogue: readonly AnyModule[] = [configModule, healthModule, authModule];
