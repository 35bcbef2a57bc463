// Access tokens: HS256 JWTs (jose) carrying the user and session ids, at most 15 minutes long. Only
// HS256 is accepted on the way in, so `alg: none` and algorithm confusion are refused by construction.
// The signing key is 256 random bits kept in the module's Redis, shared by every instance, and named by
// a key id (`kid`) in each token's header. An admin can rotate it: new tokens are signed with the new
// key at once, and the previous key keeps verifying the tokens it signed until they have expired.
import { randomBytes } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { SignJWT, decodeProtectedHeader, jwtVerify, type JWTHeaderParameters } from 'jose';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { runScript } from '../../kernel/redis/lua-script.js';

const SIGNING_KEY = 'signing-key';
const SIGNING_KEY_ID = 'signing-key-id';
/** Retired keys (kid → key) and until when each still verifies (kid → epoch ms). */
const RETIRED_KEYS = 'signing-keys:retired';
const RETIRED_UNTIL = 'signing-keys:retired-until';
const ISSUER = 'autobot';
const AUDIENCE = 'autobot-api';

/** The longest an access token can live (the `accessTokenTtlS` setting's maximum). */
export const MAX_ACCESS_TTL_MS = 900_000;
/** How often an instance re-reads the keys: another instance may have rotated them. */
const RELOAD_EVERY_MS = 30_000;
/** An unknown `kid` makes an instance re-read the keys at most this often (forged kids cost nothing). */
const RELOAD_ON_UNKNOWN_MS = 1_000;
/**
 * How long a retired key keeps verifying: its last tokens may be signed by an instance that has not
 * re-read the keys yet (up to RELOAD_EVERY_MS after the rotation) and then live MAX_ACCESS_TTL_MS.
 */
const RETIRED_KEEP_MS = MAX_ACCESS_TTL_MS + 2 * RELOAD_EVERY_MS;

export interface AccessClaims {
  userId: string;
  sessionId: string;
}

export interface Rotation {
  keyId: string;
  previousKeyId: string | null;
  /** Until when tokens signed with the previous key keep verifying. */
  previousValidUntil: string | null;
}

// KEYS: current key, current kid, retired keys, retired-until. ARGV: new key, new kid, keep-until ms, now ms.
// Retires the current key (verifiable until ARGV[3]), installs the new one, forgets keys past their time.
const ROTATE = `
local key = redis.call('GET', KEYS[1])
local kid = redis.call('GET', KEYS[2])
if key and kid then
  redis.call('HSET', KEYS[3], kid, key)
  redis.call('ZADD', KEYS[4], ARGV[3], kid)
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[4])) do
  redis.call('HDEL', KEYS[3], old)
  redis.call('ZREM', KEYS[4], old)
end
return kid or false`;

/** Verified tokens kept in memory: a signature check costs more than the rest of a request. */
const VERIFIED_CACHE_SIZE = 10_000;

interface KeySet {
  currentId: string;
  current: Uint8Array;
  /** Retired keys still verifying, with the epoch ms they stop. */
  retired: Map<string, { key: Uint8Array; untilMs: number }>;
}

const newKeyId = () => randomBytes(9).toString('base64url');

@injectable()
export class AccessTokens {
  private keys: KeySet | undefined;
  private lastUnknownReload = 0;
  private reloading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  // A token's signature and claims never change, so a verified token stays valid until it expires;
  // revocation is checked on every use by the session lookup, not here.
  private readonly verified = new Map<string, AccessClaims & { expiresAtMs: number }>();

  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  /** Loads the signing key, creating it on the very first start (the first instance to write wins). */
  async init(): Promise<void> {
    await this.redis.set(SIGNING_KEY, randomBytes(32).toString('base64'), 'NX');
    // A key stored before keys had ids gets one here, once.
    await this.redis.set(SIGNING_KEY_ID, newKeyId(), 'NX');
    await this.load();
    this.timer ??= setInterval(() => void this.reload().catch(() => undefined), RELOAD_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async load(): Promise<void> {
    const [[, key], [, kid], [, retired], [, until]] = ((await this.redis
      .multi()
      .get(SIGNING_KEY)
      .get(SIGNING_KEY_ID)
      .hgetall(RETIRED_KEYS)
      .zrange(RETIRED_UNTIL, '0', '-1', 'WITHSCORES')
      .exec()) ?? []) as [unknown, unknown][] as [[unknown, string | null], [unknown, string | null], [unknown, Record<string, string>], [unknown, string[]]];
    if (!key || !kid) throw new Error('the access-token signing key could not be read');
    const untilOf = new Map<string, number>();
    for (let i = 0; i + 1 < until.length; i += 2) untilOf.set(until[i]!, Number(until[i + 1]));
    const keys: KeySet = { currentId: kid, current: Buffer.from(key, 'base64'), retired: new Map() };
    for (const [id, k] of Object.entries(retired)) {
      const untilMs = untilOf.get(id);
      if (untilMs !== undefined && untilMs > Date.now()) keys.retired.set(id, { key: Buffer.from(k, 'base64'), untilMs });
    }
    this.keys = keys;
  }

  /** One reload at a time, however many callers ask. */
  private reload(): Promise<void> {
    this.reloading ??= this.load().finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  private get keySet(): KeySet {
    if (!this.keys) throw new Error('access tokens used before init()');
    return this.keys;
  }

  sign(claims: AccessClaims, ttlS: number): Promise<string> {
    const { currentId, current } = this.keySet;
    return new SignJWT({ sid: claims.sessionId })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: currentId })
      .setSubject(claims.userId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
      .sign(current);
  }

  /** Retires the current key (it keeps verifying its tokens until they expire) and signs with a new one. */
  async rotate(): Promise<Rotation> {
    const now = Date.now();
    const untilMs = now + RETIRED_KEEP_MS;
    const kid = newKeyId();
    const previous = (await runScript(
      this.redis,
      ROTATE,
      4,
      SIGNING_KEY,
      SIGNING_KEY_ID,
      RETIRED_KEYS,
      RETIRED_UNTIL,
      randomBytes(32).toString('base64'),
      kid,
      String(untilMs),
      String(now),
    )) as string | null;
    await this.reload();
    return { keyId: kid, previousKeyId: previous, previousValidUntil: previous ? new Date(untilMs).toISOString() : null };
  }

  /** The key a token names: the current one, a retired one still in its time, or none. */
  private async keyFor(header: JWTHeaderParameters): Promise<Uint8Array> {
    const find = () => {
      const keys = this.keySet;
      // A token without a kid predates key ids: only the current key can have signed it.
      if (header.kid === undefined || header.kid === keys.currentId) return keys.current;
      const retired = keys.retired.get(header.kid);
      return retired && retired.untilMs > Date.now() ? retired.key : undefined;
    };
    let key = find();
    if (!key && Date.now() - this.lastUnknownReload >= RELOAD_ON_UNKNOWN_MS) {
      // Perhaps another instance rotated the key a moment ago.
      this.lastUnknownReload = Date.now();
      await this.reload();
      key = find();
    }
    if (!key) throw new Error('unknown signing key');
    return key;
  }

  /** The claims of a valid, unexpired token signed by us; undefined for anything else. */
  async verify(token: string): Promise<AccessClaims | undefined> {
    const known = this.verified.get(token);
    if (known) {
      if (known.expiresAtMs > Date.now()) return { userId: known.userId, sessionId: known.sessionId };
      this.verified.delete(token);
      return undefined;
    }
    try {
      const key = await this.keyFor(decodeProtectedHeader(token) as JWTHeaderParameters);
      const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE });
      if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string' || typeof payload.exp !== 'number') return undefined;
      const claims = { userId: payload.sub, sessionId: payload.sid };
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { ...claims, expiresAtMs: payload.exp * 1000 });
      return claims;
    } catch {
      return undefined;
    }
  }
}
