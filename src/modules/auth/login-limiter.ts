// Failed sign-ins are counted per username and per client address; once either has used its budget in
// the window, sign-in answers 429 with Retry-After until the window has passed.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { ContractError } from '../../kernel/contract/errors.js';

interface Budget {
  maxFailures: number;
  windowS: number;
}

@injectable()
export class LoginLimiter {
  private limiters: { byUser: RateLimiterRedis; byAddress: RateLimiterRedis } | undefined;
  private budget: Budget | undefined;

  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  private forBudget(budget: Budget) {
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

  /** Throws rate_limited when the username or the address has no failures left. */
  async check(username: string, address: string | undefined, budget: Budget): Promise<void> {
    const { byUser, byAddress } = this.forBudget(budget);
    const [u, a] = await Promise.all([byUser.get(username.toLowerCase()), address ? byAddress.get(address) : null]);
    const blocked = [u, a].filter((r) => r !== null && r.consumedPoints >= budget.maxFailures);
    if (blocked.length) {
      const retryAfterS = Math.max(1, Math.ceil(Math.max(...blocked.map((r) => r!.msBeforeNext)) / 1000));
      throw new ContractError('rate_limited', 'Too many failed sign-ins; try again later', { retryAfterS });
    }
  }

  async recordFailure(username: string, address: string | undefined, budget: Budget): Promise<void> {
    const { byUser, byAddress } = this.forBudget(budget);
    // penalty() counts without refusing: the refusal is check()'s job, before the password is even looked at.
    await Promise.all([byUser.penalty(username.toLowerCase()), address ? byAddress.penalty(address) : undefined]);
  }

  async recordSuccess(username: string, budget: Budget): Promise<void> {
    await this.forBudget(budget).byUser.delete(username.toLowerCase());
  }
}
