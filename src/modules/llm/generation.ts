// One generation with failover. Hosts are tried in routing order until one produces a first token:
// a connection error, a 5xx, an error line or a first-token timeout before that moves on to the next
// host. After the first token nothing is retried (the reply would repeat): a failure ends the stream
// with an error carrying the text produced so far. Aborting the caller's signal closes the request to
// Ollama at once.
import type { ChatRequest, ChatResponse, Message, Tool } from 'ollama';
import type { z } from 'zod';
import { ContractError, isContractError } from '../../kernel/contract/errors.js';
import { afterQueuedWork, QUEUED_WORK_DONE } from '../../kernel/time/after-queued-work.js';
import type { generateChunk, generateInput, LlmSettings } from './contract.js';
import type { HostPool } from './host-pool.js';
import type { ErrorReason, LlmMetrics } from './llm-metrics.js';
import { canonicalModel, describeFailure, NotHostFault, type OllamaHost, withOllamaSignal } from './ollama-host.js';

export type GenerateInput = z.output<typeof generateInput>;
export type GenerateChunk = z.input<typeof generateChunk>;

type Stream = AsyncIterator<ChatResponse>;

class AttemptFailure extends Error {
  constructor(
    readonly reason: ErrorReason,
    message: string,
  ) {
    super(message);
  }
}

/** What stopped an attempt, from the error and which of our signals fired. */
function classify(err: unknown, why: { caller: AbortSignal; firstToken: AbortSignal; request: AbortSignal }): AttemptFailure | ContractError {
  if (why.caller.aborted) return new ContractError('unavailable', 'cancelled by the caller', { cancelled: true });
  if (why.firstToken.aborted) return new AttemptFailure('first_token_timeout', 'no first token in time');
  if (why.request.aborted) return new AttemptFailure('request_timeout', 'the generation took longer than llm.requestTimeoutMs');
  const status = (err as { status_code?: unknown }).status_code;
  if (typeof status === 'number') {
    const message = (err as { error?: string }).error ?? `HTTP ${status}`;
    if (status >= 500) return new AttemptFailure('http_5xx', `Ollama answered ${status}: ${message}`);
    // The host lost the model since its last probe: another host may still have it.
    if (status === 404) return new AttemptFailure('model_missing', `the host does not have the model: ${message}`);
    return new ContractError('invalid_input', `Ollama refused the request: ${message}`, [{ path: 'model', message }]);
  }
  if (err instanceof Error && err.message.startsWith('Did not receive done')) return new AttemptFailure('connection', 'the stream from Ollama broke off');
  if (err instanceof TypeError || (err as { cause?: unknown }).cause) return new AttemptFailure('connection', `cannot reach Ollama: ${describeFailure(err)}`);
  // An `{"error": …}` line in the stream: Ollama failed while generating (runner crashed, out of memory).
  return new AttemptFailure('http_5xx', `Ollama failed: ${err instanceof Error ? err.message : String(err)}`);
}

export function toOllamaMessages(messages: GenerateInput['messages']): Message[] {
  return messages.map((m) => ({
    role: m.role,
    content: m.content,
    ...(m.toolCalls?.length ? { tool_calls: m.toolCalls.map((c) => ({ function: { name: c.name, arguments: c.arguments } })) } : {}),
    ...(m.toolName ? { tool_name: m.toolName } : {}),
  }));
}

export interface GenerationDeps {
  pool: HostPool;
  metrics: LlmMetrics;
  settings: () => LlmSettings;
}

/** A meaningful chunk: text, tool calls, or the end (a reply may be empty). */
function meaningful(part: ChatResponse): boolean {
  return part.done || part.message?.content !== '' || (part.message?.tool_calls?.length ?? 0) > 0;
}

/**
 * Streams one chat completion. `signal` is the caller's (the handler's call signal): aborting it
 * closes the Ollama request within the same tick.
 */
export async function* generate(deps: GenerationDeps, input: GenerateInput, signal: AbortSignal): AsyncGenerator<GenerateChunk> {
  const s = deps.settings();
  const model = input.model ?? s.defaultModel;
  const promptChars = input.messages.reduce((n, m) => n + m.content.length, 0);
  if (promptChars > s.maxPromptChars) {
    throw new ContractError('payload_too_large', `the prompt has ${promptChars} characters; at most ${s.maxPromptChars} (llm.maxPromptChars)`);
  }
  if (signal.aborted) throw new ContractError('unavailable', 'cancelled by the caller', { cancelled: true });
  const started = Date.now();
  const hosts = await deps.pool.route(model);
  const request: ChatRequest & { stream: true } = {
    model,
    messages: toOllamaMessages(input.messages),
    stream: true,
    options: { ...s.defaultOptions, ...(input.options ?? {}) },
    ...(input.tools?.length ? { tools: input.tools as Tool[] } : {}),
    ...(s.keepAlive ? { keep_alive: s.keepAlive } : {}),
  };

  // One controller for the whole request, aborted by the caller, the request timeout, or our own end.
  const requestTimeout = AbortSignal.timeout(s.requestTimeoutMs);
  let lastFailure: AttemptFailure | undefined;
  for (const host of hosts) {
    if (!host.usable()) continue;
    const ac = new AbortController();
    const firstToken = new AbortController();
    const onAbort = () => ac.abort();
    signal.addEventListener('abort', onAbort);
    requestTimeout.addEventListener('abort', onAbort);
    const firstTimer = setTimeout(() => {
      firstToken.abort();
      ac.abort();
    }, s.firstTokenTimeoutMs);
    const why = { caller: signal, firstToken: firstToken.signal, request: requestTimeout };
    host.inFlight++;
    deps.metrics.inFlight.labels(host.label).inc();
    let stream: Stream | undefined;
    let first: ChatResponse | undefined;
    let held: object | undefined;
    try {
      // Up to the first token through the host's breaker: only host faults count against it.
      [stream, first] = await host.attempt(async () => {
        try {
          const it = await withOllamaSignal(ac.signal, () => host.client.chat(request));
          held = it;
          const iterator = it[Symbol.asyncIterator]();
          for (;;) {
            const next = await iterator.next();
            if (next.done) throw new Error('Did not receive done or success response in stream.');
            if (meaningful(next.value)) return [iterator, next.value] as const;
          }
        } catch (err) {
          const failure = classify(err, why);
          // Only failures that say the host is unwell count against its breaker.
          throw failure instanceof AttemptFailure && failure.reason !== 'model_missing' ? failure : new NotHostFault(failure);
        }
      });
    } catch (err) {
      release(host, deps, firstTimer, signal, requestTimeout, onAbort);
      ac.abort();
      if (held) host.client.forget(held);
      const inner = err instanceof NotHostFault ? err.cause : err;
      if (isContractError(inner)) throw inner;
      const failure = inner instanceof AttemptFailure ? inner : new AttemptFailure('breaker_open', 'refused by its circuit breaker');
      if (failure.reason === 'model_missing') host.models.delete(canonicalModel(model));
      deps.metrics.errors.labels(host.label, failure.reason).inc();
      deps.metrics.failovers.labels(host.label).inc();
      host.lastError = failure.message;
      lastFailure = failure;
      // A request that ran out of total time gets no next host.
      if (failure.reason === 'request_timeout') break;
      continue;
    }
    clearTimeout(firstTimer);
    try {
      yield* relay(deps, host, model, stream, first, { started, ac, why, signal, requestTimeout, onAbort });
    } finally {
      if (held) host.client.forget(held);
    }
    return;
  }
  const reason = lastFailure?.reason ?? 'no_host';
  if (reason === 'first_token_timeout' || reason === 'request_timeout') {
    throw new ContractError('timeout', `no Ollama host answered in time (${lastFailure?.message})`, { reason });
  }
  throw new ContractError('unavailable', `no Ollama host could answer: ${lastFailure?.message ?? 'none usable'}`, { reason });
}

function release(host: OllamaHost, deps: GenerationDeps, timer: NodeJS.Timeout, signal: AbortSignal, requestTimeout: AbortSignal, onAbort: () => void) {
  clearTimeout(timer);
  signal.removeEventListener('abort', onAbort);
  requestTimeout.removeEventListener('abort', onAbort);
  host.inFlight--;
  deps.metrics.inFlight.labels(host.label).dec();
}

interface RelayState {
  started: number;
  ac: AbortController;
  why: { caller: AbortSignal; firstToken: AbortSignal; request: AbortSignal };
  signal: AbortSignal;
  requestTimeout: AbortSignal;
  onAbort: () => void;
}

/**
 * After the first token: pass everything on; a failure now ends the reply with what it had. Text parts
 * that arrived together (Ollama's lines from one TCP read) go on as one delta, sent once the read has
 * been handed on and nothing more had arrived: a burst of tokens costs every consumer downstream (a
 * lifted binding's wire, the chat turn, socket.io, Redis) one chunk instead of one per token, and no
 * text waits for a later read.
 */
async function* relay(
  deps: GenerationDeps,
  host: OllamaHost,
  model: string,
  stream: Stream,
  first: ChatResponse,
  st: RelayState,
): AsyncGenerator<GenerateChunk> {
  const firstAt = Date.now();
  deps.metrics.timeToFirstToken.labels(host.label, model).observe((firstAt - st.started) / 1000);
  let text = '';
  /** Text received and not passed on yet, and the moment the read it came in has been handed on. */
  let unsent = '';
  let readDone: ReturnType<typeof afterQueuedWork> | undefined;
  let outcome = 'failed';
  try {
    let part: ChatResponse | undefined = first;
    while (part) {
      const content = part.message?.content ?? '';
      if (content) {
        text += content;
        unsent += content;
      }
      const calls = part.message?.tool_calls;
      if (unsent && (calls?.length || part.done)) {
        yield { type: 'delta', delta: unsent };
        unsent = '';
      }
      if (calls?.length) yield { type: 'toolCalls', toolCalls: calls.map((c) => ({ name: c.function.name, arguments: c.function.arguments ?? {} })) };
      if (part.done) {
        const end = Date.now();
        if (part.eval_count && part.eval_duration) {
          deps.metrics.tokensPerSecond.labels(host.label, model).observe(part.eval_count / (part.eval_duration / 1e9));
        }
        outcome = 'ok';
        yield {
          type: 'done',
          model,
          host: host.label,
          ...(part.done_reason ? { doneReason: part.done_reason } : {}),
          usage: {
            promptTokens: part.prompt_eval_count ?? 0,
            completionTokens: part.eval_count ?? 0,
            timeToFirstTokenMs: firstAt - st.started,
            durationMs: end - st.started,
          },
        };
        return;
      }
      let next: IteratorResult<ChatResponse> | undefined;
      let failure: AttemptFailure | ContractError | undefined;
      try {
        const upcoming = stream.next();
        if (unsent) {
          readDone ??= afterQueuedWork();
          const soon = await Promise.race([upcoming, readDone]);
          if (soon === QUEUED_WORK_DONE) {
            // Nothing more had arrived: the text goes now, and the next part is waited for.
            readDone = undefined;
            yield { type: 'delta', delta: unsent };
            unsent = '';
            next = await upcoming;
          } else next = soon;
        } else next = await upcoming;
      } catch (err) {
        failure = classify(err, st.why);
      }
      if (!next || next.done) {
        // The consumer gets every piece of text that arrived before the failure, then the failure.
        if (unsent) yield { type: 'delta', delta: unsent };
        throw afterFirstToken(deps, host, failure ?? new AttemptFailure('connection', 'the stream from Ollama broke off'), text);
      }
      part = next.value;
    }
  } finally {
    if (outcome !== 'ok' && st.signal.aborted) outcome = 'stopped';
    // Whatever else ends the relay (a failure, the consumer stopping) closes the request to Ollama. After
    // the final line the request is over: aborting it then would only cost work (undici builds an abort
    // error and tears down the body stream for every reply) and could cut a connection still reusable.
    if (outcome !== 'ok') st.ac.abort();
    st.signal.removeEventListener('abort', st.onAbort);
    st.requestTimeout.removeEventListener('abort', st.onAbort);
    host.inFlight--;
    deps.metrics.inFlight.labels(host.label).dec();
    deps.metrics.duration.labels(host.label, model, outcome).observe((Date.now() - st.started) / 1000);
  }
}

function afterFirstToken(deps: GenerationDeps, host: OllamaHost, failure: AttemptFailure | ContractError, partial: string): ContractError {
  if (isContractError(failure)) {
    // Cancelled by the caller: keep its code, add what was produced.
    return new ContractError(failure.code, failure.message, { ...(failure.details as object), partial });
  }
  deps.metrics.errors.labels(host.label, 'after_first_token').inc();
  const code = failure.reason === 'request_timeout' ? 'timeout' : 'unavailable';
  return new ContractError(code, `the reply broke off after ${partial.length} characters: ${failure.message}`, { partial, reason: failure.reason });
}
