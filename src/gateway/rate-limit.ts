// Per-route-class rate limits kept in Redis, so every instance behind a load balancer shares the budget.
// If Redis is unreachable an in-memory limiter with the same budget stands in (per instance).
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Response } from 'express';
import type { RateLimitClass } from '../kernel/contract/define.js';
import { ContractError } from '../kernel/contract/errors.js';

/** The route classes, and `authFailures`: refused credentials per client address (see credentials.ts). */
export type Budgets = Record<Exclude<RateLimitClass, 'none'> | 'authFailures', { points: number; durationS: number }>;

export const defaultBudgets: Budgets = {
  default: { points: 600, durationS: 60 },
  auth: { points: 20, durationS: 60 },
  expensive: { points: 60, durationS: 60 },
  authFailures: { points: 100, durationS: 60 },
};

export class RateLimits {
  private readonly limiters = new Map<string, RateLimiterRedis>();

  constructor(redis: Redis, private readonly budgets: Budgets) {
    for (const [cls, b] of Object.entries(budgets)) {
      if (cls === 'authFailures') continue;
      this.limiters.set(
        cls,
        new RateLimiterRedis({
          storeClient: redis,
          keyPrefix: `ratelimit:${cls}`,
          points: b.points,
          duration: b.durationS,
          insuranceLimiter: new RateLimiterMemory({ points: b.points, duration: b.durationS }),
        }),
      );
    }
  }

  /**
   * Spends one point of `key`'s budget in `cls`; sets RateLimit-* headers on `res` (a REST answer; a
   * socket command has none); throws rate_limited when spent.
   */
  async consume(cls: RateLimitClass, key: string, res?: Response): Promise<void> {
    if (cls === 'none') return;
    const limiter = this.limiters.get(cls);
    const budget = this.budgets[cls];
    if (!limiter) return;
    try {
      const r = await limiter.consume(key);
      if (res) setHeaders(res, budget.points, r);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      if (res) setHeaders(res, budget.points, err);
      // The error envelope turns retryAfterS into the Retry-After header, as for any module's refusal.
      throw new ContractError('rate_limited', 'Too many requests, slow down', { retryAfterS: Math.max(1, Math.ceil(err.msBeforeNext / 1000)) });
    }
  }
}

function setHeaders(res: Response, limit: number, r: RateLimiterRes): void {
  res.setHeader('RateLimit-Limit', String(limit));
  res.setHeader('RateLimit-Remaining', String(Math.max(0, r.remainingPoints)));
  res.setHeader('RateLimit-Reset', String(Math.ceil(r.msBeforeNext / 1000)));
}
