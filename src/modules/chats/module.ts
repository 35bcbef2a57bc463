import { defineModule } from '../../kernel/module/define-module.js';
import { ChatStore } from './chat-store.js';
import { chatsContract } from './contract.js';
import { ChatsService } from './service.js';

export const chatsModule = defineModule({
  contract: chatsContract,
  // Database 4 holds the conversations (chats, history, messages), each under its own prefix.
  redisDb: 4,
  register(c) {
    c.registerSingleton(ChatStore);
    c.registerSingleton(ChatsService);
  },
  implementation: ChatsService,
});
