// Redis storage of the overrides (only what an admin set; defaults come from the schemas) and a version
// counter, written together so a reader never sees one without the other.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { ContractError } from '../../kernel/contract/errors.js';

const SETTINGS = 'settings';
const VERSION = 'version';

export type Overrides = Record<string, Record<string, unknown>>;

@injectable()
export class SettingsStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async read(): Promise<{ version: number; overrides: Overrides }> {
    // Plain commands, not MULTI: update() reads under WATCH, and an EXEC here would drop the watch.
    const [raw, version] = await Promise.all([this.redis.hgetall(SETTINGS), this.redis.get(VERSION)]);
    const overrides: Overrides = {};
    for (const [ns, json] of Object.entries(raw)) overrides[ns] = JSON.parse(json) as Record<string, unknown>;
    return { version: Number(version ?? 0), overrides };
  }

  /**
   * Optimistic update: `change` computes the new overrides of some namespaces from the current ones; if
   * another writer got in between, it runs again on fresh data.
   */
  async update(change: (current: Overrides) => Overrides): Promise<{ version: number; overrides: Overrides }> {
    for (let attempt = 0; attempt < 10; attempt++) {
      await this.redis.watch(SETTINGS, VERSION);
      try {
        const current = await this.read();
        const next = change(current.overrides);
        const tx = this.redis.multi();
        for (const [ns, values] of Object.entries(next)) {
          if (Object.keys(values).length === 0) tx.hdel(SETTINGS, ns);
          else tx.hset(SETTINGS, ns, JSON.stringify(values));
        }
        tx.incr(VERSION);
        const result = await tx.exec();
        if (result) {
          const version = Number(result[result.length - 1]![1]);
          return { version, overrides: { ...current.overrides, ...next } };
        }
      } finally {
        await this.redis.unwatch();
      }
    }
    throw new ContractError('conflict', 'settings are being changed by someone else; try again');
  }
}
