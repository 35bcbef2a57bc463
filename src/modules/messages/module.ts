import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { chatsContract } from '../chats/contract.js';
import { configContract } from '../config/contract.js';
import { historyContract } from '../history/contract.js';
import { llmContract } from '../llm/contract.js';
import { searchContract } from '../search/contract.js';
import { chatTurnSaga } from './chat-turn-saga.js';
import { messagesContract } from './contract.js';
import { MessagesService } from './service.js';
import { TurnChannels } from './turn-channels.js';
import { TurnStore } from './turn-store.js';

export const messagesModule = defineModule({
  contract: messagesContract,
  // search: the retrieve step of a chat with knowledge (a chat without never calls it).
  dependencies: [chatsContract, historyContract, llmContract, configContract, searchContract],
  subscribes: ['config.settings.changed'],
  sagas: [chatTurnSaga],
  redisDb: 4,
  register(c) {
    c.registerSingleton(TurnStore);
    c.registerSingleton(TurnChannels);
    c.registerSingleton(MessagesService);
  },
  implementation: MessagesService,
  async start(c) {
    const service = c.resolve(MessagesService);
    await service.settings.reload();
    await c.resolve(TurnChannels).start();
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes(messagesContract.id)) await service.settings.reload();
      },
    });
  },
  stop(c) {
    c.resolve(TurnChannels).stop();
  },
});
