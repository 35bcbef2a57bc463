// Finished saga journals do not grow forever: a completed saga's journal expires after the retention,
// a failed or compensated one is kept longer, the expired ids leave the indexes, and the admin list
// pages through exactly what is kept (no short or empty pages while expired ids wait to be pruned).
import { describe, expect, it } from 'vitest';
import type { TransferInput } from '../../support/saga-ledger.js';
import { SagaHarness, sagaSuite, waitForSaga } from '../../support/saga-harness.js';
import type { SagaOrchestrator } from '../../../src/kernel/sagas/saga-orchestrator.js';

let h: SagaHarness;
sagaSuite((next) => (h = next));

const transfer: TransferInput = { from: 'alice', to: 'bob', amount: 1, feePayer: 'carol', fee: 1 };
const SHORT_MS = 1_000;
const LONG_MS = 600_000;
const FINISHED = ['completed', 'compensated', 'failed'] as const;

/** Runs a saga that completes (the fee payer can pay) or compensates (it cannot), to its end. */
async function finished(orch: SagaOrchestrator, id: string, ok: boolean): Promise<string> {
  await h.setBalances({ alice: 1_000, bob: 0, carol: ok ? 1_000 : 0 });
  await orch.start('test.transfer', transfer, { id });
  const saga = await waitForSaga(orch, id, [...FINISHED]);
  expect(saga.status).toBe(ok ? 'completed' : 'compensated');
  return id;
}

async function walk(orch: SagaOrchestrator, limit: number): Promise<{ pages: string[][] }> {
  const pages: string[][] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await orch.list({ limit, ...(cursor ? { cursor } : {}) });
    pages.push(page.items.map((s) => s.id));
    if (!page.nextCursor) return { pages };
    cursor = page.nextCursor;
  }
}

describe('saga journal retention', () => {
  it('expires a completed journal after the retention and keeps a compensated one longer', async () => {
    const orch = h.orchestrator(h.ledger(), { retention: { completedMs: SHORT_MS, failedMs: LONG_MS }, pruneIntervalMs: 100 });
    await orch.startWorker();
    const undone = await finished(orch, 'ret-undone-1', false);
    const done = await finished(orch, 'ret-done-1', true);

    // Both keys of each journal carry the TTL of their outcome.
    for (const key of [`kernel:saga:${done}`, `kernel:saga:${done}:steps`]) {
      const ttl = await h.raw.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(SHORT_MS);
    }
    for (const key of [`kernel:saga:${undone}`, `kernel:saga:${undone}:steps`]) expect(await h.raw.pttl(key)).toBeGreaterThan(LONG_MS - 60_000);

    await expect.poll(() => orch.get(done), { timeout: 5_000 }).toBeUndefined();
    // The worker's pruning takes the expired id out of every index.
    await expect.poll(async () => h.raw.zscore('kernel:saga-index:all', done), { timeout: 5_000 }).toBeNull();
    expect(await h.raw.zscore('kernel:saga-index:completed', done)).toBeNull();
    expect(await h.raw.zscore('kernel:saga-index:expiry', done)).toBeNull();

    expect((await orch.get(undone))?.status).toBe('compensated');
    expect((await orch.list({})).items.map((s) => s.id)).toEqual([undone]);
  }, 20_000);

  it('pages through what is kept, also before the expired ids are pruned', async () => {
    // Pruning never runs on its own here: the list has to step over expired ids itself.
    const orch = h.orchestrator(h.ledger(), { retention: { completedMs: SHORT_MS, failedMs: LONG_MS }, pruneIntervalMs: 3_600_000 });
    await orch.startWorker();
    const kept: string[] = [];
    for (let i = 0; i < 4; i++) {
      await finished(orch, `page-gone-${i}`, true);
      kept.push(await finished(orch, `page-kept-${i}`, false));
    }
    await expect.poll(async () => (await h.raw.exists(...[0, 1, 2, 3].map((i) => `kernel:saga:page-gone-${i}`))), { timeout: 5_000 }).toBe(0);
    // The ids of the expired ones are still indexed...
    expect(await h.raw.zcard('kernel:saga-index:all')).toBe(8);

    // ...yet every page but the last is full, newest first, and only kept sagas appear.
    const { pages } = await walk(orch, 3);
    expect(pages).toEqual([
      [kept[3], kept[2], kept[1]],
      [kept[0]],
    ]);
    expect((await orch.list({ status: 'completed' })).items).toEqual([]);

    expect(await orch.prune()).toBe(4);
    expect(await h.raw.zcard('kernel:saga-index:all')).toBe(4);
    expect(await h.raw.zcard('kernel:saga-index:completed')).toBe(0);
    expect(await h.raw.zcard('kernel:saga-index:expiry')).toBe(4);
    expect((await walk(orch, 3)).pages).toEqual(pages);
  });

  it('does not take a saga started again under an expired id out of the indexes', async () => {
    const orch = h.orchestrator(h.ledger(), { retention: { completedMs: SHORT_MS, failedMs: SHORT_MS }, pruneIntervalMs: 3_600_000 });
    await orch.startWorker();
    await finished(orch, 'reused-1', true);
    await expect.poll(() => orch.get('reused-1'), { timeout: 5_000 }).toBeUndefined();
    // Started again before any prune: a new saga under the same id.
    await finished(orch, 'reused-1', true);
    await orch.prune();
    expect(await h.raw.zscore('kernel:saga-index:all', 'reused-1')).not.toBeNull();
    expect((await orch.list({})).items.map((s) => s.id)).toEqual(['reused-1']);
  });
});
