// A small test module for the saga orchestrator: a ledger of integer balances whose operations apply
// their effect exactly once per idempotency key (taken from the request context, as a real module
// would), atomically with recording that key. It counts every call and every applied effect per key,
// so a test can prove "called again after a crash, applied once".
import { z } from 'zod';
import type { Redis } from 'ioredis';
import { currentContext } from '../../src/kernel/context/request-context.js';
import { defineContract, operation, type Port } from '../../src/kernel/contract/define.js';
import { ContractError } from '../../src/kernel/contract/errors.js';
import { createLocalBinding } from '../../src/kernel/transport/local-binding.js';
import { defineSaga } from '../../src/kernel/sagas/saga-definition.js';

const entry = z.object({ account: z.string().min(1), amount: z.number().int().positive() });
const applied = z.object({ account: z.string(), amount: z.number().int(), balance: z.number().int(), applied: z.boolean() });

export const ledgerContract = defineContract({
  id: 'ledger',
  summary: 'Test ledger: balances changed once per idempotency key.',
  operations: {
    debit: operation({ input: entry, output: applied }),
    credit: operation({ input: entry, output: applied }),
    /** Undoes whatever effect was recorded under `key`, once; nothing recorded means nothing to undo. */
    reverse: operation({ input: z.object({ key: z.string().min(1) }), output: z.object({ undone: z.boolean() }) }),
  },
  errors: ['conflict', 'invalid_input', 'unavailable'],
});

export type LedgerPort = Port<typeof ledgerContract>;

/** Test hooks, called with the operation name and the call's idempotency key. */
export interface LedgerHooks {
  /** Before anything is applied: throw here to simulate a failure that changed nothing. */
  before?: (op: string, key: string) => Promise<void> | void;
  /** After the effect was applied (or found applied before) and before the answer: hang here to crash mid-call. */
  after?: (op: string, key: string) => Promise<void> | void;
}

// KEYS: idem:<key>, balance:<account>, applied:<key>. ARGV: delta, account.
// Answers {1, record} when applied now, {0, record} when applied before, {-1, balance} when refused.
const APPLY = `
local prev = redis.call('GET', KEYS[1])
if prev then return {0, prev} end
local delta = tonumber(ARGV[1])
local balance = tonumber(redis.call('GET', KEYS[2]) or '0')
if balance + delta < 0 then return {-1, tostring(balance)} end
local after = redis.call('INCRBY', KEYS[2], delta)
local record = cjson.encode({account = ARGV[2], delta = delta, balance = after})
redis.call('SET', KEYS[1], record)
redis.call('INCR', KEYS[3])
return {1, record}
`;

// KEYS: idem:<reverseKey>, balance:<account>, applied:<reverseKey>. ARGV: delta to add back.
const REVERSE = `
if redis.call('GET', KEYS[1]) then return 0 end
redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], '1')
redis.call('INCR', KEYS[3])
return 1
`;

// A tombstone: reversing a key before its effect landed makes a late effect refuse to land.
const CANCELLED = '{"cancelled":true}';

interface EffectRecord {
  account?: string;
  delta?: number;
  balance?: number;
  cancelled?: boolean;
}

function keyOfContext(): string {
  const key = currentContext()?.idempotencyKey;
  if (!key) throw new ContractError('invalid_input', 'the ledger needs an idempotency key');
  return key;
}

export function createLedger(redis: Redis, hooks: LedgerHooks = {}): LedgerPort {
  async function apply(op: 'debit' | 'credit', input: z.output<typeof entry>) {
    const key = keyOfContext();
    await redis.incr(`calls:${key}`);
    await hooks.before?.(op, key);
    const delta = op === 'debit' ? -input.amount : input.amount;
    const [state, payload] = (await redis.eval(APPLY, 3, `idem:${key}`, `balance:${input.account}`, `applied:${key}`, String(delta), input.account)) as [
      number,
      string,
    ];
    if (state === -1) throw new ContractError('conflict', `insufficient funds on ${input.account} (balance ${payload})`);
    const record = JSON.parse(payload) as EffectRecord;
    if (record.cancelled) throw new ContractError('conflict', `${key} was cancelled by a compensation`);
    await hooks.after?.(op, key);
    return { account: input.account, amount: input.amount, balance: record.balance ?? 0, applied: state === 1 };
  }

  return createLocalBinding(ledgerContract, {
    debit: (input) => apply('debit', input),
    credit: (input) => apply('credit', input),
    async reverse({ key: original }) {
      const key = keyOfContext();
      await redis.incr(`calls:${key}`);
      await hooks.before?.('reverse', key);
      // Nothing recorded yet: leave a tombstone so the effect cannot land after its compensation.
      await redis.set(`idem:${original}`, CANCELLED, 'NX');
      const record = JSON.parse((await redis.get(`idem:${original}`)) ?? CANCELLED) as EffectRecord;
      let undone = false;
      if (!record.cancelled && record.account && record.delta) {
        const r = await redis.eval(REVERSE, 3, `idem:${key}`, `balance:${record.account}`, `applied:${key}`, String(-record.delta));
        undone = r === 1;
      }
      await hooks.after?.('reverse', key);
      return { undone };
    },
  });
}

/** What tests read back: balances and, per idempotency key, calls made and effects applied. */
export async function ledgerState(redis: Redis, accounts: string[], keys: string[]) {
  const balances: Record<string, number> = {};
  for (const a of accounts) balances[a] = Number((await redis.get(`balance:${a}`)) ?? 0);
  const calls: Record<string, number> = {};
  const appliedCount: Record<string, number> = {};
  for (const k of keys) {
    calls[k] = Number((await redis.get(`calls:${k}`)) ?? 0);
    appliedCount[k] = Number((await redis.get(`applied:${k}`)) ?? 0);
  }
  return { balances, calls, applied: appliedCount };
}

export const transferInput = z.object({
  from: z.string().min(1),
  to: z.string().min(1),
  amount: z.number().int().positive(),
  feePayer: z.string().min(1),
  fee: z.number().int().positive(),
});
export type TransferInput = z.infer<typeof transferInput>;

/**
 * Three ledger steps: debit the source, credit the target with what was debited (read from the
 * first step's journaled result), charge a fee. Each step is undone by `reverse` of its own key.
 */
export const transferSaga = defineSaga<TransferInput>({
  type: 'test.transfer',
  input: transferInput,
  steps: [
    {
      name: 'debitSource',
      module: 'ledger',
      operation: 'debit',
      input: (i) => ({ account: i.from, amount: i.amount }),
      compensate: { operation: 'reverse', input: (_i, _r, call) => ({ key: call.stepKey }) },
    },
    {
      name: 'creditTarget',
      module: 'ledger',
      operation: 'credit',
      input: (i, results) => ({ account: i.to, amount: (results.debitSource as { amount: number }).amount }),
      compensate: { operation: 'reverse', input: (_i, _r, call) => ({ key: call.stepKey }) },
    },
    {
      name: 'chargeFee',
      module: 'ledger',
      operation: 'debit',
      input: (i) => ({ account: i.feePayer, amount: i.fee }),
      compensate: { operation: 'reverse', input: (_i, _r, call) => ({ key: call.stepKey }) },
    },
  ],
});

export const transferStepNames = ['debitSource', 'creditTarget', 'chargeFee'] as const;
