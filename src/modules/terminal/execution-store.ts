// Executions in the module's Redis: one JSON record each (kept for `executionRetentionDays`), and the
// idempotency index that makes a repeated call with the same key (a resumed saga step) return the
// execution it started instead of running the command again.
import { randomUUID } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import type { executionView } from './contract.js';

export type ExecutionView = z.input<typeof executionView>;

export interface StoredExecution extends ExecutionView {
  ownerId: string;
  /** Who called: the owner, or the approver whose decision started it. */
  pipeline: string[][];
  timeoutMs: number;
  /** Epoch ms after which a `running` record is known to be abandoned (its process died). */
  staleAfter?: number;
}

export function newExecutionId(): string {
  return `ex_${randomUUID().replace(/-/g, '')}`;
}

@injectable()
export class ExecutionStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async save(e: StoredExecution, retentionS: number): Promise<void> {
    await this.redis.set(`exec:${e.id}`, JSON.stringify(e), 'EX', retentionS);
  }

  async get(id: string): Promise<StoredExecution | undefined> {
    const raw = await this.redis.get(`exec:${id}`);
    return raw ? (JSON.parse(raw) as StoredExecution) : undefined;
  }

  /**
   * Claims an idempotency key for a new execution id. Answers the id already bound to the key when
   * there is one (the caller then returns that execution rather than running anything).
   */
  async claimKey(key: string, id: string, retentionS: number): Promise<string | undefined> {
    const set = await this.redis.set(`exec-key:${key}`, id, 'EX', retentionS, 'NX');
    if (set === 'OK') return undefined;
    return (await this.redis.get(`exec-key:${key}`)) ?? undefined;
  }

  /** The execution a key is bound to, if any. */
  async boundTo(key: string): Promise<string | undefined> {
    return (await this.redis.get(`exec-key:${key}`)) ?? undefined;
  }

  /** Gives a claimed key back when the call it was claimed for was refused before recording anything. */
  async releaseKey(key: string, id: string): Promise<void> {
    if ((await this.redis.get(`exec-key:${key}`)) === id) await this.redis.del(`exec-key:${key}`);
  }
}
