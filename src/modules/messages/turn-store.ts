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
import { runScript } from '../../kernel/redis/lua-script.js';

const DAY_S = 86_400;
/** A lock outlives any generation (the step's deadline is one hour) but not a lost turn forever. */
const ACTIVE_TTL_S = 2 * 3600;

// KEYS: active. ARGV: turnId. Deletes only our own lock.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

// KEYS: active, turn answer, [client id]. ARGV: turnId, answer json, lock ttl s, answer ttl s.
// Starting a turn in one round trip: {'dup', holder} the client id started a turn already; {'busy'}
// another turn runs in the chat (nothing written); {'ok'} the chat is this turn's, its answer saved
// and its client id claimed.
const BEGIN = `
if KEYS[3] then
  local holder = redis.call('GET', KEYS[3])
  if holder then return {'dup', holder} end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3], 'NX') then return {'busy', ''} end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[4]) end
return {'ok', ''}`;

const clientKey = (userId: string, chatId: string, clientId: string) => `client:${userId}:${chatId}:${clientId}`;

export const STOP_CHANNEL = 'messages:stop';
export const turnChannel = (turnId: string) => `messages:turn:${turnId}`;

@injectable()
export class TurnStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  /**
   * Starts a turn: its clientMessageId (if any) not yet used, the chat's lock, its answer saved, all at
   * once. `dup`: the turn that clientMessageId started; `busy`: another turn runs in the chat.
   */
  async begin(chatId: string, turnId: string, answer: unknown, client?: { userId: string; clientId: string }): Promise<{ result: 'ok' | 'busy' } | { result: 'dup'; holder: string }> {
    const keys = [`active:${chatId}`, `turn:${turnId}`, ...(client ? [clientKey(client.userId, chatId, client.clientId)] : [])];
    const [result, holder] = (await runScript(this.redis, BEGIN, keys.length, ...keys, turnId, JSON.stringify(answer), ACTIVE_TTL_S, DAY_S)) as [string, string];
    return result === 'dup' ? { result, holder } : { result: result === 'ok' ? 'ok' : 'busy' };
  }

  /** true: the chat is now this turn's; false: another turn runs in it. */
  async lock(chatId: string, turnId: string): Promise<boolean> {
    return (await this.redis.set(`active:${chatId}`, turnId, 'EX', ACTIVE_TTL_S, 'NX')) === 'OK';
  }

  async release(chatId: string, turnId: string): Promise<void> {
    await runScript(this.redis, RELEASE, 1, `active:${chatId}`, turnId);
  }

  active(chatId: string): Promise<string | null> {
    return this.redis.get(`active:${chatId}`);
  }

  async releaseClientId(userId: string, chatId: string, clientId: string, turnId: string): Promise<void> {
    await runScript(this.redis, RELEASE, 1, clientKey(userId, chatId, clientId), turnId);
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
