// A test AutoBot hosting the conversation modules (config, health, llm, chats, history, messages) with
// the stand-in credentials (alice and an admin), pointed at a fake Ollama; and helpers the chat tests
// share: acting as a user, waiting for a turn to end. `search` (a chat with knowledge asks it) is known
// but hosted only with `knowledge: true`, with everything it builds on; elsewhere a chat with knowledge
// meets a search that runs nowhere, and answers without sources.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import type { AnyModule } from '../../../src/kernel/module/define-module.js';
import { browserModule } from '../../../src/modules/browser/module.js';
import { chatsModule } from '../../../src/modules/chats/module.js';
import { configModule } from '../../../src/modules/config/module.js';
import { healthModule } from '../../../src/modules/health/module.js';
import { historyContract, type MessageView } from '../../../src/modules/history/contract.js';
import { historyModule } from '../../../src/modules/history/module.js';
import { llmModule } from '../../../src/modules/llm/module.js';
import { messagesModule } from '../../../src/modules/messages/module.js';
import { terminalModule } from '../../../src/modules/terminal/module.js';
import { searchModule } from '../../../src/modules/search/module.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { startFakeOllama, type FakeOllama } from '../../support/fake-ollama.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { searchCatalogue } from '../search/support/search-app.js';

// terminal and browser: the chat's tools (run_command, read_file, fetch_page); browser starts Chromium
// only when a page is read.
const conversationModules: readonly AnyModule[] = [configModule, healthModule, llmModule, chatsModule, historyModule, messagesModule, terminalModule, browserModule];
/** What a chat app hosts (AUTOBOT_MODULES) unless told otherwise. */
export const CONVERSATION_MODULES = conversationModules.map((m) => m.contract.id).join(',');
/** The modules a chat app knows: the conversation modules, and search, reached where it is hosted. */
export const chatCatalogue: readonly AnyModule[] = [...conversationModules, searchModule];
/** The conversation modules with search hosted too, and what it builds on (documents, embeddings, knowledge, …). */
export function knowledgeChatCatalogue(): AnyModule[] {
  const retrieval = searchCatalogue();
  return [...retrieval, ...conversationModules.filter((m) => !retrieval.some((r) => r.contract.id === m.contract.id))];
}

export function startChatApp(
  redisUrl: string,
  ollamaUrl: string,
  opts: { env?: Record<string, string>; catalogue?: readonly AnyModule[]; knowledge?: boolean } = {},
): Promise<TestApp> {
  const hosted: Record<string, string> = opts.knowledge || opts.catalogue ? {} : { AUTOBOT_MODULES: CONVERSATION_MODULES };
  return startTestApp({
    redisUrl,
    catalogue: opts.catalogue ?? (opts.knowledge ? knowledgeChatCatalogue() : chatCatalogue),
    env: { OLLAMA_URL: ollamaUrl, ...hosted, ...opts.env },
    sagaLease: { lockDurationMs: 2000, stalledIntervalMs: 500 },
  });
}

export interface ChatSuite {
  redis: TestRedis;
  fake: FakeOllama;
  app: TestApp;
}

/**
 * Registers a test file's hooks: a private Redis, a fake Ollama and a chat app on them, handed to
 * `onReady` once started, stopped after the file (`beforeClose` first, if given).
 */
export function chatAppSuite(onReady: (s: ChatSuite) => void, opts: { beforeClose?: () => void | Promise<void> } = {}): void {
  let s: Partial<ChatSuite> = {};
  beforeAll(async () => {
    const redis = await startTestRedis();
    s.redis = redis;
    const fake = await startFakeOllama();
    s.fake = fake;
    s.app = await startChatApp(redis.url, fake.url);
    onReady(s as ChatSuite);
  });
  afterAll(async () => {
    await opts.beforeClose?.();
    await s.app?.stop();
    await s.fake?.close();
    await s.redis?.stop();
    s = {};
  });
}

/** Runs `fn` as `actor`, as the gateway does after authenticating a request. */
export function as<T>(actor: Actor, fn: () => Promise<T>): Promise<T> {
  return runWithContext({ requestId: randomUUID(), actor }, fn);
}

export interface Refusal {
  code: string;
  message: string;
  details?: unknown;
}

export async function refusal(call: Promise<unknown>): Promise<Refusal> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err: err as Refusal }),
  );
  if (outcome.ok) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value)}`);
  return outcome.err;
}

/** Polls the transcript until `messageId` is final. */
export async function waitForFinal(history: Port<typeof historyContract>, actor: Actor, messageId: string, timeoutMs = 10_000): Promise<MessageView> {
  const until = Date.now() + timeoutMs;
  let last: MessageView | undefined;
  while (Date.now() < until) {
    last = await as(actor, () => history.getMessage({ id: messageId })).catch(() => undefined);
    if (last && last.status !== 'streaming') return last;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`message ${messageId} not final within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

export async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
