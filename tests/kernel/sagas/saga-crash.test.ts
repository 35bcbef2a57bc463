// A saga survives the death of the process running it: the process is SIGKILLed inside step 2 (after
// step 2's effect landed, before its outcome was journaled); a fresh process resumes the saga from the
// journal once the dead one's lease expires. Step 1 is not called again, step 2 is called again with
// the same idempotency key, and every effect is applied exactly once.
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { SAGA_QUEUE_PREFIX, sagaQueueName, type SagaOrchestrator } from '../../../src/kernel/sagas/saga-orchestrator.js';
import type { SagaRecord } from '../../../src/kernel/sagas/saga-record.js';
import type { TestRedis } from '../../support/redis.js';
import { ledgerState, type TransferInput } from '../../support/saga-ledger.js';
import { SagaHarness, sagaSuite, waitForSaga } from '../../support/saga-harness.js';
import { killSagaWorkers, spawnSagaWorker, type SagaWorkerProcess } from '../../support/saga-worker-process.js';

let redis: TestRedis;
let h: SagaHarness;
sagaSuite((next) => (h = next), { onRedis: (r) => (redis = r), beforeClose: killSagaWorkers });

const LEASE = { lockMs: 1000, stalledMs: 500 };

async function crashInStepTwo(id: string, input: TransferInput) {
  // This process only starts sagas and reads the journal; the children run them.
  const orch = h.orchestrator(undefined);
  const doomed = spawnSagaWorker({ redisUrl: redis.url, hangOnStep: 'creditTarget', ...LEASE });
  await doomed.waitForLine('ready');
  await orch.start('test.transfer', input, { id });
  expect(await doomed.waitForLine('hanging')).toBe(`hanging ${id}:creditTarget`);

  // The journal at the moment of the crash: step 1's outcome, step 2's intent without an outcome.
  const before = await orch.get(id);
  expect(before?.status).toBe('running');
  expect(before?.currentStep).toBe('creditTarget');
  expect(before?.steps.map((s) => [s.status, s.attempts])).toEqual([
    ['completed', 1],
    ['started', 1],
    ['pending', 0],
  ]);
  expect(before?.steps[1]?.finishedAt).toBeUndefined();

  return killAndResume(orch, doomed, id);
}

/** Kills `doomed` and waits for a fresh worker process to finish the saga it was running. */
async function killAndResume(orch: SagaOrchestrator, doomed: SagaWorkerProcess, id: string) {
  doomed.child.kill('SIGKILL');
  await doomed.exited;
  const fresh = spawnSagaWorker({ redisUrl: redis.url, ...LEASE });
  await fresh.waitForLine('ready');
  const after = await waitForSaga(orch, id, ['completed', 'compensated', 'failed'], 20_000).catch((err: Error) => {
    throw new Error(`${err.message}\nfresh worker stderr:\n${fresh.stderr()}`);
  });
  return { after, fresh };
}

/** The transfer of 30 (fee 5) completed after the crash in step 2: only that step ran twice, and every effect landed once. */
async function expectCompletedOnce(after: SagaRecord, id: string) {
  expect(after.status).toBe('completed');
  expect(after.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
    ['debitSource', 'completed', 1],
    ['creditTarget', 'completed', 2],
    ['chargeFee', 'completed', 1],
  ]);
  const keys = [`${id}:debitSource`, `${id}:creditTarget`, `${id}:chargeFee`];
  const state = await ledgerState(h.ledgerRedis, ['alice', 'bob', 'carol'], keys);
  expect(state.calls).toEqual({ [keys[0]!]: 1, [keys[1]!]: 2, [keys[2]!]: 1 });
  expect(state.applied).toEqual({ [keys[0]!]: 1, [keys[1]!]: 1, [keys[2]!]: 1 });
  expect(state.balances).toEqual({ alice: 70, bob: 30, carol: 5 });
}

describe('saga crash recovery', () => {
  it('resumes a saga in another process after the one running it is killed, applying each effect once', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const id = 'crash-complete';
    const { after } = await crashInStepTwo(id, { from: 'alice', to: 'bob', amount: 30, feePayer: 'carol', fee: 5 });
    await expectCompletedOnce(after, id);
    // The repeated call found its effect applied and answered the original outcome.
    expect(after.steps[1]?.result).toMatchObject({ account: 'bob', amount: 30, balance: 30, applied: false });
  });

  it('resumes a saga that the process starting it drove in process, after that process is killed', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const id = 'crash-fast-path';
    const orch = h.orchestrator(undefined);
    // The starting process hosts the saga type: it drives the saga itself, no worker picks it up.
    const doomed = spawnSagaWorker({ redisUrl: redis.url, hangOnStep: 'creditTarget', start: { id, input: { from: 'alice', to: 'bob', amount: 30, feePayer: 'carol', fee: 5 } }, ...LEASE });
    expect(await doomed.waitForLine('hanging')).toBe(`hanging ${id}:creditTarget`);
    const queue = new Queue(sagaQueueName('test.transfer'), { connection: h.connections.blocking('saga-test-queue'), prefix: SAGA_QUEUE_PREFIX });
    try {
      // Nothing is queued while its driver holds the lease: a saga that ends in time costs BullMQ nothing.
      expect(await queue.getJobState(id)).toBe('unknown');
      const before = await orch.get(id);
      expect(before?.steps.map((s) => [s.status, s.attempts])).toEqual([
        ['completed', 1],
        ['started', 1],
        ['pending', 0],
      ]);

      const { after } = await killAndResume(orch, doomed, id);
      await expectCompletedOnce(after, id);
      // Finished: its job is gone and so is its lease.
      expect(await queue.getJobState(id)).toBe('unknown');
      expect(await h.raw.exists(`kernel:saga-lease:${id}`)).toBe(0);
    } finally {
      await queue.close();
    }
  });

  it('hands a killed driver’s saga to a process that was running all along, once the lease expired', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const id = 'crash-no-restart';
    const orch = h.orchestrator(undefined);
    // Up before the saga starts: its start-up sweep has nothing to find, only the look for sagas
    // without a lease can hand it this one.
    const survivor = spawnSagaWorker({ redisUrl: redis.url, ...LEASE });
    await survivor.waitForLine('ready');
    const doomed = spawnSagaWorker({ redisUrl: redis.url, hangOnStep: 'creditTarget', start: { id, input: { from: 'alice', to: 'bob', amount: 30, feePayer: 'carol', fee: 5 } }, ...LEASE });
    expect(await doomed.waitForLine('hanging')).toBe(`hanging ${id}:creditTarget`);
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    const after = await waitForSaga(orch, id, ['completed', 'compensated', 'failed'], 20_000).catch((err: Error) => {
      throw new Error(`${err.message}\nsurvivor stderr:\n${survivor.stderr()}`);
    });
    await expectCompletedOnce(after, id);
  });

  it('compensates a resumed saga whose later step fails, undoing each effect once', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 1 });
    const id = 'crash-compensate';
    const { after } = await crashInStepTwo(id, { from: 'alice', to: 'bob', amount: 30, feePayer: 'carol', fee: 5 });

    expect(after.status).toBe('compensated');
    expect(after.error).toMatchObject({ step: 'chargeFee', phase: 'step', code: 'conflict' });
    expect(after.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['debitSource', 'compensated', 1],
      ['creditTarget', 'compensated', 2],
      ['chargeFee', 'compensated', 1],
    ]);

    const steps = ['debitSource', 'creditTarget', 'chargeFee'];
    const keys = [...steps.map((s) => `${id}:${s}`), ...steps.map((s) => `${id}:${s}:compensate`)];
    const state = await ledgerState(h.ledgerRedis, ['alice', 'bob', 'carol'], keys);
    expect(state.applied).toEqual({
      [`${id}:debitSource`]: 1,
      [`${id}:creditTarget`]: 1,
      [`${id}:chargeFee`]: 0,
      [`${id}:debitSource:compensate`]: 1,
      [`${id}:creditTarget:compensate`]: 1,
      [`${id}:chargeFee:compensate`]: 0,
    });
    expect(state.calls[`${id}:debitSource`]).toBe(1);
    expect(state.calls[`${id}:creditTarget`]).toBe(2);
    expect(state.balances).toEqual({ alice: 100, bob: 0, carol: 1 });
  });
});
