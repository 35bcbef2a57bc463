// Large language models behind one door: Ollama hosts (several, from OLLAMA_URL) with health probes,
// least-busy routing, failover before the first token, and cancellation that closes the request to
// Ollama when the caller stops. Chat turns stream `generate`; titles and REST use `complete`.
import { z } from 'zod';
import { defineContract, operation, streamOperation } from '../../kernel/contract/index.js';

/** Hard ceilings of the wire schema; the runtime setting `maxPromptChars` is the usual, lower limit. */
export const MAX_MESSAGES = 2_000;
export const MAX_CONTENT_CHARS = 2_000_000;

const modelName = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/, 'a model name like mistral:7b-instruct');

export const toolCall = z.object({
  name: z.string().min(1).max(200),
  arguments: z.record(z.string(), z.unknown()),
});

export const chatMessage = z.object({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string().max(MAX_CONTENT_CHARS),
  /** Calls the assistant asked for in this message (assistant messages only). */
  toolCalls: z.array(toolCall).max(100).optional(),
  /** Which tool produced this result (tool messages only). */
  toolName: z.string().max(200).optional(),
});

export const toolDefinition = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().min(1).max(200),
    description: z.string().max(10_000).optional(),
    /** JSON Schema of the arguments. */
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});

/** Ollama model options (temperature, num_ctx, top_p, seed, …), merged over `llm.defaultOptions`. */
const modelOptions = z.record(z.string(), z.unknown());

export const usage = z.object({
  promptTokens: z.number().int().min(0),
  completionTokens: z.number().int().min(0),
  timeToFirstTokenMs: z.number().min(0),
  durationMs: z.number().min(0),
});

export const generateInput = z.object({
  model: modelName.optional(),
  messages: z.array(chatMessage).min(1).max(MAX_MESSAGES),
  options: modelOptions.optional(),
  tools: z.array(toolDefinition).max(128).optional(),
});

/**
 * A generation as it streams: text deltas, tool calls the model asks for, and one final `done`.
 * A failure after the first delta ends the stream with an error whose `details.partial` holds the text
 * produced so far (the caller has also received it as deltas); nothing is retried after that point.
 */
export const generateChunk = z.discriminatedUnion('type', [
  z.object({ type: z.literal('delta'), delta: z.string() }),
  z.object({ type: z.literal('toolCalls'), toolCalls: z.array(toolCall) }),
  z.object({
    type: z.literal('done'),
    model: z.string(),
    /** The Ollama host that answered (its URL without credentials). */
    host: z.string(),
    /** Why the model stopped: `stop`, `length`, … as Ollama says. */
    doneReason: z.string().optional(),
    usage,
  }),
]);

const completionInputShape = {
  messages: z.array(chatMessage).min(1).max(MAX_MESSAGES).optional(),
  /** A single user prompt, as a shortcut for `messages: [{role: 'user', content: prompt}]`. */
  prompt: z.string().min(1).max(MAX_CONTENT_CHARS).optional(),
  model: modelName.optional(),
  options: modelOptions.optional(),
};

function messagesOrPrompt(v: { messages?: unknown; prompt?: unknown }, ctx: z.RefinementCtx): void {
  if ((v.messages === undefined) === (v.prompt === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['messages'], message: 'give either messages or prompt' });
  }
}

export const completeInput = z.object(completionInputShape).superRefine(messagesOrPrompt);

export const completion = z.object({
  content: z.string(),
  model: z.string(),
  host: z.string(),
  toolCalls: z.array(toolCall).optional(),
  doneReason: z.string().optional(),
  usage,
});

/** `POST /llm/completion` body: `stream: true` answers NDJSON, otherwise one JSON completion. */
export const completionRequest = z
  .object({ ...completionInputShape, stream: z.boolean().optional() })
  .superRefine(messagesOrPrompt);

/** NDJSON lines of `POST /llm/completion` with `stream: true`: `{delta}` lines, then `{done: true, …}`. */
export const completionStreamChunk = z.union([
  z.object({ delta: z.string() }),
  z.object({ toolCalls: z.array(toolCall) }),
  z.object({ done: z.literal(true), model: z.string(), host: z.string(), doneReason: z.string().optional(), usage }),
]);

export const embedInput = z.object({
  input: z.union([z.string().max(MAX_CONTENT_CHARS), z.array(z.string().max(MAX_CONTENT_CHARS)).min(1).max(2_048)]),
  model: modelName.optional(),
});

export const embedOutput = z.object({
  model: z.string(),
  dimensions: z.number().int().min(0),
  embeddings: z.array(z.array(z.number())),
});

export const modelView = z.object({
  id: z.string(),
  provider: z.literal('ollama'),
  host: z.string(),
  size: z.number().optional(),
  loaded: z.boolean().optional(),
  family: z.string().optional(),
  parameterSize: z.string().optional(),
  quantization: z.string().optional(),
  modifiedAt: z.string().optional(),
});

export const hostView = z.object({
  url: z.string(),
  status: z.enum(['up', 'down', 'unknown']),
  /** Circuit breaker: `open` refuses requests until a trial succeeds. */
  breaker: z.enum(['closed', 'open', 'halfOpen']),
  inFlight: z.number().int().min(0),
  version: z.string().nullable(),
  models: z.array(z.string()),
  loaded: z.array(z.string()),
  lastProbeAt: z.string().nullable(),
  lastError: z.string().nullable(),
});

export const providerView = z.object({
  id: z.literal('ollama'),
  status: z.enum(['up', 'degraded', 'down']),
  hosts: z.array(hostView),
});

export const llmSettings = z.object({
  defaultModel: z.string().min(1).max(200).default('mistral:7b-instruct').describe('Model used when a call names none'),
  defaultEmbeddingModel: z.string().min(1).max(200).default('nomic-embed-text').describe('Model `embed` uses when a call names none'),
  firstTokenTimeoutMs: z
    .number()
    .int()
    .min(100)
    .max(900_000)
    .default(120_000)
    .describe('Longest wait for the first token (includes loading the model); past it the next host is tried'),
  requestTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(600_000).describe('Longest whole generation'),
  defaultOptions: modelOptions.default({}).describe('Ollama options applied to every call unless the call sets them'),
  keepAlive: z.string().max(20).optional().describe('How long Ollama keeps a model loaded after a call (e.g. "5m"); Ollama decides when unset'),
  contextLengthFallback: z
    .number()
    .int()
    .min(256)
    .max(10_000_000)
    .default(4_096)
    .describe('Context window assumed when /api/show does not tell'),
  maxPromptChars: z.number().int().min(1_000).max(MAX_CONTENT_CHARS).default(500_000).describe('Largest prompt (all messages together)'),
  probeIntervalMs: z.number().int().min(200).max(600_000).default(10_000).describe('How often each Ollama host is probed'),
  breakerResetMs: z.number().int().min(100).max(600_000).default(15_000).describe('How long an open circuit breaker refuses a host before a trial'),
  breakerFailures: z.number().int().min(1).max(100).default(3).describe('Failures in a row that open a host\'s circuit breaker'),
});

export type LlmSettings = z.output<typeof llmSettings>;

export const llmContract = defineContract({
  id: 'llm',
  summary: 'Ollama hosts with health, least-busy routing, failover before the first token, streaming and cancellation.',
  operations: {
    generate: streamOperation({
      input: generateInput,
      chunk: generateChunk,
      // The first chunk may wait for a model to load; the module applies its own first-token timeout.
      timeoutMs: 900_000,
      summary: 'Streams a chat completion: deltas, tool calls, then usage; aborting closes the Ollama request',
    }),
    complete: operation({
      input: completeInput,
      output: completion,
      timeoutMs: 900_000,
      summary: 'A whole chat completion at once (titles, REST)',
    }),
    completeStream: streamOperation({
      input: completionRequest,
      chunk: completionStreamChunk,
      timeoutMs: 900_000,
      summary: 'The REST completion as NDJSON: {delta} lines, then {done: true, usage}',
    }),
    describeModel: operation({
      input: z.object({ model: modelName.optional() }),
      output: z.object({ model: z.string(), contextLength: z.number().int().min(1), capabilities: z.array(z.string()) }),
      idempotent: true,
      timeoutMs: 15_000,
      summary: 'Context window and capabilities (completion, tools, embedding, vision…) of a model, from /api/show',
    }),
    embed: operation({
      input: embedInput,
      output: embedOutput,
      idempotent: true,
      timeoutMs: 120_000,
      summary: 'Embeddings from Ollama /api/embed, routed over hosts like chat',
    }),
    listModels: operation({
      input: z.object({}),
      output: z.object({ items: z.array(modelView), nextCursor: z.null() }),
      idempotent: true,
      summary: 'Models across providers and hosts, as the last probes saw them',
    }),
    listProviders: operation({
      input: z.object({}),
      output: z.object({ items: z.array(providerView) }),
      idempotent: true,
      summary: 'Providers and hosts with health, in-flight requests and circuit-breaker state',
    }),
  },
  errors: ['invalid_input', 'unavailable', 'timeout', 'payload_too_large'],
  settings: llmSettings,
  routes: [
    {
      method: 'POST',
      path: '/llm/completion',
      operation: 'complete',
      auth: 'user',
      rateLimit: 'expensive',
      // `stream: true` answers the same request as NDJSON through `completeStream`.
      stream: { operation: 'completeStream', when: (req) => (req.body as { stream?: unknown } | undefined)?.stream === true },
      input: (req) => {
        const { stream: _stream, ...rest } = (req.body ?? {}) as Record<string, unknown>;
        return rest;
      },
    },
    { method: 'POST', path: '/llm/embedding', operation: 'embed', auth: 'user', rateLimit: 'expensive' },
    { method: 'GET', path: '/llm/models', operation: 'listModels', auth: 'user' },
    { method: 'GET', path: '/llm/providers', operation: 'listProviders', auth: 'admin' },
  ],
});
