// History: where messages live. Transcript paging, the keyword index over a user's own messages
// (search with highlights), export (JSON, Markdown) and conversation analytics. The chat turn
// (`messages`) writes here: the user message, the assistant message while it streams, its final state.
import { z } from 'zod';
import { defineContract, downloadOperation, operation } from '../../kernel/contract/index.js';
import { chatView } from '../chats/contract.js';

export const messageRole = z.enum(['user', 'assistant', 'tool', 'system']);
export const messageStatus = z.enum(['complete', 'streaming', 'stopped', 'failed']);
export const finalStatus = z.enum(['complete', 'stopped', 'failed']);

export const usageView = z.object({
  promptTokens: z.number().int().min(0),
  completionTokens: z.number().int().min(0),
  timeToFirstTokenMs: z.number().min(0),
  durationMs: z.number().min(0),
});

export const citationView = z.object({
  sourceType: z.enum(['document', 'fact', 'message']),
  sourceId: z.string(),
  title: z.string(),
  snippet: z.string(),
  score: z.number(),
});

export const toolCallView = z.object({
  id: z.string(),
  tool: z.string(),
  arguments: z.record(z.string(), z.unknown()),
  status: z.string(),
  result: z.unknown().optional(),
});

export const messageView = z.object({
  id: z.string(),
  chatId: z.string(),
  role: messageRole,
  content: z.string(),
  status: messageStatus,
  createdAt: z.string(),
  /** The turn that wrote it (the chat-turn saga's id). */
  turnId: z.string().optional(),
  model: z.string().optional(),
  citations: z.array(citationView).optional(),
  toolCalls: z.array(toolCallView).optional(),
  usage: usageView.optional(),
  error: z.string().optional(),
  warnings: z.array(z.string()).optional(),
  /** Set on an assistant answer that a regeneration replaced: the id of the new answer. */
  supersededBy: z.string().optional(),
});
export type MessageView = z.infer<typeof messageView>;

const id = z.string().trim().min(1).max(100);
/** Generous: `messages.maxContentChars` is the usual, lower limit of what users send. */
const CONTENT_MAX = 2_000_000;

const page = {
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
};

const newMessage = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,100}$/),
  chatId: id,
  role: messageRole,
  content: z.string().max(CONTENT_MAX),
  status: messageStatus,
  createdAt: z.iso.datetime(),
  turnId: z.string().max(200).optional(),
  model: z.string().max(200).optional(),
});

export const analyticsView = z.object({
  scope: z.enum(['own', 'all']),
  from: z.string(),
  to: z.string(),
  days: z.array(z.object({ date: z.string(), turns: z.number().int(), messages: z.number().int() })),
  messages: z.number().int(),
  turns: z.number().int(),
  /** Final states of the assistant answers. */
  outcomes: z.object({ complete: z.number().int(), stopped: z.number().int(), failed: z.number().int() }),
  averageResponseMs: z.number().nullable(),
  p95ResponseMs: z.number().nullable(),
  averageTimeToFirstTokenMs: z.number().nullable(),
  tokens: z.object({ prompt: z.number().int(), completion: z.number().int() }),
  models: z.array(z.object({ model: z.string(), turns: z.number().int() })),
});

export const historyContract = defineContract({
  id: 'history',
  summary: 'Message persistence, transcripts, keyword search over your own messages, export and analytics.',
  operations: {
    appendMessage: operation({
      input: z.object({ message: newMessage }),
      output: messageView,
      idempotent: true,
      summary: 'Stores a new message of the caller (the same id again answers the stored one)',
    }),
    saveProgress: operation({
      input: z.object({ id, content: z.string().max(CONTENT_MAX) }),
      output: z.object({ saved: z.boolean() }),
      idempotent: true,
      summary: 'The text so far of a streaming message (ignored once the message is final)',
    }),
    finishMessage: operation({
      input: z.object({
        id,
        status: finalStatus,
        content: z.string().max(CONTENT_MAX),
        model: z.string().max(200).optional(),
        usage: usageView.optional(),
        error: z.string().max(2000).optional(),
        citations: z.array(citationView).max(100).optional(),
        toolCalls: z.array(toolCallView).max(100).optional(),
        warnings: z.array(z.string().max(2000)).max(20).optional(),
      }),
      output: z.object({ message: messageView, messageCount: z.number().int(), applied: z.boolean() }),
      idempotent: true,
      summary: 'Ends a streaming message (a final one stays as it is); answers the chat message count',
    }),
    supersedeMessage: operation({
      input: z.object({ id, by: id }),
      output: messageView,
      idempotent: true,
      summary: 'Marks an assistant answer as replaced by a newer one',
    }),
    getMessage: operation({ input: z.object({ id }), output: messageView, idempotent: true }),
    listMessages: operation({
      input: z.object({ chatId: id, ...page, order: z.enum(['asc', 'desc']).default('asc') }),
      output: z.object({ items: z.array(messageView), nextCursor: z.string().nullable() }),
      idempotent: true,
      summary: "A chat's transcript, oldest first (or newest first with order=desc), paged",
    }),
    recentForPrompt: operation({
      input: z.object({ chatId: id, maxChars: z.number().int().min(1).max(1_000_000_000) }),
      output: z.object({ items: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.string() })) }),
      idempotent: true,
      summary:
        "The newest messages of a chat a model's prompt can use (user and assistant, complete or stopped, not replaced, with text), newest first, until their text passes maxChars; only the caller's own",
    }),
    exportChat: operation({
      input: z.object({ id, format: z.enum(['json', 'markdown']).default('json') }),
      output: z.object({
        format: z.enum(['json', 'markdown']),
        filename: z.string(),
        exportedAt: z.string(),
        chat: chatView,
        /** format=json: every message, oldest first. */
        messages: z.array(messageView).optional(),
        /** format=markdown: the transcript as a Markdown document. */
        content: z.string().optional(),
      }),
      idempotent: true,
      timeoutMs: 30_000,
    }),
    downloadExport: downloadOperation({
      input: z.object({ id, format: z.enum(['json', 'markdown']).default('json') }),
      timeoutMs: 30_000,
      mediaTypes: ['application/json', 'text/markdown'],
      summary: 'The export as a file (Content-Disposition: attachment): JSON or Markdown',
    }),
    searchMessages: operation({
      input: z.object({
        q: z.string().trim().min(1).max(500),
        chatId: id.optional(),
        limit: z.coerce.number().int().min(1).max(100).default(20),
      }),
      output: z.object({
        items: z.array(z.object({ message: messageView, chatId: z.string(), chatTitle: z.string().nullable(), highlight: z.string(), score: z.number() })),
      }),
      idempotent: true,
      summary: 'Ranked keyword search over your own messages: words, "phrases", prefix*',
    }),
    conversationAnalytics: operation({
      input: z.object({ scope: z.enum(['own', 'all']).default('own'), days: z.coerce.number().int().min(1).max(365).default(30) }),
      output: analyticsView,
      idempotent: true,
      timeoutMs: 30_000,
      summary: 'Turns and messages per day, response times, tokens and models (admins: scope=all)',
    }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'not_found'],
  routes: [
    { method: 'GET', path: '/messages/:chatId', operation: 'listMessages', auth: 'user' },
    { method: 'GET', path: '/history/:chatId', operation: 'listMessages', auth: 'user' },
    { method: 'GET', path: '/chats/:id/export', operation: 'downloadExport', auth: 'user' },
    { method: 'GET', path: '/search/messages', operation: 'searchMessages', auth: 'user' },
    { method: 'GET', path: '/analytics/conversations', operation: 'conversationAnalytics', auth: 'user' },
  ],
});
