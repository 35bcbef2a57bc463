// Messages: a user's message becomes a chat turn. The turn is a durable saga (save the user message,
// create the assistant message `streaming`, generate, complete, update the chat, title a new chat) whose
// `generate` step streams the model's answer live to the chat's room (socket.io `message:delta`) and,
// when asked, as server-sent events; Stop cancels the model call wherever it runs.
import { z } from 'zod';
import { defineContract, operation, streamOperation } from '../../kernel/contract/index.js';
import { finalStatus, messageView, toolCallView, usageView } from '../history/contract.js';
import { retrievedSource } from '../search/contract.js';

/** Hard ceiling of the wire schema; `messages.maxContentChars` (413 above it) is the real limit. */
export const CONTENT_WIRE_MAX = 1_000_000;
/** The generate step's own deadline, and the ceiling the operation declares. */
export const GENERATE_TIMEOUT_MS = 3_600_000;

const id = z.string().trim().min(1).max(100);

export const sendInput = z.object({
  chatId: id,
  content: z.string().max(CONTENT_WIRE_MAX),
  clientMessageId: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : -')
    .optional(),
});

export const sendOutput = z.object({ turnId: z.string(), userMessage: messageView, assistantMessageId: z.string() });

/** One server-sent event of a turn: the socket.io event name and its payload. */
export const turnEvent = z.object({ event: z.string(), data: z.unknown() });

export const turnInput = z.object({
  turnId: z.string(),
  chatId: z.string(),
  userMessage: z.object({ id: z.string(), content: z.string(), createdAt: z.string() }).optional(),
  assistantMessageId: z.string(),
  assistantCreatedAt: z.string(),
  /** Regeneration: the answer this one replaces. */
  replaces: z.string().optional(),
  /** The chat had no title when the turn began: title it once an answer completes. */
  titleNeeded: z.boolean(),
  /** Someone follows the turn as server-sent events: publish its events for them too. */
  sse: z.boolean(),
  /** The chat answers from the user's documents and facts: a `retrieve` step runs before `generate`. Absent in turns journaled before it existed. */
  useKnowledge: z.boolean().default(false),
  /**
   * The chat's model and system prompt when the turn began (as useKnowledge): generate builds the prompt
   * without reading the chat again. Absent in turns journaled before it existed: generate reads the chat.
   */
  chat: z.object({ model: z.string().nullable(), systemPrompt: z.string().nullable() }).optional(),
});
export type TurnInput = z.infer<typeof turnInput>;

/** The retrieve step's outcome, journaled: the sources the prompt numbers, or why there are none. */
export const retrieveOutcome = z.object({
  sources: z.array(retrievedSource),
  /** Retrieval failed (search unreachable, …): the turn answers without sources and says so. */
  warning: z.string().optional(),
  /** Search answered from keyword search alone (embeddings unreachable). */
  degraded: z.literal(true).optional(),
});
export type RetrieveOutcome = z.infer<typeof retrieveOutcome>;

/** What generate is given: the turn and, with knowledge, the retrieved sources (the prompt quotes them as [n]). */
export const generateInput = turnInput.extend({ sources: z.array(retrievedSource).max(100).optional() });
export type GenerateInput = z.infer<typeof generateInput>;

export const generateOutcome = z.object({
  status: finalStatus,
  content: z.string(),
  model: z.string().optional(),
  usage: usageView.optional(),
  error: z.string().optional(),
  /** Deltas pushed (the last seq). */
  deltas: z.number().int(),
  /** The tools the model called while answering, with their status and result (the tool loop). */
  toolCalls: z.array(toolCallView).max(100).optional(),
});
export type GenerateOutcome = z.infer<typeof generateOutcome>;

export const messagesSettings = z.object({
  maxContentChars: z.number().int().min(1).max(CONTENT_WIRE_MAX).default(32_000).describe('Longest message a user may send (413 above)'),
  defaultSystemPrompt: z
    .string()
    .max(16_000)
    .default('You are AutoBot, a helpful, precise assistant. Answer clearly; say so when you do not know.')
    .describe('System prompt of chats that set none'),
  replyReserveTokens: z.number().int().min(16).max(1_000_000).default(1024).describe("Part of the model's context window kept free for the answer"),
  charsPerToken: z.number().min(1).max(10).default(3.5).describe('Estimate of characters per token when fitting history into the context window'),
  progressSaveMs: z.number().int().min(50).max(500).default(500).describe('The text of a streaming answer is saved at least this often'),
  titleMaxChars: z.number().int().min(10).max(200).default(60).describe('Longest generated chat title'),
  titleTimeoutMs: z.number().int().min(1000).max(300_000).default(20_000).describe('How long to wait for the model to name a new chat before using the start of its first message'),
  toolsEnabled: z.boolean().default(true).describe('Offer tools (run_command, fetch_page, search_knowledge, read_file) to models whose capabilities include tools'),
  maxToolRounds: z.number().int().min(0).max(20).default(5).describe('Rounds of tool calls per answer; past them the model is asked once more, without tools, to answer'),
  toolResultMaxChars: z.number().int().min(500).max(200_000).default(16_000).describe('Longest tool result given back to the model and kept on the message (the rest is cut)'),
});
export type MessagesSettings = z.output<typeof messagesSettings>;

const accepted = z.object({ turnId: z.string(), assistantMessageId: z.string() });
const step = <I extends z.ZodType, O extends z.ZodType>(input: I, output: O, summary: string, timeoutMs?: number) =>
  operation({ input, output, idempotent: true, summary, ...(timeoutMs ? { timeoutMs } : {}) });

export const messagesContract = defineContract({
  id: 'messages',
  summary: 'Chat turns: validation, the durable chat-turn saga, live streaming over socket.io and SSE, stop and regenerate.',
  operations: {
    sendMessage: operation({
      input: sendInput,
      output: sendOutput,
      summary: 'Starts a turn (202); the answer streams to the chat room. The same clientMessageId answers the same turn',
    }),
    sendMessageStream: streamOperation({
      input: sendInput,
      chunk: turnEvent,
      timeoutMs: GENERATE_TIMEOUT_MS,
      summary: 'sendMessage, answered as the turn’s events (server-sent events)',
    }),
    stopTurn: operation({
      input: z.object({ chatId: id }),
      output: z.object({ chatId: z.string(), turnId: z.string().nullable(), stopping: z.boolean() }),
      idempotent: true,
      summary: "Cancels the chat's running generation; the answer ends `stopped` with the text so far",
    }),
    regenerate: operation({
      input: z.object({ chatId: id }),
      output: accepted,
      summary: 'A new answer to the last user message; the previous answer stays, marked supersededBy',
    }),
    // The chat-turn saga's steps (called by the orchestrator with the idempotency key <turnId>:<step>).
    saveUserMessage: step(turnInput, messageView, 'Turn step: stores the user message and announces it'),
    createAssistantMessage: step(turnInput, messageView, 'Turn step: the assistant message, `streaming`, announced'),
    abandonTurn: step(turnInput, z.null(), 'Turn compensation: a still-streaming answer ends `failed`; the chat is free again'),
    retrieve: step(turnInput, retrieveOutcome, 'Turn step (chats with knowledge): the sources for the prompt, numbered, from hybrid search with the question', 60_000),
    generate: step(generateInput, generateOutcome, 'Turn step: streams the model’s answer to the chat room, saving the text as it grows', GENERATE_TIMEOUT_MS),
    completeTurn: step(
      z.object({ turn: turnInput, outcome: generateOutcome, retrieval: retrieveOutcome.optional() }),
      z.object({ status: finalStatus, messageCount: z.number().int(), lastActivityAt: z.string() }),
      'Turn step: the answer’s final state, announced; the chat is free for the next turn',
    ),
    titleChat: step(turnInput, z.object({ title: z.string(), source: z.enum(['model', 'message']), applied: z.boolean() }), 'Turn step: names a new chat', 60_000),
  },
  errors: ['invalid_input', 'unauthenticated', 'not_found', 'conflict', 'payload_too_large', 'unavailable'],
  settings: messagesSettings,
  routes: [
    { method: 'POST', path: '/messages', operation: 'sendMessage', auth: 'user', status: 202, sse: 'sendMessageStream' },
    { method: 'POST', path: '/messages/:chatId/stop', operation: 'stopTurn', auth: 'user', status: 202 },
    { method: 'POST', path: '/messages/:chatId/regenerate', operation: 'regenerate', auth: 'user', status: 202 },
  ],
  sockets: [
    {
      event: 'message:send',
      operation: 'sendMessage',
      auth: 'user',
      // sendMessage proved the chat is the caller's: the socket follows it from now on.
      join: (_input, out) => `chat:${(out as { userMessage: { chatId: string } }).userMessage.chatId}`,
    },
    { event: 'message:stop', operation: 'stopTurn', auth: 'user' },
  ],
});
