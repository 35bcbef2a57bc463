// The audit trail: every execution and every decision, appended to a Redis stream in the module's
// database (bounded, oldest first out), read newest first by admins.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import type { terminalContract } from './contract.js';

type AuditPage = z.input<(typeof terminalContract)['operations']['listAudit']['output']>;
export type AuditEntry = AuditPage['items'][number];
export type AuditRecord = Omit<AuditEntry, 'id' | 'at'>;

const STREAM = 'audit';

@injectable()
export class AuditLog {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async append(entry: AuditRecord, maxEntries: number): Promise<void> {
    await this.redis.xadd(STREAM, 'MAXLEN', '~', maxEntries, '*', 'e', JSON.stringify({ at: new Date().toISOString(), ...entry }));
  }

  /** Newest first; the cursor is the id of the last entry of the previous page. */
  async page(limit: number, cursor: string | undefined): Promise<AuditPage> {
    const end = cursor ? `(${cursor}` : '+';
    const rows = await this.redis.xrevrange(STREAM, end, '-', 'COUNT', limit + 1);
    const items = rows.slice(0, limit).map(([id, fields]) => {
      const i = fields.indexOf('e');
      return { id, ...(JSON.parse(fields[i + 1] ?? '{}') as Omit<AuditEntry, 'id'>) };
    });
    return { items, nextCursor: rows.length > limit ? items[items.length - 1]!.id : null };
  }
}
