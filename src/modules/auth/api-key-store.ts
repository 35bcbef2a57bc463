// API keys: `abk_` + 256 random bits, shown once. Only the SHA-256 is stored (as the lookup key); the
// stored digest is compared with the presented one in constant time.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { API_KEY_PREFIX } from './contract.js';
import { newId } from './ids.js';
import { sha256 } from './session-store.js';
import { runScript } from '../../kernel/redis/lua-script.js';

const byHashKey = (hash: string) => `apikey:${hash}`;
const byIdKey = (id: string) => `apikey-id:${id}`;
const userKeysKey = (userId: string) => `user:${userId}:apikeys`;

export interface StoredApiKey {
  id: string;
  userId: string;
  name: string;
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  hash: string;
}

function fromHash(h: Record<string, string>): StoredApiKey | undefined {
  if (!h.id) return undefined;
  return {
    id: h.id,
    userId: h.userId!,
    name: h.name!,
    prefix: h.prefix!,
    createdAt: h.createdAt!,
    expiresAt: h.expiresAt || null,
    lastUsedAt: h.lastUsedAt || null,
    hash: h.hash!,
  };
}

const TOUCH = `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'lastUsedAt', ARGV[1]) end`;

/** How often the last-used time is written at most: a busy key must not cost a write per request. */
const LAST_USED_RESOLUTION_MS = 60_000;

@injectable()
export class ApiKeyStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async create(userId: string, name: string, expiresAt: string | null): Promise<{ key: string; stored: StoredApiKey }> {
    const key = `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
    const stored: StoredApiKey = {
      id: newId('k'),
      userId,
      name,
      prefix: key.slice(0, API_KEY_PREFIX.length + 6),
      createdAt: new Date().toISOString(),
      expiresAt,
      lastUsedAt: null,
      hash: sha256(key),
    };
    const tx = this.redis
      .multi()
      .hset(byHashKey(stored.hash), { ...stored, expiresAt: expiresAt ?? '', lastUsedAt: '' })
      .set(byIdKey(stored.id), stored.hash)
      .sadd(userKeysKey(userId), stored.id);
    if (expiresAt) tx.pexpireat(byHashKey(stored.hash), Date.parse(expiresAt)).pexpireat(byIdKey(stored.id), Date.parse(expiresAt));
    await tx.exec();
    return { key, stored };
  }

  /** The live key matching what was presented, or undefined (unknown, revoked or expired). */
  async find(presented: string): Promise<StoredApiKey | undefined> {
    const digest = sha256(presented);
    const stored = fromHash(await this.redis.hgetall(byHashKey(digest)));
    if (!stored || !timingSafeEqual(Buffer.from(stored.hash, 'hex'), Buffer.from(digest, 'hex'))) return undefined;
    if (stored.expiresAt && Date.parse(stored.expiresAt) <= Date.now()) return undefined;
    if (!stored.lastUsedAt || Date.now() - Date.parse(stored.lastUsedAt) > LAST_USED_RESOLUTION_MS) {
      // Not awaited (the request need not wait), and only on a key that still exists: a revocation landing
      // first must not be undone by a stray write recreating part of the record.
      void runScript(this.redis, TOUCH, 1, byHashKey(digest), new Date().toISOString()).catch(() => undefined);
    }
    return stored;
  }

  async list(userId: string): Promise<StoredApiKey[]> {
    const ids = await this.redis.smembers(userKeysKey(userId));
    if (ids.length === 0) return [];
    const hashes = await this.redis.mget(ids.map(byIdKey));
    const pipeline = this.redis.pipeline();
    const live = hashes.filter((h): h is string => h !== null);
    for (const h of live) pipeline.hgetall(byHashKey(h));
    const rows = (await pipeline.exec()) ?? [];
    const expired = ids.filter((_, i) => hashes[i] === null);
    if (expired.length) await this.redis.srem(userKeysKey(userId), ...expired);
    return rows
      .map(([, h]) => fromHash(h as Record<string, string>))
      .filter((k): k is StoredApiKey => k !== undefined)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Revokes one of the owner's keys; another user's key is `not_found`, as if it did not exist. */
  async revoke(userId: string, id: string): Promise<void> {
    const hash = await this.redis.get(byIdKey(id));
    const owner = hash ? await this.redis.hget(byHashKey(hash), 'userId') : null;
    if (!hash || owner !== userId) throw new ContractError('not_found', 'no such API key');
    await this.redis.multi().del(byHashKey(hash), byIdKey(id)).srem(userKeysKey(userId), id).exec();
  }

  async revokeAll(userId: string): Promise<void> {
    const ids = await this.redis.smembers(userKeysKey(userId));
    const hashes = ids.length ? await this.redis.mget(ids.map(byIdKey)) : [];
    const tx = this.redis.multi();
    hashes.forEach((h, i) => {
      if (h) tx.del(byHashKey(h));
      tx.del(byIdKey(ids[i]!));
    });
    tx.del(userKeysKey(userId));
    await tx.exec();
  }
}
