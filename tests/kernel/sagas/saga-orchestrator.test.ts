import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Queue } from 'bullmq';
import { currentContext, runWithContext, type RequestContext } from '../../../src/kernel/context/request-context.js';
import { ContractError } from '../../../src/kernel/contract/errors.js';
import { defineSaga } from '../../../src/kernel/sagas/saga-definition.js';
import { LeaseLostError, SagaJournal } from '../../../src/kernel/sagas/saga-journal.js';
import { SAGA_QUEUE_PREFIX, sagaQueueName } from '../../../src/kernel/sagas/saga-orchestrator.js';
import { ledgerState, transferStepNames, type TransferInput } from '../../support/saga-ledger.js';
import { latch, SagaHarness, sagaSuite, waitForSaga } from '../../support/saga-harness.js';

let h: SagaHarness;
sagaSuite((next) => (h = next));

const transfer = (over: Partial<TransferInput> = {}): TransferInput => ({
  from: 'alice',
  to: 'bob',
  amount: 30,
  feePayer: 'carol',
  fee: 5,
  ...over,
});

function keysOf(id: string, suffix = ''): string[] {
  return transferStepNames.map((s) => `${id}:${s}${suffix}`);
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('saga orchestrator', () => {
  it('runs every step once, in the saga request context, and journals intent and outcome of each', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const seen: { op: string; key: string; ctx: RequestContext | undefined }[] = [];
    const ledger = h.ledger({ before: (op, key) => void seen.push({ op, key, ctx: currentContext() }) });
    const orch = h.orchestrator(ledger);
    await orch.startWorker();

    const actor = { type: 'user' as const, id: 'u-1', roles: ['user'] };
    const id = await runWithContext({ requestId: 'req-happy', actor }, () => orch.start('test.transfer', transfer(), { id: 'happy-1' }));
    expect(id).toBe('happy-1');
    const saga = await waitForSaga(orch, id, ['completed', 'compensated', 'failed']);

    expect(saga.status).toBe('completed');
    expect(saga).toMatchObject({ type: 'test.transfer', input: transfer(), currentStep: 'chargeFee', requestId: 'req-happy', actor });
    expect(saga.error).toBeUndefined();
    expect(saga.createdAt).toMatch(ISO);
    expect(saga.updatedAt).toMatch(ISO);
    expect(saga.steps.map((s) => [s.name, s.module, s.operation, s.status, s.attempts, s.idempotencyKey])).toEqual([
      ['debitSource', 'ledger', 'debit', 'completed', 1, 'happy-1:debitSource'],
      ['creditTarget', 'ledger', 'credit', 'completed', 1, 'happy-1:creditTarget'],
      ['chargeFee', 'ledger', 'debit', 'completed', 1, 'happy-1:chargeFee'],
    ]);
    // Intent before the call, outcome after it, and each step only after the previous outcome.
    let previousOutcome = saga.createdAt;
    for (const step of saga.steps) {
      expect(step.startedAt).toMatch(ISO);
      expect(step.finishedAt).toMatch(ISO);
      expect(step.startedAt! >= previousOutcome).toBe(true);
      expect(step.finishedAt! >= step.startedAt!).toBe(true);
      previousOutcome = step.finishedAt!;
    }
    // Results are journaled; the second step's input came from the first one's result.
    expect(saga.steps[0]!.result).toEqual({ account: 'alice', amount: 30, balance: 70, applied: true });
    expect(saga.steps[1]!.result).toEqual({ account: 'bob', amount: 30, balance: 30, applied: true });

    expect(seen.map((s) => [s.op, s.key])).toEqual([
      ['debit', 'happy-1:debitSource'],
      ['credit', 'happy-1:creditTarget'],
      ['debit', 'happy-1:chargeFee'],
    ]);
    for (const s of seen) expect(s.ctx).toMatchObject({ requestId: 'req-happy', actor, idempotencyKey: s.key });

    const state = await ledgerState(h.ledgerRedis, ['alice', 'bob', 'carol'], keysOf(id));
    expect(state.balances).toEqual({ alice: 70, bob: 30, carol: 5 });
    expect(Object.values(state.applied)).toEqual([1, 1, 1]);
    expect(Object.values(state.calls)).toEqual([1, 1, 1]);
  });

  it('compensates the recorded steps in reverse order when a step fails for good', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 2 });
    const compensations: string[] = [];
    const ledger = h.ledger({ before: (op, key) => void (op === 'reverse' && compensations.push(key)) });
    const orch = h.orchestrator(ledger);
    await orch.startWorker();

    const id = await orch.start('test.transfer', transfer(), { id: 'fail-1' });
    const saga = await waitForSaga(orch, id, ['completed', 'compensated', 'failed']);

    expect(saga.status).toBe('compensated');
    expect(saga.error).toMatchObject({ step: 'chargeFee', phase: 'step', code: 'conflict' });
    expect(saga.error!.message).toMatch(/insufficient funds on carol/);
    // conflict is not retryable: one attempt only.
    expect(saga.steps[2]).toMatchObject({ status: 'compensated', attempts: 1, error: { code: 'conflict' } });
    expect(saga.steps.map((s) => s.status)).toEqual(['compensated', 'compensated', 'compensated']);
    for (const step of saga.steps) {
      expect(step.compensation).toMatchObject({ operation: 'reverse', idempotencyKey: `${step.idempotencyKey}:compensate`, attempts: 1 });
      expect(step.compensation!.finishedAt).toMatch(ISO);
    }
    // The failing step's effect might have landed, so it is compensated too (here: nothing to undo).
    expect(compensations).toEqual(['fail-1:chargeFee:compensate', 'fail-1:creditTarget:compensate', 'fail-1:debitSource:compensate']);

    const state = await ledgerState(h.ledgerRedis, ['alice', 'bob', 'carol'], [...keysOf(id), ...keysOf(id, ':compensate')]);
    expect(state.balances).toEqual({ alice: 100, bob: 0, carol: 2 });
    expect(state.applied).toEqual({
      'fail-1:debitSource': 1,
      'fail-1:creditTarget': 1,
      'fail-1:chargeFee': 0,
      'fail-1:debitSource:compensate': 1,
      'fail-1:creditTarget:compensate': 1,
      'fail-1:chargeFee:compensate': 0,
    });
  });

  it('retries a step after retryable errors with the same idempotency key, and compensates when they persist', async () => {
    await h.setBalances({ alice: 200, bob: 0, carol: 50 });
    const failures = new Map<string, number>([
      ['retry-1:creditTarget', 2], // fails twice, then succeeds (default retries: 2)
      ['retry-2:creditTarget', 99], // keeps failing
    ]);
    const ledger = h.ledger({
      before(_op, key) {
        const left = failures.get(key) ?? 0;
        if (left > 0) {
          failures.set(key, left - 1);
          throw new ContractError('unavailable', 'ledger briefly down');
        }
      },
    });
    const orch = h.orchestrator(ledger);
    await orch.startWorker();

    const ok = await orch.start('test.transfer', transfer(), { id: 'retry-1' });
    const bad = await orch.start('test.transfer', transfer(), { id: 'retry-2' });
    const [okSaga, badSaga] = await Promise.all([
      waitForSaga(orch, ok, ['completed', 'compensated', 'failed']),
      waitForSaga(orch, bad, ['completed', 'compensated', 'failed']),
    ]);

    expect(okSaga.status).toBe('completed');
    expect(okSaga.steps[1]).toMatchObject({ status: 'completed', attempts: 3 });
    expect(okSaga.steps[1]!.error).toBeUndefined();

    expect(badSaga.status).toBe('compensated');
    expect(badSaga.error).toMatchObject({ step: 'creditTarget', code: 'unavailable', phase: 'step' });
    expect(badSaga.steps[1]).toMatchObject({ attempts: 3, error: { code: 'unavailable' } });
    // The step after the failing one was never begun, so it is neither called nor compensated.
    expect(badSaga.steps[2]).toMatchObject({ status: 'pending', attempts: 0 });
    expect(badSaga.steps[2]!.compensation!.attempts).toBe(0);

    const state = await ledgerState(h.ledgerRedis, ['alice', 'bob', 'carol'], ['retry-1:creditTarget', 'retry-2:chargeFee']);
    expect(state.calls['retry-1:creditTarget']).toBe(3);
    expect(state.applied['retry-1:creditTarget']).toBe(1);
    expect(state.calls['retry-2:chargeFee']).toBe(0);
    expect(state.balances).toEqual({ alice: 170, bob: 30, carol: 45 });
  });

  it('leaves the saga failed, with the error visible, when a compensation keeps failing', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 0 });
    const ledger = h.ledger({
      before(op, key) {
        if (op === 'reverse' && key === 'stuck-1:debitSource:compensate') throw new ContractError('unavailable', 'cannot reach the bank');
      },
    });
    const orch = h.orchestrator(ledger);
    await orch.startWorker();

    const id = await orch.start('test.transfer', transfer(), { id: 'stuck-1' });
    const saga = await waitForSaga(orch, id, ['completed', 'compensated', 'failed']);

    expect(saga.status).toBe('failed');
    expect(saga.error).toMatchObject({ step: 'debitSource', phase: 'compensate', code: 'unavailable', message: 'cannot reach the bank' });
    expect(saga.steps[0]).toMatchObject({ status: 'compensating', compensation: { attempts: 3, error: { code: 'unavailable' } } });
    expect(saga.steps[0]!.compensation!.finishedAt).toBeUndefined();
    expect(saga.steps.slice(1).map((s) => s.status)).toEqual(['compensated', 'compensated']);
    // The cause of the compensation is still on the step that failed.
    expect(saga.steps[2]!.error).toMatchObject({ code: 'conflict' });
    const state = await ledgerState(h.ledgerRedis, ['alice', 'bob'], []);
    expect(state.balances).toEqual({ alice: 70, bob: 0 });
  });

  it('refuses invalid input with invalid_input naming the field, and writes nothing', async () => {
    const orch = h.orchestrator(h.ledger());
    const err = await orch.start('test.transfer', { ...transfer(), amount: -3 }, { id: 'bad-input' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'invalid_input' });
    expect((err as ContractError).details).toEqual([expect.objectContaining({ path: 'amount' })]);

    await expect(orch.start('test.nope', transfer())).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(orch.start('test.transfer', transfer(), { id: '12345' })).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(orch.start('test.transfer', transfer(), { id: 'has:colon' })).rejects.toMatchObject({ code: 'invalid_input' });

    expect(await orch.get('bad-input')).toBeUndefined();
    expect(await h.raw.dbsize()).toBe(0);
  });

  it('starts one saga when the same id is started twice', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const orch = h.orchestrator(h.ledger());
    const other = defineSaga({
      type: 'test.other',
      input: z.object({}),
      steps: [{ name: 'only', module: 'ledger', operation: 'credit', input: () => ({ account: 'x', amount: 1 }) }],
    });
    orch.register(other);

    const ids = await Promise.all([
      orch.start('test.transfer', transfer(), { id: 'twice-1' }),
      orch.start('test.transfer', transfer(), { id: 'twice-1' }),
    ]);
    expect(ids).toEqual(['twice-1', 'twice-1']);
    await expect(orch.start('test.other', {}, { id: 'twice-1' })).rejects.toMatchObject({ code: 'conflict' });

    await orch.startWorker();
    await waitForSaga(orch, 'twice-1', ['completed']);
    // Started again after it finished: still the same single saga, nothing runs again.
    expect(await orch.start('test.transfer', transfer(), { id: 'twice-1' })).toBe('twice-1');
    await new Promise((r) => setTimeout(r, 200));

    const listed = await orch.list();
    expect(listed.items.map((s) => s.id)).toEqual(['twice-1']);
    const state = await ledgerState(h.ledgerRedis, ['alice', 'bob', 'carol'], keysOf('twice-1'));
    expect(Object.values(state.calls)).toEqual([1, 1, 1]);
    expect(state.balances).toEqual({ alice: 70, bob: 30, carol: 5 });
  });

  it('lists sagas newest first, by status, a page at a time', async () => {
    const orch = h.orchestrator(h.ledger());
    // No worker: they all stay running.
    for (const n of [1, 2, 3]) await orch.start('test.transfer', transfer(), { id: `list-${n}` });

    const first = await orch.list({ limit: 2 });
    expect(first.items.map((s) => s.id)).toEqual(['list-3', 'list-2']);
    expect(first.nextCursor).not.toBeNull();
    const second = await orch.list({ limit: 2, cursor: first.nextCursor! });
    expect(second.items.map((s) => s.id)).toEqual(['list-1']);
    expect(second.nextCursor).toBeNull();

    expect((await orch.list({ status: 'running' })).items).toHaveLength(3);
    expect((await orch.list({ status: 'completed' })).items).toHaveLength(0);
    await expect(orch.list({ status: 'bogus' })).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(orch.list({ cursor: 'x' })).rejects.toMatchObject({ code: 'invalid_input' });

    await h.setBalances({ alice: 100, bob: 0, carol: 15 });
    await orch.startWorker();
    for (const n of [1, 2, 3]) await waitForSaga(orch, `list-${n}`, ['completed']);
    expect((await orch.list({ status: 'completed' })).items.map((s) => s.id)).toEqual(['list-3', 'list-2', 'list-1']);
    expect((await orch.list({ status: 'running' })).items).toHaveLength(0);
  });

  it('gives an unfinished saga whose job was lost a new one when a worker starts', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const starter = h.orchestrator(undefined);
    const id = await starter.start('test.transfer', transfer(), { id: 'orphan-1' });
    // As if the process died between writing the journal and enqueueing.
    const queue = new Queue(sagaQueueName('test.transfer'), { connection: h.connections.blocking('saga-test-queue'), prefix: SAGA_QUEUE_PREFIX });
    expect(await queue.remove(id)).toBe(1);
    await queue.close();

    const worker = h.orchestrator(h.ledger());
    await worker.startWorker();
    const saga = await waitForSaga(worker, id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
  });

  it('on close, lets the current call finish and hands the saga back for another process to finish', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const reached = latch();
    const release = latch();
    const first = h.orchestrator(
      h.ledger({
        async after(_op, key) {
          if (key === 'handback-1:creditTarget') {
            reached.open();
            await release.promise;
          }
        },
      }),
    );
    await first.startWorker();
    const id = await first.start('test.transfer', transfer(), { id: 'handback-1' });
    await reached.promise;
    const closing = first.close(5000);
    setTimeout(release.open, 100);
    await closing;

    const second = h.orchestrator(h.ledger());
    const paused = await second.get(id);
    expect(paused?.status).toBe('running');
    expect(paused?.steps.map((s) => s.status)).toEqual(['completed', 'completed', 'pending']);
    // Handed back at once, not left active until its lease expires.
    const queue = new Queue(sagaQueueName('test.transfer'), { connection: h.connections.blocking('saga-test-queue'), prefix: SAGA_QUEUE_PREFIX });
    expect(await queue.getJobState(id)).toBe('waiting');
    await queue.close();

    await second.startWorker();
    const saga = await waitForSaga(second, id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    const state = await ledgerState(h.ledgerRedis, [], keysOf(id));
    expect(Object.values(state.calls)).toEqual([1, 1, 1]);
  });
});

describe('saga journal', () => {
  it('refuses a write from a process whose lease is gone, and changes nothing', async () => {
    const kernel = h.connections.kernel('saga-test-journal');
    const journal = new SagaJournal(kernel);
    const now = new Date().toISOString();
    await journal.create({ id: 'fence-1', type: 't', input: {}, requestId: 'r', steps: [], now });
    await kernel.set('lease:fence-1', 'token-of-another-process');

    await expect(
      journal.write('fence-1', { key: 'lease:fence-1', token: 'my-old-token' }, { status: { from: 'running', to: 'completed' } }, now),
    ).rejects.toBeInstanceOf(LeaseLostError);
    expect((await journal.load('fence-1'))?.status).toBe('running');

    await journal.write('fence-1', { key: 'lease:fence-1', token: 'token-of-another-process' }, { status: { from: 'running', to: 'completed' } }, now);
    expect((await journal.load('fence-1'))?.status).toBe('completed');
    expect(await kernel.zrange('saga-index:running', '0', '-1')).toEqual([]);
    expect(await kernel.zrange('saga-index:completed', '0', '-1')).toEqual(['fence-1']);
  });
});
