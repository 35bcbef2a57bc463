// The messages module's operations: starting a turn (validation, one turn per chat, clientMessageId
// dedupe, the saga), following it as server-sent events, Stop and regenerate, and the turn's steps.
// Every realtime event goes to the chat's room (all the owner's tabs that joined it) and, for a turn
// followed over SSE, to the turn's channel as well, with the same names and payloads.
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { CallInfo, Handlers, Port } from '../../kernel/contract/define.js';
import { ContractError, isContractError } from '../../kernel/contract/errors.js';
import { currentContext, withContext, type Actor } from '../../kernel/context/request-context.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import { ModuleLogger, ModuleSagasToken, RealtimeToken, type ModuleSagas } from '../../kernel/module/tokens.js';
import type { Realtime } from '../../kernel/realtime/realtime.js';
import { chatsContract, type ChatView } from '../chats/contract.js';
import { configContract } from '../config/contract.js';
import { historyContract, type MessageView } from '../history/contract.js';
import { browserContract } from '../browser/contract.js';
import { llmContract } from '../llm/contract.js';
import { searchContract } from '../search/contract.js';
import { terminalContract } from '../terminal/contract.js';
import { CHAT_TURN_SAGA } from './chat-turn-saga.js';
import { cleanContent } from './content.js';
import { messagesContract, messagesSettings, type GenerateInput, type GenerateOutcome, type RetrieveOutcome, type TurnInput } from './contract.js';
import { newId } from './ids.js';
import { ProgressSaver } from './progress-saver.js';
import { buildPrompt, CITE_INSTRUCTION, estimateTokens, withSources } from './prompt.js';
import { cleanTitle, TITLE_INSTRUCTION, titleFromMessage } from './title.js';
import { TurnChannels } from './turn-channels.js';
import { TurnStore, turnChannel } from './turn-store.js';
import { ApprovalWaits } from './approval-waits.js';
import { ToolJournal } from './tool-journal.js';
import { AnswerState, ToolLoop } from './tool-loop.js';
import { ToolRunner } from './tools.js';

type UserActor = Extract<Actor, { type: 'user' }>;
type SendInput = { chatId: string; content: string; clientMessageId?: string };
type SendAnswer = { turnId: string; userMessage: MessageView; assistantMessageId: string };
type TurnEvent = { event: string; data: unknown };
/** What a prompt needs of its chat. */
type PromptChat = Pick<ChatView, 'id' | 'model' | 'systemPrompt'>;

function caller(): UserActor {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  return actor;
}

const busy = () => new ContractError('conflict', 'an answer is being generated in this chat: wait for it or stop it first');
const CONTEXT_CACHE_MS = 5 * 60_000;
const INTERRUPTED = 'interrupted: the process writing this answer stopped before it finished; the text so far is kept';

@injectable()
export class MessagesService implements Handlers<typeof messagesContract> {
  readonly settings: SettingsHolder<typeof messagesSettings>;
  private readonly tools: ToolRunner;
  private readonly contextLengths = new Map<string, { contextLength: number; capabilities: string[]; at: number }>();

  constructor(
    @inject(TurnStore) private readonly store: TurnStore,
    @inject(TurnChannels) private readonly channels: TurnChannels,
    @inject(ModuleSagasToken) private readonly sagas: ModuleSagas,
    @inject(RealtimeToken) private readonly realtime: Realtime,
    @inject(ModuleLogger) private readonly logger: Logger,
    @inject(chatsContract.token) private readonly chats: Port<typeof chatsContract>,
    @inject(historyContract.token) private readonly history: Port<typeof historyContract>,
    @inject(llmContract.token) private readonly llm: Port<typeof llmContract>,
    @inject(searchContract.token) private readonly search: Port<typeof searchContract>,
    @inject(configContract.token) config: Port<typeof configContract>,
    @inject(ToolJournal) private readonly journal: ToolJournal,
    @inject(ApprovalWaits) waits: ApprovalWaits,
    @inject(terminalContract.token) terminal: Port<typeof terminalContract>,
    @inject(browserContract.token) browser: Port<typeof browserContract>,
  ) {
    this.settings = new SettingsHolder(messagesSettings, async () => (await config.getModuleSettings({ module: messagesContract.id })).settings, logger);
    this.tools = new ToolRunner({ terminal, browser, search: this.search }, waits);
  }

  // ---- starting and following turns -------------------------------------------------------------

  sendMessage(input: SendInput): Promise<SendAnswer> {
    return this.startTurn(input, false).then((r) => r.answer);
  }

  async *sendMessageStream(input: SendInput, call: CallInfo): AsyncGenerator<TurnEvent> {
    const queue: TurnEvent[] = [];
    let wake: (() => void) | undefined;
    let unlisten: (() => Promise<void>) | undefined;
    // The reader left (or the deadline passed): stop waiting for the next event and unsubscribe now.
    // The turn itself goes on, as it does when a browser tab closes.
    const onAbort = () => wake?.();
    call.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const { answer, existing } = await this.startTurn(input, true, async (turnId) => {
        unlisten = await this.channels.listen(turnChannel(turnId), (raw) => {
          queue.push(JSON.parse(raw) as TurnEvent);
          wake?.();
        });
      });
      yield { event: 'turn:status', data: { ...answer, chatId: input.chatId, status: 'accepted', step: null } };
      if (existing) {
        // A retried send of a turn that was not started over SSE: its current state, then the end.
        const m = await this.history.getMessage({ id: answer.assistantMessageId }).catch(() => undefined);
        if (m) yield m.status === 'failed' ? { event: 'message:failed', data: this.failedPayload(answer.turnId, m) } : { event: m.status === 'streaming' ? 'message:created' : 'message:completed', data: { message: m } };
        return;
      }
      while (!call.signal.aborted) {
        while (queue.length) {
          const ev = queue.shift()!;
          yield ev;
          if (ev.event === 'message:completed' || ev.event === 'message:failed') return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      call.signal.removeEventListener('abort', onAbort);
      await unlisten?.();
    }
  }

  private async startTurn(input: SendInput, sse: boolean, beforeStart?: (turnId: string) => Promise<void>): Promise<{ answer: SendAnswer; existing: boolean }> {
    const user = caller();
    const content = cleanContent(input.content, this.settings.current().maxContentChars);
    const chat = await this.chats.getChat({ id: input.chatId });
    let turnId = newId('t');
    const now = new Date().toISOString();
    const turn: TurnInput = {
      turnId,
      chatId: chat.id,
      userMessage: { id: newId('m'), content, createdAt: now },
      assistantMessageId: newId('m'),
      assistantCreatedAt: now,
      titleNeeded: chat.title === null,
      sse,
      useKnowledge: chat.useKnowledge,
      chat: { model: chat.model, systemPrompt: chat.systemPrompt },
    };
    const answer: SendAnswer = {
      turnId,
      userMessage: { id: turn.userMessage!.id, chatId: chat.id, role: 'user', content, status: 'complete', createdAt: now, turnId },
      assistantMessageId: turn.assistantMessageId,
    };
    // The clientMessageId dedupe, the chat's lock and the saved answer (for retried sends): one script.
    const client = input.clientMessageId ? { userId: user.id, clientId: input.clientMessageId } : undefined;
    const begun = await this.store.begin(chat.id, turnId, answer, client);
    if (begun.result === 'dup') return { answer: await this.answerOf(begun.holder), existing: true };
    if (begun.result === 'busy') throw busy();
    try {
      await beforeStart?.(turnId);
      await this.sagas.start(CHAT_TURN_SAGA, turn, { id: turnId });
      return { answer, existing: false };
    } catch (err) {
      await this.store.release(chat.id, turnId).catch(() => undefined);
      if (input.clientMessageId) await this.store.releaseClientId(user.id, chat.id, input.clientMessageId, turnId).catch(() => undefined);
      turnId = '';
      throw err;
    }
  }

  /** What the first send of a clientMessageId answered (it may still be on its way). */
  private async answerOf(turnId: string): Promise<SendAnswer> {
    for (let i = 0; i < 40; i++) {
      const a = await this.store.answer<SendAnswer>(turnId);
      if (a) return a;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new ContractError('conflict', 'this clientMessageId is being sent right now; try again');
  }

  async stopTurn({ chatId }: { chatId: string }) {
    await this.chats.getChat({ id: chatId });
    const turnId = await this.store.active(chatId);
    if (!turnId) return { chatId, turnId: null, stopping: false };
    await this.store.requestStop(turnId);
    return { chatId, turnId, stopping: true };
  }

  async regenerate({ chatId }: { chatId: string }) {
    const chat = await this.chats.getChat({ id: chatId });
    const recent = await this.history.listMessages({ chatId, order: 'desc', limit: 100 });
    const lastUser = recent.items.find((m) => m.role === 'user');
    if (!lastUser) throw new ContractError('conflict', 'there is no message to answer again in this chat');
    const previous = recent.items.find((m) => m.role === 'assistant' && !m.supersededBy && m.createdAt >= lastUser.createdAt && m.status !== 'streaming');
    const turnId = newId('t');
    if (!(await this.store.lock(chatId, turnId))) throw busy();
    try {
      const turn: TurnInput = {
        turnId,
        chatId,
        assistantMessageId: newId('m'),
        assistantCreatedAt: new Date().toISOString(),
        ...(previous ? { replaces: previous.id } : {}),
        titleNeeded: chat.title === null,
        sse: false,
        useKnowledge: chat.useKnowledge,
        chat: { model: chat.model, systemPrompt: chat.systemPrompt },
      };
      await this.sagas.start(CHAT_TURN_SAGA, turn, { id: turnId });
      return { turnId, assistantMessageId: turn.assistantMessageId };
    } catch (err) {
      await this.store.release(chatId, turnId).catch(() => undefined);
      throw err;
    }
  }

  // ---- the saga's steps --------------------------------------------------------------------------

  private emit(turn: TurnInput, event: string, data: unknown): void {
    this.realtime.toChat(turn.chatId, event, data);
    if (turn.sse) {
      this.store.publish(turnChannel(turn.turnId), JSON.stringify({ event, data })).catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'turn event not published'));
    }
  }

  private status(turn: TurnInput, status: string, step: string | null): void {
    this.emit(turn, 'turn:status', { turnId: turn.turnId, chatId: turn.chatId, status, step });
  }

  private failedPayload(turnId: string, m: MessageView) {
    return { chatId: m.chatId, messageId: m.id, turnId, error: m.error ?? 'the answer failed' };
  }

  async saveUserMessage(turn: TurnInput): Promise<MessageView> {
    const u = turn.userMessage;
    if (!u) throw new ContractError('invalid_input', 'Invalid input: userMessage: required', [{ path: 'userMessage', message: 'required' }]);
    const message = await this.history.appendMessage({
      message: { id: u.id, chatId: turn.chatId, role: 'user', content: u.content, status: 'complete', createdAt: u.createdAt, turnId: turn.turnId },
    });
    this.emit(turn, 'message:created', { message });
    this.status(turn, 'started', 'saveUserMessage');
    return message;
  }

  async createAssistantMessage(turn: TurnInput): Promise<MessageView> {
    const message = await this.history.appendMessage({
      message: { id: turn.assistantMessageId, chatId: turn.chatId, role: 'assistant', content: '', status: 'streaming', createdAt: turn.assistantCreatedAt, turnId: turn.turnId },
    });
    if (turn.replaces) await this.history.supersedeMessage({ id: turn.replaces, by: turn.assistantMessageId });
    this.emit(turn, 'message:created', { message });
    return message;
  }

  async abandonTurn(turn: TurnInput): Promise<null> {
    let m: MessageView | undefined;
    try {
      m = await this.history.getMessage({ id: turn.assistantMessageId });
    } catch (err) {
      if (!(isContractError(err) && err.code === 'not_found')) throw err;
    }
    if (m?.status === 'streaming') {
      const r = await this.history.finishMessage({ id: m.id, status: 'failed', content: m.content, error: 'the answer could not be completed' });
      if (r.applied) this.emit(turn, 'message:failed', this.failedPayload(turn.turnId, r.message));
      this.status(turn, 'failed', 'createAssistantMessage');
    }
    const freed = (await this.store.active(turn.chatId)) === turn.turnId;
    await this.store.release(turn.chatId, turn.turnId);
    if (!m && freed) {
      // The turn failed before its answer existed: clients waiting for this turn must still hear that
      // it ended (once: only the call that freed the chat tells them).
      const error = 'the answer could not be started';
      this.emit(turn, 'message:failed', { chatId: turn.chatId, messageId: turn.assistantMessageId, turnId: turn.turnId, error });
      this.status(turn, 'failed', 'saveUserMessage');
    }
    return null;
  }

  /**
   * The sources of a chat with knowledge: hybrid search with the question (for a regeneration, the last
   * user message) through the search port, as the user, so only their own and shared items can come
   * back. Sources and the citing instruction take at most half of what the answer leaves of the model's
   * window. A search that fails is no failed turn: the answer comes without sources, and says why in
   * its warnings.
   */
  async retrieve(turn: TurnInput): Promise<RetrieveOutcome> {
    this.status(turn, 'retrieving', 'retrieve');
    const question = turn.userMessage?.content ?? (await this.history.listMessages({ chatId: turn.chatId, order: 'desc', limit: 100 })).items.find((m) => m.role === 'user')?.content;
    if (!question?.trim()) return { sources: [] };
    const s = this.settings.current();
    try {
      const chat = await this.chats.getChat({ id: turn.chatId });
      const contextTokens = await this.contextLength(chat.model);
      const reserve = Math.min(s.replyReserveTokens, Math.floor(contextTokens / 2));
      const maxTokens = Math.floor((contextTokens - reserve) / 2) - estimateTokens(CITE_INSTRUCTION, s.charsPerToken);
      if (maxTokens < 1) return { sources: [], warning: `The model's context window (${contextTokens} tokens) leaves no room for knowledge sources` };
      const r = await this.search.retrieveSources({ query: question, maxTokens, charsPerToken: s.charsPerToken });
      return { sources: r.sources, ...(r.degraded ? { degraded: true as const } : {}) };
    } catch (err) {
      const why = (err as Error).message;
      this.logger.warn({ err: why, turnId: turn.turnId }, 'retrieval failed; answering without sources');
      return { sources: [], warning: `Knowledge search failed, so this answer cites no sources: ${why}`.slice(0, 500) };
    }
  }

  async generate(turn: GenerateInput, call: CallInfo): Promise<GenerateOutcome> {
    const key = currentContext()?.idempotencyKey ?? `${turn.turnId}:generate`;
    // The reads before the model call go out at once: the answer's state, the generation's record,
    // the stop mark, and the history for the prompt (built on the chat's settings as the turn began;
    // an older turn reads the chat first). The prompt is only used when this call generates; its
    // failure (history or the model's description unreadable; for an older turn, its chat deleted)
    // fails the answer like any error in `run`.
    const chatOf: Promise<PromptChat> = turn.chat ? Promise.resolve({ id: turn.chatId, ...turn.chat }) : this.chats.getChat({ id: turn.chatId });
    const prepared = chatOf.then(async (chat) => ({ chat, prompt: await this.prompt(chat, turn) }));
    prepared.catch(() => undefined);
    // Listening for Stop before the stop mark is read: a Stop between the two is not missed.
    const ac = new AbortController();
    const untrack = this.channels.track(turn.turnId, ac);
    let handedOver = false;
    try {
      const [m, claim, stopped] = await Promise.all([
        this.history.getMessage({ id: turn.assistantMessageId }),
        this.store.claimGeneration(key),
        this.store.stopRequested(turn.turnId),
      ]);
      if (m.status !== 'streaming') {
        // Ended already (a compensation, or an earlier call whose outcome was journaled elsewhere).
        return { status: m.status, content: m.content, ...(m.model ? { model: m.model } : {}), ...(m.usage ? { usage: m.usage } : {}), ...(m.error ? { error: m.error } : {}), deltas: 0 };
      }
      // A tool loop that got as far as asking for tools resumes from its journal (tool-loop.ts): a
      // command it ran must not run again, nor its result be lost. Plain text is never asked for twice.
      const resumable = claim === 'started' && (await this.journal.rounds(key)).length > 0;
      if (claim === 'started' && !resumable) {
        // An earlier call under this key began generating and its process died: the model is not asked
        // twice (the reply would repeat); the answer ends with the text saved so far.
        const outcome: GenerateOutcome = { status: 'failed', content: m.content, error: INTERRUPTED, deltas: 0 };
        await this.store.saveGeneration(key, outcome);
        return outcome;
      }
      if (claim !== 'fresh' && claim !== 'started') return claim;
      handedOver = true;
      const outcome = await this.run(turn, call.signal, key, resumable, stopped, prepared, ac, untrack);
      await this.store.saveGeneration(key, outcome);
      return outcome;
    } finally {
      if (!handedOver) untrack();
    }
  }

  private async run(
    turn: GenerateInput,
    callSignal: AbortSignal,
    key: string,
    resume: boolean,
    stopped: boolean,
    prepared: Promise<{ chat: PromptChat; prompt: Awaited<ReturnType<MessagesService['prompt']>> }>,
    /** Aborted by Stop (tracked since before the stop mark was read), the deadline or a shutdown. */
    ac: AbortController,
    untrack: () => void,
  ): Promise<GenerateOutcome> {
    const s = this.settings.current();
    const onDeadline = () => ac.abort(new Error('deadline'));
    callSignal.addEventListener('abort', onDeadline, { once: true });
    const started = Date.now();
    // The answer as it grows, over every round of the tool loop.
    const answer = new AnswerState();
    const saver = new ProgressSaver(
      (t) => this.history.saveProgress({ id: turn.assistantMessageId, content: t }),
      s.progressSaveMs,
      (err) => this.logger.warn({ err: (err as Error).message, turnId: turn.turnId }, 'progress not saved'),
    );
    const measured = () => ({
      promptTokens: 0,
      completionTokens: answer.seq,
      timeToFirstTokenMs: answer.firstAt === undefined ? 0 : answer.firstAt - started,
      durationMs: Date.now() - started,
    });
    const ended = () => ({
      content: answer.text,
      deltas: answer.seq,
      ...(answer.model ? { model: answer.model } : {}),
      ...(answer.toolCalls.length ? { toolCalls: answer.toolCalls } : {}),
    });
    try {
      if (stopped) return { status: 'stopped', content: '', deltas: 0, usage: measured() };
      const { chat, prompt } = await prepared;
      if (!prompt.messages) return { status: 'failed', content: '', error: prompt.error ?? 'no prompt', deltas: 0 };
      // Tools only for models that say they take them (Ollama's /api/show capabilities).
      const offerTools = s.toolsEnabled && (await this.describe(chat.model)).capabilities.includes('tools');
      this.status(turn, 'generating', 'generate');
      const loop = new ToolLoop(
        {
          llm: this.llm,
          runner: this.tools,
          journal: this.journal,
          settings: s,
          turn,
          stepKey: key,
          signal: ac.signal,
          onDelta: (delta) => {
            this.emit(turn, 'message:delta', { chatId: turn.chatId, messageId: turn.assistantMessageId, turnId: turn.turnId, seq: answer.seq, delta });
            saver.update(answer.text);
          },
          onRestore: (text) => saver.saveNow(text),
          emit: (event, data) => this.emit(turn, event, data),
        },
        answer,
      );
      // The whole loop runs under the signal: the binding links it to each stream when the stream
      // starts (at the first next()), and to each tool call, so a Stop aborts the model call or the
      // tool at once, even mid-wait (an approval wait included).
      await withContext({ signal: ac.signal }, () => loop.run(chat.model, prompt.messages!, offerTools, resume));
      if (ac.signal.aborted) throw ac.signal.reason;
      const usage = answer.usage ? { ...answer.usage, ...(answer.rounds > 1 ? { durationMs: Date.now() - started } : {}) } : measured();
      return { status: 'complete', ...ended(), usage };
    } catch (err) {
      const reason = ac.signal.aborted ? (ac.signal.reason as Error | undefined)?.message : undefined;
      const base = { ...ended(), usage: measured() };
      if (reason === 'stopped') return { ...base, status: 'stopped' };
      if (reason === 'deadline') return { ...base, status: 'failed', error: 'the answer took longer than allowed' };
      if (reason === 'shutting down') return { ...base, status: 'failed', error: INTERRUPTED };
      const message = isContractError(err) ? err.message : 'the model could not answer';
      if (!isContractError(err) || err.code === 'internal') this.logger.error({ err, turnId: turn.turnId }, 'generation failed');
      return { ...base, status: 'failed', error: message };
    } finally {
      untrack();
      callSignal.removeEventListener('abort', onDeadline);
      await saver.close();
    }
  }

  private async contextLength(model: string | null): Promise<number> {
    return (await this.describe(model)).contextLength;
  }

  /** The model's context window and capabilities (/api/show), cached for a few minutes. */
  private async describe(model: string | null): Promise<{ contextLength: number; capabilities: string[] }> {
    const key = model ?? '';
    const hit = this.contextLengths.get(key);
    if (hit && Date.now() - hit.at < CONTEXT_CACHE_MS) return hit;
    const d = await this.llm.describeModel(model ? { model } : {});
    const entry = { contextLength: d.contextLength, capabilities: d.capabilities, at: Date.now() };
    this.contextLengths.set(key, entry);
    return entry;
  }


  private async prompt(chat: PromptChat, turn: GenerateInput): Promise<{ messages?: { role: 'system' | 'user' | 'assistant'; content: string }[]; error?: string }> {
    const s = this.settings.current();
    const contextTokens = await this.contextLength(chat.model);
    const budget = { contextTokens, replyReserveTokens: Math.min(s.replyReserveTokens, Math.floor(contextTokens / 2)), charsPerToken: s.charsPerToken };
    // Retrieved sources join the system prompt, numbered: their tokens count against the window.
    const system = withSources(chat.systemPrompt ?? s.defaultSystemPrompt, turn.sources ?? []);
    // A message costs at least its length over charsPerToken: history past this many characters
    // cannot fit, so it is not read.
    const maxChars = Math.max(1, Math.ceil((budget.contextTokens - budget.replyReserveTokens) * budget.charsPerToken));
    const recent = await this.history.recentForPrompt({ chatId: chat.id, maxChars });
    const built = buildPrompt(system, recent.items, budget);
    if (!built) {
      const need = turn.userMessage ? estimateTokens(turn.userMessage.content, s.charsPerToken) : undefined;
      return { error: `the message does not fit the model's context window (${contextTokens} tokens${need ? `, the message needs about ${need}` : ''})` };
    }
    return { messages: built.messages };
  }

  async completeTurn({ turn, outcome, retrieval }: { turn: TurnInput; outcome: GenerateOutcome; retrieval?: RetrieveOutcome | undefined }) {
    // Every source the model was given, in number order: citation n is citations[n - 1], whichever the
    // answer used. None on an answer without text.
    const citations = outcome.content && retrieval?.sources.length
      ? retrieval.sources.map(({ sourceType, sourceId, title, snippet, score }) => ({ sourceType, sourceId, title, snippet, score }))
      : undefined;
    const warnings: string[] = retrieval?.warning ? [retrieval.warning] : [];
    const r = await this.history.finishMessage({
      id: turn.assistantMessageId,
      status: outcome.status,
      content: outcome.content,
      ...(outcome.model ? { model: outcome.model } : {}),
      ...(outcome.usage ? { usage: outcome.usage } : {}),
      ...(outcome.error ? { error: outcome.error } : {}),
      ...(outcome.toolCalls?.length ? { toolCalls: outcome.toolCalls } : {}),
      ...(citations ? { citations } : {}),
      ...(warnings.length ? { warnings } : {}),
    });
    const final = r.message;
    // The chat is free for the next message as soon as the answer is final, before anyone is told:
    // a client answering message:completed with its next message must not meet a 409.
    await this.store.release(turn.chatId, turn.turnId);
    if (final.status === 'failed') this.emit(turn, 'message:failed', this.failedPayload(turn.turnId, final));
    else this.emit(turn, 'message:completed', { message: final });
    this.status(turn, final.status === 'complete' ? 'completed' : final.status, 'complete');
    return { status: final.status as 'complete' | 'stopped' | 'failed', messageCount: r.messageCount, lastActivityAt: new Date().toISOString() };
  }

  async titleChat(turn: TurnInput) {
    const s = this.settings.current();
    const chat = await this.chats.getChat({ id: turn.chatId });
    if (chat.title) return { title: chat.title, source: 'message' as const, applied: false };
    const first = (await this.history.listMessages({ chatId: chat.id, order: 'asc', limit: 5 })).items.find((m) => m.role === 'user');
    const opening = first?.content ?? turn.userMessage?.content ?? '';
    let title: string | null = null;
    try {
      const out = await withContext({ deadline: Date.now() + s.titleTimeoutMs }, () =>
        this.llm.complete({
          ...(chat.model ? { model: chat.model } : {}),
          messages: [
            { role: 'system', content: TITLE_INSTRUCTION },
            { role: 'user', content: opening.slice(0, 2000) },
          ],
          options: { temperature: 0.2, num_predict: 32 },
        }),
      );
      title = cleanTitle(out.content, s.titleMaxChars);
    } catch (err) {
      this.logger.info({ err: (err as Error).message, chatId: chat.id }, 'no title from the model; using the first message');
    }
    const source = title ? ('model' as const) : ('message' as const);
    const chosen = title ?? titleFromMessage(opening, s.titleMaxChars);
    const r = await this.chats.setGeneratedTitle({ id: chat.id, title: chosen });
    return { title: r.chat.title ?? chosen, source, applied: r.applied };
  }
}
