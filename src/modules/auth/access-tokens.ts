// Access tokens: HS256 JWTs (jose) carrying the user and session ids, at most 15 minutes long. Only
// HS256 is accepted on the way in, so `alg: none` and algorithm confusion are refused by construction.
// The signing key is 256 random bits kept in the module's Redis, shared by every instance.
import { randomBytes } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { SignJWT, jwtVerify } from 'jose';
import { ModuleRedis } from '../../kernel/module/tokens.js';

const SIGNING_KEY = 'signing-key';
const ISSUER = 'autobot';
const AUDIENCE = 'autobot-api';

export interface AccessClaims {
  userId: string;
  sessionId: string;
}

/** Verified tokens kept in memory: a signature check costs more than the rest of a request. */
const VERIFIED_CACHE_SIZE = 10_000;

@injectable()
export class AccessTokens {
  private key: Uint8Array | undefined;
  // A token's signature and claims never change, so a verified token stays valid until it expires;
  // revocation is checked on every use by the session lookup, not here.
  private readonly verified = new Map<string, AccessClaims & { expiresAtMs: number }>();

  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  /** Loads the signing key, creating it on the very first start (the first instance to write wins). */
  async init(): Promise<void> {
    await this.redis.set(SIGNING_KEY, randomBytes(32).toString('base64'), 'NX');
    const stored = await this.redis.get(SIGNING_KEY);
    if (!stored) throw new Error('the access-token signing key could not be read');
    this.key = Buffer.from(stored, 'base64');
  }

  private get signingKey(): Uint8Array {
    if (!this.key) throw new Error('access tokens used before init()');
    return this.key;
  }

  sign(claims: AccessClaims, ttlS: number): Promise<string> {
    return new SignJWT({ sid: claims.sessionId })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(claims.userId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
      .sign(this.signingKey);
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
      const { payload } = await jwtVerify(token, this.signingKey, { algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE });
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
