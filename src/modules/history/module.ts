import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { chatsContract } from '../chats/contract.js';
import { historyContract } from './contract.js';
import { MessageIndex } from './message-index.js';
import { MessageStore } from './message-store.js';
import { HistoryService } from './service.js';

export const historyModule = defineModule({
  contract: historyContract,
  dependencies: [chatsContract],
  subscribes: ['chats.chat.deleted'],
  redisDb: 4,
  register(c) {
    c.registerSingleton(MessageStore);
    c.registerSingleton(MessageIndex);
    c.registerSingleton(HistoryService);
  },
  implementation: HistoryService,
  async start(c) {
    await c.resolve(MessageIndex).start();
    const service = c.resolve(HistoryService);
    await c.resolve(ModuleEventsToken).subscribe({
      'chats.chat.deleted': async (event) => {
        const { chatId, ownerId } = event.payload as { chatId: string; ownerId: string };
        await service.removeChat(chatId, ownerId);
      },
    });
  },
  async stop(c) {
    await c.resolve(MessageIndex).stop();
  },
});
