// The tool loop's journal in Redis (database 4, prefix `messages:`), so that a `generate` step resumed
// after a crash continues the loop instead of starting over (ARCHITECTURE.md §6a):
//   toolloop:<stepKey>   one JSON entry per model round that asked for tools, written before any of its
//                        tools runs: the round's text, the answer so far, the calls with their ids
//   toolcall:<callKey>   one call (`<sagaId>:generate:<callId>`): written before the tool runs (status,
//                        approval) and with its result after; a resumed loop reuses a finished one
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';

const DAY_S = 86_400;

export interface ProposedCall {
  id: string;
  tool: string;
  arguments: Record<string, unknown>;
}

export interface JournaledRound {
  /** The round's own text (what the model said before asking for tools). */
  text: string;
  /** The whole answer after this round, and the last delta's seq: a resumed loop continues from here. */
  content: string;
  seq: number;
  promptTokens: number;
  completionTokens: number;
  calls: ProposedCall[];
}

export type CallStatus = 'pending' | 'pending_approval' | 'running' | 'completed' | 'failed' | 'denied' | 'cancelled' | 'skipped';

export interface CallRecord {
  status: CallStatus;
  approvalId?: string;
  /** What the tool answered (or why it did not run): kept on the message, given to the model. */
  result?: Record<string, unknown>;
}

export const FINAL_CALL_STATUSES: readonly CallStatus[] = ['completed', 'failed', 'denied', 'cancelled', 'skipped'];

@injectable()
export class ToolJournal {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async rounds(stepKey: string): Promise<JournaledRound[]> {
    return (await this.redis.lrange(`toolloop:${stepKey}`, 0, -1)).map((r) => JSON.parse(r) as JournaledRound);
  }

  async addRound(stepKey: string, round: JournaledRound): Promise<void> {
    await this.redis.multi().rpush(`toolloop:${stepKey}`, JSON.stringify(round)).expire(`toolloop:${stepKey}`, DAY_S).exec();
  }

  async call(callKey: string): Promise<CallRecord | undefined> {
    const raw = await this.redis.get(`toolcall:${callKey}`);
    return raw ? (JSON.parse(raw) as CallRecord) : undefined;
  }

  async saveCall(callKey: string, record: CallRecord): Promise<void> {
    await this.redis.set(`toolcall:${callKey}`, JSON.stringify(record), 'EX', DAY_S);
  }
}
