// The saga journal in Redis (kernel connection, keys under `kernel:`):
//   saga:<id>            hash: the saga record (type, status, input, current step, …)
//   saga:<id>:steps      hash: step name → step record JSON (intent and outcome of each call)
//   saga-index:all       zset: every saga, scored by a creation sequence number (newest = highest)
//   saga-index:<status>  zset: the sagas in that status, same scores
//   saga-index:seq       counter for those scores
//   saga-index:expiry    zset: finished sagas, scored by when their journal expires (epoch ms)
// A finished saga's record and steps carry a TTL (the retention; longer for failed ones), so Redis
// removes them on time; prune() then takes their ids out of the indexes.
// Every write that belongs together (a step outcome and the saga's status, a status and its index
// entries) goes through one Lua script, so Redis applies it all or nothing. The script is also a fence:
//   saga-lease:<id>      the lease: the token of the process driving the saga, with a TTL it renews
// a write made by the process driving a saga only lands while the saga's lease still holds the writer's
// token, so a process that lost its lease (a long GC pause, a partition) cannot overwrite the journal
// of a saga that another process has since resumed. A status change moves the saga between the
// indexes inside the same script, and a terminal one gives the lease up with it.
import type { Redis } from 'ioredis';
import type { Actor } from '../context/request-context.js';
import { sagaStatuses, type SagaFailure, type SagaRecord, type SagaStatus, type SagaStepRecord } from './saga-record.js';

/** The lease a writer must hold (key relative to the kernel prefix) and its token. */
export interface SagaLease {
  key: string;
  token: string;
}

/** The lease key of a saga (relative to the kernel prefix). */
export function leaseKey(id: string): string {
  return `saga-lease:${id}`;
}

export class LeaseLostError extends Error {
  constructor(sagaId: string) {
    super(`saga ${sagaId}: this process no longer holds its lease; another process resumes it`);
    this.name = 'LeaseLostError';
  }
}

export interface NewSaga {
  id: string;
  type: string;
  input: unknown;
  requestId: string;
  actor?: Actor;
  steps: SagaStepRecord[];
  now: string;
}

/** A change to one saga, applied atomically. */
export interface SagaChange {
  status?: { from: SagaStatus; to: SagaStatus };
  currentStep?: string;
  error?: SagaFailure;
  steps?: SagaStepRecord[];
}

// KEYS[1] lease key (unused when ARGV[1] is ''), KEYS[2] saga record, KEYS[3..] keys the ops name.
// ARGV[1] lease token or '', ARGV[2] 'create' (only when the record is absent) or 'update' (only when
// present), ARGV[3] JSON list of [command, keyIndex, ...string args], ARGV[4] the saga id.
// Two ops are the script's own: ['#SEQ', counterKeyIndex] takes the next creation sequence number,
// which later args '#seq' stand for; ['#MOVE', fromIndex, toIndex, allIndex] moves the saga from one
// status index to another with the score it has in the `all` index.
const JOURNAL_WRITE = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local exists = redis.call('EXISTS', KEYS[2])
if ARGV[2] == 'create' and exists == 1 then return -1 end
if ARGV[2] == 'update' and exists == 0 then return -2 end
local seq = nil
for _, op in ipairs(cjson.decode(ARGV[3])) do
  if op[1] == '#SEQ' then
    seq = tostring(redis.call('INCR', KEYS[op[2]]))
  elseif op[1] == '#MOVE' then
    local score = redis.call('ZSCORE', KEYS[op[4]], ARGV[4]) or '0'
    redis.call('ZREM', KEYS[op[2]], ARGV[4])
    redis.call('ZADD', KEYS[op[3]], score, ARGV[4])
  else
    for i = 3, #op do if op[i] == '#seq' then op[i] = seq end end
    redis.call(op[1], KEYS[op[2]], unpack(op, 3))
  end
end
return 1
`;

// KEYS[1] lease. ARGV[1] token, ARGV[2] ms. Renews our own lease; 0 when it is gone or another's.
const LEASE_RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
// KEYS[1] lease. ARGV[1] token. Gives our own lease up.
const LEASE_RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

type Op = [command: string, keyIndex: number, ...args: (string | number)[]];

interface JournalRedis extends Redis {
  sagaJournalWrite(numKeys: number, ...keysAndArgs: string[]): Promise<number>;
  sagaJournalPrune(numKeys: number, ...keysAndArgs: string[]): Promise<number>;
  sagaLeaseRenew(numKeys: number, ...keysAndArgs: string[]): Promise<number>;
  sagaLeaseRelease(numKeys: number, ...keysAndArgs: string[]): Promise<number>;
}

const PAGE_MAX = 200;
const EXPIRY_INDEX = 'saga-index:expiry';

/** How long finished journals are kept. */
export interface SagaRetention {
  /** A saga that completed. */
  completedMs: number;
  /** A saga that failed or was compensated: kept longer, someone may need to look into it. */
  failedMs: number;
}

export const DEFAULT_SAGA_RETENTION: SagaRetention = { completedMs: 7 * 86_400_000, failedMs: 30 * 86_400_000 };

// KEYS[1] saga record, KEYS[2] expiry index, KEYS[3..] every other index. ARGV[1] id.
// Takes an expired saga out of the indexes, unless a saga of the same id was started again since.
const PRUNE_ONE = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('TTL', KEYS[1]) == -1 then redis.call('ZREM', KEYS[2], ARGV[1]) end
  return 0
end
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
`;

export class SagaJournal {
  private readonly redis: JournalRedis;

  constructor(
    redis: Redis,
    private readonly retention: SagaRetention = DEFAULT_SAGA_RETENTION,
  ) {
    redis.defineCommand('sagaJournalWrite', { lua: JOURNAL_WRITE });
    redis.defineCommand('sagaJournalPrune', { lua: PRUNE_ONE });
    redis.defineCommand('sagaLeaseRenew', { lua: LEASE_RENEW });
    redis.defineCommand('sagaLeaseRelease', { lua: LEASE_RELEASE });
    // defineCommand adds the method at run time; this cast only names it for the type checker.
    this.redis = redis as JournalRedis;
  }

  private static recordKey(id: string): string {
    return `saga:${id}`;
  }
  private static stepsKey(id: string): string {
    return `saga:${id}:steps`;
  }
  private static indexKey(which: SagaStatus | 'all'): string {
    return `saga-index:${which}`;
  }

  /**
   * Writes a new saga; false when a saga with this id exists already (nothing is written then). With
   * `lease`, the writer takes the new saga's lease in the same script (the process that starts a saga
   * drives it at once), valid for `lease.ttlMs`.
   */
  async create(saga: NewSaga, lease?: SagaLease & { ttlMs: number }): Promise<boolean> {
    const keys = [
      SagaJournal.stepsKey(saga.id),
      SagaJournal.indexKey('all'),
      SagaJournal.indexKey('running'),
      'saga-index:seq',
    ];
    const fields: Record<string, string> = {
      id: saga.id,
      type: saga.type,
      status: 'running',
      input: JSON.stringify(saga.input),
      currentStep: '',
      requestId: saga.requestId,
      createdAt: saga.now,
      updatedAt: saga.now,
      seq: '#seq',
      stepNames: JSON.stringify(saga.steps.map((s) => s.name)),
      ...(saga.actor ? { actor: JSON.stringify(saga.actor) } : {}),
    };
    const ops: Op[] = [
      ['#SEQ', 6],
      ['HSET', 2, ...Object.entries(fields).flat()],
      ['ZADD', 4, '#seq', saga.id],
      ['ZADD', 5, '#seq', saga.id],
    ];
    if (saga.steps.length) ops.push(['HSET', 3, ...saga.steps.flatMap((s) => [s.name, JSON.stringify(s)])]);
    if (lease) {
      keys.push(lease.key);
      ops.push(['SET', 7, lease.token, 'PX', String(lease.ttlMs)]);
    }
    const r = await this.run(undefined, saga.id, 'create', keys, ops);
    return r === 1;
  }

  /** Takes a saga's lease for `ttlMs`; without it, how long the holder's lease still lasts (ms). */
  async acquireLease(lease: SagaLease, ttlMs: number): Promise<{ acquired: true } | { acquired: false; remainingMs: number }> {
    const replies = (await this.redis.multi().set(lease.key, lease.token, 'PX', ttlMs, 'NX').pttl(lease.key).exec()) ?? [];
    const [set, ttl] = replies.map(([err, value]) => {
      if (err) throw err;
      return value;
    });
    return set === 'OK' ? { acquired: true } : { acquired: false, remainingMs: Math.max(0, Number(ttl)) };
  }

  /** Renews leases this process holds (one pipeline); answers those that were lost. */
  async renewLeases(leases: SagaLease[], ttlMs: number): Promise<SagaLease[]> {
    const replies = await Promise.all(leases.map((l) => this.redis.sagaLeaseRenew(1, l.key, l.token, String(ttlMs))));
    return leases.filter((_, i) => replies[i] !== 1);
  }

  async releaseLease(lease: SagaLease): Promise<void> {
    await this.redis.sagaLeaseRelease(1, lease.key, lease.token);
  }

  async load(id: string): Promise<SagaRecord | undefined> {
    // One MULTI so the record and its steps come from the same moment.
    const replies = await this.redis.multi().hgetall(SagaJournal.recordKey(id)).hgetall(SagaJournal.stepsKey(id)).exec();
    const [rec, steps] = (replies ?? []).map(([err, value]) => {
      if (err) throw err;
      return value as Record<string, string>;
    });
    return rec && steps ? toRecord(rec, steps) : undefined;
  }

  /** Applies one change atomically; throws LeaseLostError when `lease` no longer holds. */
  async write(id: string, lease: SagaLease | undefined, change: SagaChange, now: string): Promise<void> {
    const keys: string[] = [SagaJournal.stepsKey(id)];
    const fields: string[] = ['updatedAt', now];
    if (change.status) fields.push('status', change.status.to);
    if (change.currentStep !== undefined) fields.push('currentStep', change.currentStep);
    if (change.error) fields.push('error', JSON.stringify(change.error));
    const ops: Op[] = [['HSET', 2, ...fields]];
    if (change.steps?.length) ops.push(['HSET', 3, ...change.steps.flatMap((s) => [s.name, JSON.stringify(s)])]);
    if (change.status && change.status.from !== change.status.to) {
      keys.push(SagaJournal.indexKey(change.status.from), SagaJournal.indexKey(change.status.to), SagaJournal.indexKey('all'));
      // The score (creation order) is copied from the `all` index so every index sorts alike.
      ops.push(['#MOVE', 4, 5, 6]);
      const keepMs = this.keepMs(change.status.to);
      if (keepMs !== undefined) {
        // Finished: the journal expires with the status write itself, so no finished saga stays forever.
        keys.push(EXPIRY_INDEX);
        ops.push(['PEXPIRE', 2, String(keepMs)], ['PEXPIRE', 3, String(keepMs)], ['ZADD', 7, String(Date.parse(now) + keepMs), id]);
        // Nothing is left to drive: the lease goes with the last write.
        if (lease) ops.push(['DEL', 1]);
      }
    }
    const r = await this.run(lease, id, 'update', keys, ops);
    if (r === 0) throw new LeaseLostError(id);
    if (r === -2) throw new Error(`saga ${id}: journal record vanished`);
  }

  /** How long a saga's journal is kept once it reached `status`; undefined while it is unfinished. */
  private keepMs(status: SagaStatus): number | undefined {
    if (status === 'completed') return this.retention.completedMs;
    if (status === 'failed' || status === 'compensated') return this.retention.failedMs;
    return undefined;
  }

  /**
   * Newest first. The cursor is the creation sequence number of the last item of the previous page.
   * Sagas whose journal expired but whose ids are still indexed (until the next prune) are skipped, and
   * the page is filled from further down, so a page is short only at the end.
   */
  async list(opts: { status?: SagaStatus; limit: number; cursor?: number }): Promise<{ items: SagaRecord[]; nextCursor: string | null }> {
    const limit = Math.min(Math.max(1, opts.limit), PAGE_MAX);
    const index = SagaJournal.indexKey(opts.status ?? 'all');
    const items: SagaRecord[] = [];
    let max = opts.cursor === undefined ? '+inf' : `(${opts.cursor}`;
    let lastSeq: string | null = null;
    for (;;) {
      // One more than the page needs: finding it tells that there is a next page.
      const want = limit - items.length + 1;
      const entries = await this.redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', 0, want);
      const page: { id: string; seq: string }[] = [];
      for (let i = 0; i + 1 < entries.length; i += 2) page.push({ id: entries[i]!, seq: entries[i + 1]! });
      const records = await Promise.all(page.map((e) => this.load(e.id)));
      for (let i = 0; i < page.length; i++) {
        const record = records[i];
        if (!record) continue;
        if (items.length === limit) return { items, nextCursor: lastSeq };
        items.push(record);
        lastSeq = page[i]!.seq;
      }
      if (page.length < want) return { items, nextCursor: null };
      max = `(${page[page.length - 1]!.seq}`;
    }
  }

  /**
   * Takes the ids of expired journals out of the indexes (Redis has removed the journals themselves);
   * returns how many. Bounded work per call: `batch` ids.
   */
  async prune(now = Date.now(), batch = 500): Promise<number> {
    const ids = await this.redis.zrangebyscore(EXPIRY_INDEX, '-inf', String(now), 'LIMIT', 0, batch);
    const indexes = [SagaJournal.indexKey('all'), ...sagaStatuses.map((s) => SagaJournal.indexKey(s))];
    let pruned = 0;
    for (const id of ids) {
      const keys = [SagaJournal.recordKey(id), EXPIRY_INDEX, ...indexes];
      pruned += await this.redis.sagaJournalPrune(keys.length, ...keys, id);
    }
    return pruned;
  }

  /** Ids of the sagas in a status, oldest first, in pages (for the start-up sweep). */
  async *idsIn(status: SagaStatus, pageSize = 500): AsyncGenerator<string> {
    let min = '-inf';
    for (;;) {
      const entries = await this.redis.zrangebyscore(SagaJournal.indexKey(status), min, '+inf', 'WITHSCORES', 'LIMIT', 0, pageSize);
      for (let i = 0; i + 1 < entries.length; i += 2) yield entries[i]!;
      if (entries.length < pageSize * 2) return;
      min = `(${entries[entries.length - 1]}`;
    }
  }

  /**
   * Unfinished sagas (running or compensating) whose lease is not held: their driver died (or gave them
   * back) and no worker has taken them since. A saga just waiting in its queue shows here too.
   */
  async withoutLease(): Promise<string[]> {
    const ids: string[] = [];
    for (const status of ['running', 'compensating'] as const) for await (const id of this.idsIn(status)) ids.push(id);
    const free: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500);
      const held = await this.redis.pipeline(batch.map((id) => ['exists', leaseKey(id)])).exec();
      batch.forEach((id, j) => {
        const [err, n] = held?.[j] ?? [null, 1];
        if (!err && n === 0) free.push(id);
      });
    }
    return free;
  }

  private async run(lease: SagaLease | undefined, id: string, mode: 'create' | 'update', extraKeys: string[], ops: Op[]): Promise<number> {
    // Without a lease KEYS[1] is never read; the record key stands in so every key is a real one.
    const leaseKey = lease?.key ?? SagaJournal.recordKey(id);
    const keys = [leaseKey, SagaJournal.recordKey(id), ...extraKeys];
    return this.redis.sagaJournalWrite(keys.length, ...keys, lease?.token ?? '', mode, JSON.stringify(ops), id);
  }
}

function parseJson<T>(value: string | undefined): T | undefined {
  return value === undefined || value === '' ? undefined : (JSON.parse(value) as T);
}

function toRecord(rec: Record<string, string>, steps: Record<string, string>): SagaRecord | undefined {
  if (!rec.id) return undefined;
  const names = parseJson<string[]>(rec.stepNames) ?? [];
  const error = parseJson<SagaFailure>(rec.error);
  const actor = parseJson<Actor>(rec.actor);
  return {
    id: rec.id,
    type: rec.type ?? '',
    status: (rec.status ?? 'running') as SagaStatus,
    input: parseJson(rec.input),
    currentStep: rec.currentStep ? rec.currentStep : null,
    ...(error ? { error } : {}),
    requestId: rec.requestId ?? '',
    ...(actor ? { actor } : {}),
    createdAt: rec.createdAt ?? '',
    updatedAt: rec.updatedAt ?? '',
    steps: names.map((n) => parseJson<SagaStepRecord>(steps[n]) ?? missingStep(n)),
  };
}

function missingStep(name: string): SagaStepRecord {
  return { name, module: '', operation: '', status: 'pending', attempts: 0, idempotencyKey: '' };
}
