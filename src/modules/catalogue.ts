// Every module this program knows. A process hosts those AUTOBOT_MODULES names (default: all) and
// reaches the others over HTTP. Only the composition root imports this list.
import type { AnyModule } from '../kernel/module/define-module.js';
import { acceleratorModule } from './accelerator/module.js';
import { authModule } from './auth/module.js';
import { browserModule } from './browser/module.js';
import { chatsModule } from './chats/module.js';
import { configModule } from './config/module.js';
import { desktopModule } from './desktop/module.js';
import { documentsModule } from './documents/module.js';
import { embeddingsModule } from './embeddings/module.js';
import { filesModule } from './files/module.js';
import { healthModule } from './health/module.js';
import { historyModule } from './history/module.js';
import { knowledgeModule } from './knowledge/module.js';
import { llmModule } from './llm/module.js';
import { messagesModule } from './messages/module.js';
import { searchModule } from './search/module.js';
import { terminalModule } from './terminal/module.js';

/** The foundation every process needs: settings, health, credentials. */
export const coreModules: readonly AnyModule[] = [configModule, healthModule, authModule];

export const catalogue: readonly AnyModule[] = [
  ...coreModules,
  // conversations
  llmModule,
  chatsModule,
  historyModule,
  messagesModule,
  // ingestion and retrieval
  filesModule,
  acceleratorModule,
  embeddingsModule,
  documentsModule,
  knowledgeModule,
  searchModule,
  // automation
  terminalModule,
  browserModule,
  desktopModule,
];
