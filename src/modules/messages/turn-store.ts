// The turn's own state in Redis (database 4, prefix `messages:`):
//   active:<chatId>          the running turn of a chat (one at a time: the second answers 409)
//   client:<user>:<chat>:<id> the turn a clientMessageId started (a retried send answers the same turn)
//   turn:<turnId>            what sendMessage answered, for those retries
//   stop:<turnId>            Stop was asked (also published on `messages:stop` for the running process)
//   gen:<stepKey>            the generate step began under this key ("started"), or its outcome (JSON):
//                            a repeated call after a crash sees it and never asks the model twice
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import type { GenerateOutcome } from './contract.js';

const DAY_S = 86_400;
/** A lock outlives any generation (the step's deadline is one hour) but not a lost turn forever. */
const ACTIVE_TTL_S = 2 * 3600;

// KEYS: active. ARGV: turnId. Deletes only our own lock.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export const STOP_CHANNEL = 'messages:stop';
export const turnChannel = (turnId: string) => `messages:turn:${turnId}`;

@injectable()
export class TurnStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  /** true: the chat is now this turn's; false: another turn runs in it. */
  async lock(chatId: string, turnId: string): Promise<boolean> {
    return (await this.redis.set(`active:${chatId}`, turnId, 'EX', ACTIVE_TTL_S, 'NX')) === 'OK';
  }

  async release(chatId: string, turnId: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, `active:${chatId}`, turnId);
  }

  active(chatId: string): Promise<string | null> {
    return this.redis.get(`active:${chatId}`);
  }

  /** Claims a clientMessageId for a turn; answers the turn that holds it (ours or an earlier one). */
  async claimClientId(userId: string, chatId: string, clientId: string, turnId: string): Promise<string> {
    const key = `client:${userId}:${chatId}:${clientId}`;
    const won = await this.redis.set(key, turnId, 'EX', DAY_S, 'NX');
    return won === 'OK' ? turnId : ((await this.redis.get(key)) ?? turnId);
  }

  async releaseClientId(userId: string, chatId: string, clientId: string, turnId: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, `client:${userId}:${chatId}:${clientId}`, turnId);
  }

  async saveAnswer(turnId: string, answer: unknown): Promise<void> {
    await this.redis.set(`turn:${turnId}`, JSON.stringify(answer), 'EX', DAY_S);
  }

  async answer<T>(turnId: string): Promise<T | undefined> {
    const raw = await this.redis.get(`turn:${turnId}`);
    return raw ? (JSON.parse(raw) as T) : undefined;
  }

  async requestStop(turnId: string): Promise<void> {
    await this.redis.set(`stop:${turnId}`, '1', 'EX', DAY_S);
    await this.redis.publish(STOP_CHANNEL, turnId);
  }

  async stopRequested(turnId: string): Promise<boolean> {
    return (await this.redis.exists(`stop:${turnId}`)) === 1;
  }

  /** 'fresh': this call may generate; 'started': an earlier call began and never finished; or its outcome. */
  async claimGeneration(stepKey: string): Promise<'fresh' | 'started' | GenerateOutcome> {
    const key = `gen:${stepKey}`;
    if ((await this.redis.set(key, 'started', 'EX', DAY_S, 'NX')) === 'OK') return 'fresh';
    const v = await this.redis.get(key);
    return !v || v === 'started' ? 'started' : (JSON.parse(v) as GenerateOutcome);
  }

  async saveGeneration(stepKey: string, outcome: GenerateOutcome): Promise<void> {
    await this.redis.set(`gen:${stepKey}`, JSON.stringify(outcome), 'EX', DAY_S);
  }

  publish(channel: string, message: string): Promise<number> {
    return this.redis.publish(channel, message);
  }
}
