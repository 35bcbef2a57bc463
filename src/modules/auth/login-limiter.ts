// Password attempts are limited per username and per client address. An attempt is TAKEN (an atomic
// increment in Redis) before the password is checked and GIVEN BACK when the password was right, so
// only failures stay counted, and a burst of parallel guesses checks at most the budget's number of
// passwords: each guess needs its own slot, and Redis hands out the slots one at a time. Once either
// count has used its budget in the window, attempts answer 429 with Retry-After until the window ends.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { ContractError } from '../../kernel/contract/errors.js';

export interface LoginBudget {
  maxFailures: number;
  windowS: number;
}

/** A taken attempt: give it back once the password proved right. */
export interface Attempt {
  giveBack(): Promise<void>;
}

type Limiter = { limiter: RateLimiterRedis; key: string };

@injectable()
export class LoginLimiter {
  private limiters: { byUser: RateLimiterRedis; byAddress: RateLimiterRedis } | undefined;
  private budget: LoginBudget | undefined;

  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  private forBudget(budget: LoginBudget) {
    if (!this.limiters || this.budget?.maxFailures !== budget.maxFailures || this.budget.windowS !== budget.windowS) {
      const opts = { storeClient: this.redis, points: budget.maxFailures, duration: budget.windowS };
      this.limiters = {
        byUser: new RateLimiterRedis({ ...opts, keyPrefix: 'login-failures:user' }),
        byAddress: new RateLimiterRedis({ ...opts, keyPrefix: 'login-failures:address' }),
      };
      this.budget = budget;
    }
    return this.limiters;
  }

  /**
   * Takes one attempt from the username's and the address's budgets, or throws rate_limited (taking
   * nothing) when either is spent.
   */
  async take(username: string, address: string | undefined, budget: LoginBudget): Promise<Attempt> {
    const { byUser, byAddress } = this.forBudget(budget);
    const parts: Limiter[] = [{ limiter: byUser, key: username.toLowerCase() }];
    if (address) parts.push({ limiter: byAddress, key: address });
    const results = await Promise.allSettled(parts.map((p) => p.limiter.consume(p.key)));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (refused.length === 0) return { giveBack: () => giveBack(parts) };
    // The budget that did take this attempt gets it back: no password was checked.
    await giveBack(parts.filter((_, i) => results[i]!.status === 'fulfilled'));
    const limited = refused.filter((e): e is RateLimiterRes => e instanceof RateLimiterRes);
    if (limited.length < refused.length) throw refused.find((e) => !(e instanceof RateLimiterRes));
    const retryAfterS = Math.max(1, Math.ceil(Math.max(...limited.map((r) => r.msBeforeNext)) / 1000));
    throw new ContractError('rate_limited', 'Too many failed sign-ins; try again later', { retryAfterS });
  }
}

async function giveBack(parts: Limiter[]): Promise<void> {
  await Promise.all(parts.map((p) => p.limiter.reward(p.key, 1)));
}
