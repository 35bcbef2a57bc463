// Approvals in the module's Redis. A decision is one atomic transition out of `pending` (a Lua script),
// so two deciders racing (the owner on two devices, an admin) cannot both win, and a decision after
// the deadline finds the approval expired. Pending approvals are indexed per owner and, when they
// need an admin, in the admins' queue. Remembered approvals are per user, per command fingerprint.
import { createHash, randomUUID } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { runScript } from '../../kernel/redis/lua-script.js';
import type { RiskClass } from './contract.js';

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired';

export interface StoredApproval {
  id: string;
  ownerId: string;
  ownerName?: string;
  command: string;
  /** The parsed command, when the approval is for a command (its fingerprint for `remember`). */
  pipeline?: string[][];
  cwd?: string;
  risk: RiskClass;
  reason: string;
  needsAdmin: boolean;
  executionId?: string;
  createdAt: string;
  expiresAt: string;
  status: ApprovalStatus;
  decidedBy?: string;
  decidedAt?: string;
  remember?: boolean;
  usedAt?: string;
}

type Immutable = Omit<StoredApproval, 'status' | 'decidedBy' | 'decidedAt' | 'remember' | 'usedAt'>;

// KEYS: approval, owner's pending index, admins' pending index. ARGV: status, decidedBy, decidedAt,
// remember, now (ms), id. Answers {status afterwards, 1 if this call made the transition}, or false
// when the approval is unknown. A decision arriving after the deadline expires the approval instead.
const DECIDE = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= 'pending' then return {status, 0} end
local target = ARGV[1]
if target ~= 'expired' and tonumber(redis.call('HGET', KEYS[1], 'expiresMs')) <= tonumber(ARGV[5]) then target = 'expired' end
redis.call('HSET', KEYS[1], 'status', target, 'decidedAt', ARGV[3])
if target ~= 'expired' then redis.call('HSET', KEYS[1], 'decidedBy', ARGV[2], 'remember', ARGV[4]) end
redis.call('ZREM', KEYS[2], ARGV[6])
redis.call('ZREM', KEYS[3], ARGV[6])
return {target, 1}
`;

// KEYS: approval. ARGV: usedAt. Marks an approved approval used, once.
const USE = `
if redis.call('HGET', KEYS[1], 'status') ~= 'approved' then return 0 end
if redis.call('HEXISTS', KEYS[1], 'usedAt') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'usedAt', ARGV[1])
return 1
`;

export const ADMIN_INDEX = 'approvals:admin';
const ownerIndex = (ownerId: string) => `approvals:owner:${ownerId}`;

export function newApprovalId(): string {
  return `ap_${randomUUID().replace(/-/g, '')}`;
}

/** The identity of a command for `remember`: its argv, stage by stage, and where it runs. */
export function commandFingerprint(pipeline: string[][], cwd: string): string {
  return createHash('sha256').update(JSON.stringify({ pipeline, cwd })).digest('hex');
}

@injectable()
export class ApprovalStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async create(a: Immutable, retentionS: number): Promise<StoredApproval> {
    const key = `approval:${a.id}`;
    const expiresMs = Date.parse(a.expiresAt);
    const tx = this.redis.multi();
    tx.hset(key, { data: JSON.stringify(a), status: 'pending', expiresMs: String(expiresMs) });
    tx.expire(key, retentionS);
    tx.zadd(ownerIndex(a.ownerId), expiresMs, a.id);
    if (a.needsAdmin) tx.zadd(ADMIN_INDEX, expiresMs, a.id);
    await tx.exec();
    return { ...a, status: 'pending' };
  }

  async get(id: string): Promise<StoredApproval | undefined> {
    const h = await this.redis.hgetall(`approval:${id}`);
    if (!h.data) return undefined;
    const a = JSON.parse(h.data) as Immutable;
    return {
      ...a,
      status: h.status as ApprovalStatus,
      ...(h.decidedBy ? { decidedBy: h.decidedBy } : {}),
      ...(h.decidedAt ? { decidedAt: h.decidedAt } : {}),
      ...(h.remember ? { remember: h.remember === '1' } : {}),
      ...(h.usedAt ? { usedAt: h.usedAt } : {}),
    };
  }

  /**
   * The one transition out of `pending`. Answers the status afterwards and whether this call made the
   * transition (another decider, or the deadline, may have come first); undefined for an unknown id.
   */
  async decide(
    a: StoredApproval,
    status: Exclude<ApprovalStatus, 'pending'>,
    decidedBy: string,
    remember: boolean,
  ): Promise<{ status: ApprovalStatus; changed: boolean } | undefined> {
    const now = new Date();
    const r = (await runScript(
      this.redis,
      DECIDE,
      3,
      `approval:${a.id}`,
      ownerIndex(a.ownerId),
      ADMIN_INDEX,
      status,
      decidedBy,
      now.toISOString(),
      remember ? '1' : '0',
      String(now.getTime()),
      a.id,
    )) as [string, number] | null;
    return r ? { status: r[0] as ApprovalStatus, changed: r[1] === 1 } : undefined;
  }

  async markUsed(id: string): Promise<boolean> {
    return (await runScript(this.redis, USE, 1, `approval:${id}`, new Date().toISOString())) === 1;
  }

  async pendingIds(ownerId: string | undefined, admins: boolean): Promise<string[]> {
    const ids = new Set<string>();
    if (ownerId) for (const id of await this.redis.zrange(ownerIndex(ownerId), '0', '499')) ids.add(id);
    if (admins) for (const id of await this.redis.zrange(ADMIN_INDEX, '0', '499')) ids.add(id);
    return [...ids];
  }

  /** The approval a key is bound to, if any. */
  async boundTo(key: string): Promise<string | undefined> {
    return (await this.redis.get(`approval-key:${key}`)) ?? undefined;
  }

  /** Binds an idempotency key to an approval; answers the approval already bound, if any. */
  async claimKey(key: string, id: string, retentionS: number): Promise<string | undefined> {
    const set = await this.redis.set(`approval-key:${key}`, id, 'EX', retentionS, 'NX');
    if (set === 'OK') return undefined;
    return (await this.redis.get(`approval-key:${key}`)) ?? undefined;
  }

  async remember(userId: string, fingerprint: string, risk: RiskClass): Promise<void> {
    await this.redis.hset(`remember:${userId}`, fingerprint, risk);
  }

  async remembered(userId: string, fingerprint: string): Promise<RiskClass | undefined> {
    return ((await this.redis.hget(`remember:${userId}`, fingerprint)) ?? undefined) as RiskClass | undefined;
  }
}
