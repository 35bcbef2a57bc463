// The two step options the chat turn needs (ARCHITECTURE.md §6a): a deterministic `when` that skips a
// step (journaled `skipped`, nothing to compensate, the same decision after a resume), and a
// long-running step whose deadline is its own rather than the operation's default.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ContractError } from '../../../src/kernel/contract/errors.js';
import { currentContext } from '../../../src/kernel/context/request-context.js';
import { defineSaga } from '../../../src/kernel/sagas/saga-definition.js';
import { SagaHarness, sagaSuite, waitForSaga } from '../../support/saga-harness.js';

let h: SagaHarness;
sagaSuite((next) => (h = next));

const input = z.object({ useKnowledge: z.boolean(), failLast: z.boolean().default(false) });

const saga = defineSaga({
  type: 'test.options',
  input,
  steps: [
    { name: 'first', module: 'probe', operation: 'record', input: () => ({ what: 'first' }), compensate: { operation: 'undo', input: () => ({ what: 'first' }) } },
    {
      name: 'retrieve',
      module: 'probe',
      operation: 'record',
      when: (i) => i.useKnowledge,
      input: () => ({ what: 'retrieve' }),
      compensate: { operation: 'undo', input: () => ({ what: 'retrieve' }) },
    },
    { name: 'long', module: 'probe', operation: 'deadline', timeoutMs: 600_000, input: (_i, r) => ({ sawRetrieve: r.retrieve ?? null }) },
    { name: 'last', module: 'probe', operation: 'finish', input: (i) => ({ fail: i.failLast }) },
  ],
});

function probe(calls: string[]) {
  return {
    record: async ({ what }: { what: string }) => {
      calls.push(what);
      return { what };
    },
    undo: async ({ what }: { what: string }) => {
      calls.push(`undo ${what}`);
      return null;
    },
    deadline: async (i: { sawRetrieve: unknown }) => {
      const ctx = currentContext();
      calls.push('long');
      return { remainingMs: (ctx?.deadline ?? 0) - Date.now(), sawRetrieve: i.sawRetrieve };
    },
    finish: async ({ fail }: { fail: boolean }) => {
      calls.push('last');
      if (fail) throw new ContractError('conflict', 'no');
      return { ok: true };
    },
  };
}

describe('saga step options', () => {
  it('skips a step whose `when` does not hold, journals it skipped, and never compensates it', async () => {
    const calls: string[] = [];
    const port = probe(calls);
    const orch = h.orchestrator(undefined, { resolvePort: (id) => (id === 'probe' ? port : undefined) });
    orch.register(saga);
    await orch.startWorker();

    const id = await orch.start('test.options', { useKnowledge: false, failLast: true });
    const rec = await waitForSaga(orch, id, ['completed', 'compensated', 'failed']);
    expect(rec.status).toBe('compensated');
    expect(rec.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['first', 'compensated', 1],
      ['retrieve', 'skipped', 0],
      ['long', 'completed', 1],
      ['last', 'failed', 1],
    ]);
    // The skipped step's result is undefined for later mappers.
    expect(rec.steps[2]?.result).toMatchObject({ sawRetrieve: null });
    expect(calls).toEqual(['first', 'long', 'last', 'undo first']);
  });

  it('runs the step when `when` holds, and gives a long-running step its own deadline', async () => {
    const calls: string[] = [];
    const port = probe(calls);
    const orch = h.orchestrator(undefined, { resolvePort: (id) => (id === 'probe' ? port : undefined) });
    orch.register(saga);
    await orch.startWorker();

    const id = await orch.start('test.options', { useKnowledge: true });
    const rec = await waitForSaga(orch, id, ['completed', 'compensated', 'failed']);
    expect(rec.status).toBe('completed');
    expect(rec.steps.map((s) => s.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    expect(calls).toEqual(['first', 'retrieve', 'long', 'last']);
    const long = rec.steps[2]?.result as { remainingMs: number; sawRetrieve: unknown };
    // The step's 10 minutes, not an operation default of seconds.
    expect(long.remainingMs).toBeGreaterThan(590_000);
    expect(long.remainingMs).toBeLessThanOrEqual(600_000);
    expect(long.sawRetrieve).toEqual({ what: 'retrieve' });
  });

  it('refuses a non-positive timeoutMs at definition time', () => {
    expect(() =>
      defineSaga({ type: 'test.bad', input, steps: [{ name: 'a', module: 'm', operation: 'o', input: () => ({}), timeoutMs: 0 }] }),
    ).toThrow(/timeoutMs/);
  });
});
