// The one place the edge judges a presented bearer credential, for REST routes, /metrics and socket.io
// handshakes alike: a token no valid credential can look like is refused without asking the auth port,
// and every refused credential counts against its client address, which answers 429 past its budget.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Actor } from '../kernel/context/request-context.js';
import { ContractError, isContractError } from '../kernel/contract/errors.js';
import type { Authenticator } from './authenticator.js';

/** Longer than any access token or API key the auth module issues: refused as a bad token, not parsed. */
export const MAX_TOKEN_CHARS = 4096;
// What a bearer token may consist of (RFC 6750 b64token): anything else cannot be a credential.
const TOKEN_SYNTAX = /^[A-Za-z0-9\-._~+/]+=*$/;
/** Addresses remembered as blocked, at most; the oldest is forgotten first (Redis still counts it). */
const BLOCKED_MEMORY = 10_000;

export interface FailureBudget {
  points: number;
  durationS: number;
}

export class Credentials {
  private readonly failures: RateLimiterRedis;
  // Addresses over budget, with when their window ends: a blocked address is refused without a Redis
  // round trip or an authentication, and a valid credential costs nothing extra.
  private readonly blockedUntil = new Map<string, number>();

  constructor(
    private readonly authenticate: Authenticator,
    redis: Redis,
    private readonly budget: FailureBudget,
    private readonly logger: Logger,
  ) {
    this.failures = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: 'auth-failures:address',
      points: budget.points,
      duration: budget.durationS,
      insuranceLimiter: new RateLimiterMemory({ points: budget.points, duration: budget.durationS }),
    });
  }

  /**
   * The actor behind `token`. A missing or refused credential throws `unauthenticated` (401); one more
   * refusal than the address's budget allows, or any credential from an address over budget, throws
   * `rate_limited` (429). An unreachable auth port throws what it answered (503, 504).
   */
  async actorFor(token: string | undefined, address: string | undefined): Promise<Actor> {
    const key = address ?? 'unknown';
    if (token) this.refuseIfBlocked(key);
    if (!token) throw unauthenticated();
    let actor: Actor | undefined;
    if (token.length <= MAX_TOKEN_CHARS && TOKEN_SYNTAX.test(token)) {
      try {
        actor = await this.authenticate(token);
      } catch (err) {
        // The port validates its input too: a token it refuses as input is a bad token, nothing more.
        if (!(isContractError(err) && err.code === 'invalid_input')) throw err;
      }
    }
    if (actor) return actor;
    throw await this.failed(key);
  }

  private refuseIfBlocked(key: string): void {
    const until = this.blockedUntil.get(key);
    if (until === undefined) return;
    const left = until - Date.now();
    if (left > 0) throw tooMany(left);
    this.blockedUntil.delete(key);
  }

  private async failed(key: string): Promise<ContractError> {
    try {
      await this.failures.consume(key);
      return unauthenticated();
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) {
        this.logger.warn({ err: (err as Error).message }, 'failed authentications could not be counted');
        return unauthenticated();
      }
      if (this.blockedUntil.size >= BLOCKED_MEMORY) this.blockedUntil.delete(this.blockedUntil.keys().next().value!);
      this.blockedUntil.set(key, Date.now() + err.msBeforeNext);
      this.logger.warn({ address: key, budget: this.budget }, 'too many failed authentications from one address');
      return tooMany(err.msBeforeNext);
    }
  }
}

function unauthenticated(): ContractError {
  return new ContractError('unauthenticated', 'sign in first: Authorization: Bearer <access token or API key>');
}

function tooMany(msLeft: number): ContractError {
  return new ContractError('rate_limited', 'Too many failed authentications from this address; try again later', {
    retryAfterS: Math.max(1, Math.ceil(msLeft / 1000)),
  });
}
