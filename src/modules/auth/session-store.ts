// Sessions: one per sign-in, holding only the SHA-256 of the current refresh token. Refreshing rotates
// it; a spent token presented again means it was stolen or replayed, and the whole session goes.
// Deleting the session makes its access tokens fail at once (authentication checks it every time).
import { createHash, randomBytes } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { newId } from './ids.js';
import { runScript } from '../../kernel/redis/lua-script.js';

const sessionKey = (sid: string) => `session:${sid}`;
const spentKey = (sid: string) => `session:${sid}:spent`;
const userSessionsKey = (userId: string) => `user:${userId}:sessions`;

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

// KEYS: session, spent. ARGV: presented hash, new hash.
const ROTATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('HGET', KEYS[1], 'refreshHash') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'refreshHash', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('PEXPIREAT', KEYS[2], redis.call('PEXPIRETIME', KEYS[1]))
  return 'rotated'
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 'reused' end
return 'invalid'`;

export interface RefreshToken {
  sessionId: string;
  secret: string;
}

/** `<sessionId>.<secret>`: the session is found directly, the secret is only ever compared as a hash. */
export function formatRefreshToken(t: RefreshToken): string {
  return `${t.sessionId}.${t.secret}`;
}

export function parseRefreshToken(token: string): RefreshToken | undefined {
  const m = /^(s_[0-9a-f]{28})\.([A-Za-z0-9_-]{43})$/.exec(token);
  return m ? { sessionId: m[1]!, secret: m[2]! } : undefined;
}

@injectable()
export class SessionStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async create(userId: string, ttlMs: number): Promise<RefreshToken> {
    const sessionId = newId('s');
    const secret = randomBytes(32).toString('base64url');
    const expiresAt = Date.now() + ttlMs;
    await this.redis
      .multi()
      .hset(sessionKey(sessionId), 'id', sessionId, 'userId', userId, 'refreshHash', sha256(secret), 'createdAt', new Date().toISOString())
      .pexpireat(sessionKey(sessionId), expiresAt)
      // The index of a user's sessions is scored by expiry, so expired ones are pruned here instead of piling up.
      .zremrangebyscore(userSessionsKey(userId), '-inf', String(Date.now()))
      .zadd(userSessionsKey(userId), String(expiresAt), sessionId)
      .exec();
    return { sessionId, secret };
  }

  /** The user of a live session, or undefined. */
  async userOf(sessionId: string): Promise<string | undefined> {
    return (await this.redis.hget(sessionKey(sessionId), 'userId')) ?? undefined;
  }

  /** Rotates the refresh token: the new secret, or what went wrong. */
  async rotate(t: RefreshToken): Promise<{ outcome: 'rotated'; secret: string } | { outcome: 'missing' | 'reused' | 'invalid' }> {
    const secret = randomBytes(32).toString('base64url');
    const outcome = (await runScript(this.redis, ROTATE, 2, sessionKey(t.sessionId), spentKey(t.sessionId), sha256(t.secret), sha256(secret))) as string;
    return outcome === 'rotated' ? { outcome, secret } : { outcome: outcome as 'missing' | 'reused' | 'invalid' };
  }

  async revoke(sessionId: string, userId: string): Promise<void> {
    await this.redis.multi().del(sessionKey(sessionId), spentKey(sessionId)).zrem(userSessionsKey(userId), sessionId).exec();
  }

  /** Revokes every session of a user; returns how many were live. */
  async revokeAll(userId: string): Promise<number> {
    const ids = await this.redis.zrange(userSessionsKey(userId), '0', '-1');
    const tx = this.redis.multi();
    for (const sid of ids) tx.del(sessionKey(sid), spentKey(sid));
    tx.del(userSessionsKey(userId));
    await tx.exec();
    return ids.length;
  }
}
