// The tool loop inside `generate` (ARCHITECTURE.md §6a): the model streams a round; when it asks for
// tools, the round and its calls are journaled, each call is announced (`tool:call`), goes through the
// approval policy and runs, its result goes back to the model as a `tool` message, and the model is
// asked again, up to `messages.maxToolRounds` rounds (then once more without tools, to answer).
//
// Resume: the loop starts from its journal. A `generate` call resumed after a crash finds the rounds
// already asked for; finished calls reuse their journaled result, unfinished ones run again under the
// same idempotency key (terminal answers the execution or approval the first run made, so a command
// never runs twice), and the model is asked for the next round. The text of the round being streamed
// when the process died is dropped: the answer continues from the last journaled round.
import type { Port } from '../../kernel/contract/define.js';
import { withContext } from '../../kernel/context/request-context.js';
import type { z } from 'zod';
import type { chatMessage, llmContract, toolCall } from '../llm/contract.js';
import type { GenerateOutcome, MessagesSettings, TurnInput } from './contract.js';
import { FINAL_CALL_STATUSES, type CallRecord, type JournaledRound, type ProposedCall, type ToolJournal } from './tool-journal.js';
import { TOOL_DEFINITIONS, toolMessage, type ToolRunner } from './tools.js';

type ChatMessage = z.input<typeof chatMessage>;
type ModelToolCall = z.infer<typeof toolCall>;
type Usage = NonNullable<GenerateOutcome['usage']>;
export type ToolCallView = NonNullable<GenerateOutcome['toolCalls']>[number];

/** What `message:toolCalls` and the history schema allow on one message. */
const MAX_CALLS = 100;
const ROUND_SEPARATOR = '\n\n';

/** The answer as it grows; `generate` reads it whatever ends the loop (done, Stop, failure). */
export class AnswerState {
  text = '';
  seq = 0;
  firstAt: number | undefined;
  model: string | undefined;
  /** Tokens summed over the rounds; time to first token of the first round. */
  usage: Usage | undefined;
  rounds = 0;
  readonly toolCalls: ToolCallView[] = [];
}

export interface LoopDeps {
  llm: Port<typeof llmContract>;
  runner: ToolRunner;
  journal: ToolJournal;
  settings: MessagesSettings;
  turn: TurnInput;
  /** The generate step's idempotency key: `<sagaId>:generate`. */
  stepKey: string;
  signal: AbortSignal;
  /** A delta was added to the answer (state.text and state.seq already include it). */
  onDelta: (delta: string) => void;
  /** A resumed loop restored the answer from its journal (the saved text may hold a dropped round). */
  onRestore: (text: string) => void;
  /** Realtime event to the chat (and SSE followers). */
  emit: (event: string, data: unknown) => void;
}

export class ToolLoop {
  constructor(
    private readonly d: LoopDeps,
    private readonly state: AnswerState,
  ) {}

  /**
   * Runs the rounds; returns normally when the model answered without asking for tools. `resume`: an
   * earlier call under this step key journaled rounds (a fresh call has none to read).
   */
  async run(model: string | null, messages: ChatMessage[], offerTools: boolean, resume: boolean): Promise<void> {
    const { journal, stepKey, settings } = this.d;
    const convo = [...messages];
    const past = resume ? await journal.rounds(stepKey) : [];
    const last = past.at(-1);
    if (last) {
      // The answer as it was after the last journaled round (whatever ends the loop now keeps it).
      this.state.text = last.content;
      this.state.seq = last.seq;
      this.state.rounds = past.length;
      this.state.usage = { promptTokens: last.promptTokens, completionTokens: last.completionTokens, timeToFirstTokenMs: 0, durationMs: 0 };
      this.d.onRestore(this.state.text);
    }
    for (const round of past) {
      convo.push(assistantTurn(round.text, round.calls));
      for (const call of round.calls) {
        convo.push(await this.settle(call));
        if (this.d.signal.aborted) throw this.d.signal.reason;
      }
    }
    for (;;) {
      const offer = offerTools && this.state.rounds < settings.maxToolRounds && this.state.toolCalls.length < MAX_CALLS;
      const before = this.state.text;
      const asked = await this.round(model, convo, offer);
      this.state.rounds += 1;
      if (asked.length === 0) return;
      const roundText = this.state.text.slice(before.length).replace(/^\n\n/, '');
      const room = MAX_CALLS - this.state.toolCalls.length;
      const calls: ProposedCall[] = asked.slice(0, room).map((c, i) => ({ id: `call_${this.state.rounds}_${i + 1}`, tool: c.name, arguments: c.arguments }));
      if (!offer) {
        // No tools were offered (the round limit, or tools off) and the model still asks: nothing runs;
        // the answer ends here.
        for (const call of calls) this.show(call, { status: 'skipped', result: { error: 'not run: no tools were offered for this round (the limit of tool rounds was reached)' } });
        return;
      }
      // Journaled before any of them runs: a resumed loop knows them by the same ids.
      const round: JournaledRound = {
        text: roundText,
        content: this.state.text,
        seq: this.state.seq,
        promptTokens: this.state.usage?.promptTokens ?? 0,
        completionTokens: this.state.usage?.completionTokens ?? 0,
        calls,
      };
      await journal.addRound(stepKey, round);
      convo.push(assistantTurn(roundText, calls));
      for (const call of calls) {
        convo.push(await this.settle(call));
        if (this.d.signal.aborted) throw this.d.signal.reason;
      }
    }
  }

  /** One model round, streamed to the clients; answers the tool calls it asked for. */
  private async round(model: string | null, convo: ChatMessage[], offer: boolean): Promise<ModelToolCall[]> {
    const calls: ModelToolCall[] = [];
    let separated = this.state.text.length === 0;
    const stream = this.d.llm.generate({ ...(model ? { model } : {}), messages: convo, ...(offer ? { tools: TOOL_DEFINITIONS } : {}) });
    // Not returned in `finally`: a stream that ended needs no return(), and a stopped one was cancelled
    // through the signal (which closes the request to the model wherever it runs).
    const iterator = stream[Symbol.asyncIterator]();
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      const chunk = next.value;
      if (chunk.type === 'delta' && chunk.delta) {
        if (!separated) {
          // A new round's text starts a new paragraph of the answer.
          separated = true;
          this.delta(ROUND_SEPARATOR);
        }
        this.delta(chunk.delta);
      } else if (chunk.type === 'toolCalls') {
        calls.push(...chunk.toolCalls);
      } else if (chunk.type === 'done') {
        this.state.model = chunk.model;
        const u = chunk.usage;
        this.state.usage = this.state.usage
          ? { ...this.state.usage, promptTokens: this.state.usage.promptTokens + u.promptTokens, completionTokens: this.state.usage.completionTokens + u.completionTokens }
          : { ...u };
      }
    }
    return calls;
  }

  private delta(delta: string): void {
    this.state.firstAt ??= Date.now();
    this.state.text += delta;
    this.state.seq += 1;
    this.d.onDelta(delta);
  }

  /** One call to its end (or its journaled end): announced, journaled, and its `tool` message. */
  private async settle(call: ProposedCall): Promise<ChatMessage> {
    const { journal, stepKey, settings } = this.d;
    const callKey = `${stepKey}:${call.id}`;
    let record = await journal.call(callKey);
    if (!record || !FINAL_CALL_STATUSES.includes(record.status)) {
      this.show(call, { status: record?.status ?? 'pending', ...(record?.approvalId ? { approvalId: record.approvalId } : {}) });
      const progress = async (r: CallRecord) => {
        await journal.saveCall(callKey, r);
        this.show(call, r);
      };
      // The call's own idempotency key: terminal runs a command (or creates an approval) once per key.
      record = await withContext({ idempotencyKey: callKey }, () => this.d.runner.run(call, { signal: this.d.signal, maxChars: settings.toolResultMaxChars, progress }));
      await journal.saveCall(callKey, record);
    }
    this.show(call, record);
    return { role: 'tool', content: toolMessage(record, settings.toolResultMaxChars), toolName: call.tool };
  }

  /** The call's current state on the answer, and `tool:call` to the chat. */
  private show(call: ProposedCall, record: CallRecord): void {
    const view: ToolCallView = { id: call.id, tool: call.tool, arguments: call.arguments, status: record.status, ...(record.result ? { result: record.result } : {}) };
    const at = this.state.toolCalls.findIndex((c) => c.id === call.id);
    if (at >= 0) this.state.toolCalls[at] = view;
    else this.state.toolCalls.push(view);
    const { turn } = this.d;
    this.d.emit('tool:call', { chatId: turn.chatId, messageId: turn.assistantMessageId, turnId: turn.turnId, toolCall: { ...view, ...(record.approvalId ? { approvalId: record.approvalId } : {}) } });
  }
}

function assistantTurn(text: string, calls: ProposedCall[]): ChatMessage {
  return { role: 'assistant', content: text, toolCalls: calls.map((c) => ({ name: c.tool, arguments: c.arguments })) };
}
