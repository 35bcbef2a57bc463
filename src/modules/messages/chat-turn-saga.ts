// The chat turn as a durable saga (ARCHITECTURE.md §6a). Every step names an operation, so any process
// can resume a turn from its journal after a crash; `generate` is the long one, with its own deadline.
// `saveUserMessage` is skipped for a regeneration (the user message exists), `title` runs only for a
// chat that had no title and whose answer completed. `retrieve` runs only in a chat with knowledge: its
// outcome (the numbered sources) is journaled, so a resumed turn quotes and cites the same sources.
import { defineSaga } from '../../kernel/sagas/saga-definition.js';
import { GENERATE_TIMEOUT_MS, turnInput, type GenerateOutcome, type RetrieveOutcome, type TurnInput } from './contract.js';

export const CHAT_TURN_SAGA = 'messages.chat-turn';

export const chatTurnSaga = defineSaga<TurnInput>({
  type: CHAT_TURN_SAGA,
  input: turnInput,
  steps: [
    {
      name: 'saveUserMessage',
      module: 'messages',
      operation: 'saveUserMessage',
      when: (turn) => turn.userMessage !== undefined,
      input: (turn) => turn,
      // When this step itself gives up (e.g. the process driving the saga cannot reach `messages`),
      // the chat must be freed and the clients told, as for any later failure.
      compensate: { operation: 'abandonTurn', input: (turn) => turn },
      retries: 8,
    },
    {
      name: 'createAssistantMessage',
      module: 'messages',
      operation: 'createAssistantMessage',
      input: (turn) => turn,
      // Whatever fails later, the answer never stays `streaming` and the chat is free again.
      compensate: { operation: 'abandonTurn', input: (turn) => turn },
      // Patient (about 90 s of backoff) for this and its compensation: a messages or history process
      // being restarted must not leave an answer `streaming`.
      retries: 8,
    },
    {
      name: 'retrieve',
      module: 'messages',
      operation: 'retrieve',
      // Turns journaled before the field existed have none: no knowledge.
      when: (turn) => turn.useKnowledge === true,
      input: (turn) => turn,
      // A failed search is not a failed turn (the step answers without sources and a warning); retries
      // are for reading the question from history.
      retries: 4,
    },
    // Retried calls find the generation's record under their key: they never ask the model twice.
    {
      name: 'generate',
      module: 'messages',
      operation: 'generate',
      timeoutMs: GENERATE_TIMEOUT_MS,
      retries: 8,
      input: (turn, results) => {
        const sources = (results.retrieve as RetrieveOutcome | undefined)?.sources;
        return sources?.length ? { ...turn, sources } : turn;
      },
    },
    {
      name: 'complete',
      module: 'messages',
      operation: 'completeTurn',
      input: (turn, results) => ({ turn, outcome: results.generate as GenerateOutcome, ...(results.retrieve ? { retrieval: results.retrieve as RetrieveOutcome } : {}) }),
      retries: 8,
    },
    {
      name: 'updateChat',
      module: 'chats',
      operation: 'recordActivity',
      input: (turn, results) => {
        const done = results.complete as { messageCount: number; lastActivityAt: string };
        return { id: turn.chatId, messageCount: done.messageCount, lastActivityAt: done.lastActivityAt };
      },
    },
    {
      name: 'title',
      module: 'messages',
      operation: 'titleChat',
      when: (turn, results) => turn.titleNeeded && (results.complete as { status: string }).status === 'complete',
      input: (turn) => turn,
      // A title is a nicety: never worth failing (and compensating) a finished turn for.
      retries: 1,
    },
  ],
});
