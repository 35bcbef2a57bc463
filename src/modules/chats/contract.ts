// Chats: a user's conversations (title, model, system prompt, whether it uses the knowledge base) and
// their counters, owner-scoped (another user's chat is `not_found`), listed by last activity. Deleting a
// chat announces `chats.chat.deleted`; `history` removes its messages from that event.
import { z } from 'zod';
import { defineContract, event, operation } from '../../kernel/contract/index.js';

export const TITLE_MAX = 200;
export const SYSTEM_PROMPT_MAX = 16_000;

const id = z.string().trim().min(1).max(100);
const title = z.string().trim().min(1).max(TITLE_MAX);
const model = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/, 'a model name like mistral:7b-instruct');
const systemPrompt = z.string().max(SYSTEM_PROMPT_MAX);

export const chatView = z.object({
  id: z.string(),
  title: z.string().nullable(),
  /** null: the default model (`llm.defaultModel`). */
  model: z.string().nullable(),
  /** null: `messages.defaultSystemPrompt`. */
  systemPrompt: z.string().nullable(),
  useKnowledge: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
  lastActivityAt: z.string(),
  messageCount: z.number().int().min(0),
});
export type ChatView = z.infer<typeof chatView>;

const page = {
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
};

export const chatsContract = defineContract({
  id: 'chats',
  summary: 'Chat sessions of a user: title, model, system prompt, knowledge use, counters; listed by last activity.',
  operations: {
    createChat: operation({
      input: z.object({
        title: title.optional(),
        model: model.optional(),
        systemPrompt: systemPrompt.optional(),
        useKnowledge: z.boolean().optional(),
      }),
      output: chatView,
      summary: 'A new chat of the caller',
    }),
    listChats: operation({
      input: z.object(page),
      output: z.object({ items: z.array(chatView), nextCursor: z.string().nullable() }),
      idempotent: true,
      summary: "The caller's chats, most recently active first",
    }),
    getChat: operation({ input: z.object({ id }), output: chatView, idempotent: true, summary: 'One chat of the caller' }),
    updateChat: operation({
      input: z.object({
        id,
        title: title.nullable().optional(),
        model: model.nullable().optional(),
        systemPrompt: systemPrompt.nullable().optional(),
        useKnowledge: z.boolean().optional(),
      }),
      output: chatView,
      idempotent: true,
      summary: 'Changes some fields; null resets title, model or system prompt',
    }),
    deleteChat: operation({ input: z.object({ id }), output: z.null(), summary: 'Deletes a chat; its messages follow' }),
    leaveChat: operation({
      input: z.object({ chatId: id }),
      output: z.object({ chatId: z.string() }),
      idempotent: true,
      summary: 'socket.io chat:leave: stop receiving a chat room (always allowed)',
    }),
    recordActivity: operation({
      input: z.object({ id, messageCount: z.number().int().min(0), lastActivityAt: z.iso.datetime() }),
      output: chatView,
      idempotent: true,
      summary: 'After a turn: the message count (never lowered) and the last activity (never moved back)',
    }),
    setGeneratedTitle: operation({
      input: z.object({ id, title }),
      output: z.object({ chat: chatView, applied: z.boolean() }),
      idempotent: true,
      summary: 'Sets a generated title only while the chat has none (a title the user chose wins)',
    }),
  },
  events: {
    'chats.chat.deleted': event({ payload: z.object({ chatId: z.string(), ownerId: z.string() }) }),
  },
  errors: ['invalid_input', 'unauthenticated', 'not_found'],
  routes: [
    { method: 'GET', path: '/chats', operation: 'listChats', auth: 'user' },
    { method: 'POST', path: '/chats', operation: 'createChat', auth: 'user', status: 201 },
    { method: 'GET', path: '/chats/:id', operation: 'getChat', auth: 'user' },
    { method: 'PATCH', path: '/chats/:id', operation: 'updateChat', auth: 'user' },
    { method: 'DELETE', path: '/chats/:id', operation: 'deleteChat', auth: 'user', status: 204 },
  ],
  sockets: [
    {
      event: 'chat:join',
      operation: 'getChat',
      auth: 'user',
      input: (payload) => ({ id: (payload as { chatId?: unknown } | null)?.chatId }),
      join: (_input, chat) => `chat:${(chat as ChatView).id}`,
      summary: 'Receive a chat room (message:delta …) after proving the chat is yours',
    },
    {
      event: 'chat:leave',
      operation: 'leaveChat',
      auth: 'user',
      leave: (_input, out) => `chat:${(out as { chatId: string }).chatId}`,
    },
  ],
});
