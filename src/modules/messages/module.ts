import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken } from '../../kernel/module/tokens.js';
import { chatsContract } from '../chats/contract.js';
import { configContract } from '../config/contract.js';
import { historyContract } from '../history/contract.js';
import { llmContract } from '../llm/contract.js';
import { browserContract } from '../browser/contract.js';
import { searchContract } from '../search/contract.js';
import { terminalContract } from '../terminal/contract.js';
import { ApprovalWaits } from './approval-waits.js';
import { chatTurnSaga } from './chat-turn-saga.js';
import { messagesContract } from './contract.js';
import { MessagesService } from './service.js';
import { ToolJournal } from './tool-journal.js';
import { TurnChannels } from './turn-channels.js';
import { TurnStore } from './turn-store.js';

export const messagesModule = defineModule({
  contract: messagesContract,
  // search: the retrieve step of a chat with knowledge (a chat without never calls it).
  dependencies: [chatsContract, historyContract, llmContract, configContract, searchContract, terminalContract, browserContract],
  // terminal and browser: the tools of the chat's tool loop (browser starts Chromium only when a page is read).
  // terminal.approval.decided wakes a tool call waiting for its approval.
  subscribes: ['config.settings.changed', 'terminal.approval.decided'],
  sagas: [chatTurnSaga],
  redisDb: 4,
  register(c) {
    c.registerSingleton(TurnStore);
    c.registerSingleton(TurnChannels);
    c.registerSingleton(ToolJournal);
    c.registerSingleton(ApprovalWaits);
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
      'terminal.approval.decided': (event) => {
        c.resolve(ApprovalWaits).decided((event.payload as { approvalId: string }).approvalId);
      },
    });
  },
  stop(c) {
    c.resolve(TurnChannels).stop();
  },
});
