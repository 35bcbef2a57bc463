// Consumer names of processes that are gone leave their consumer groups: a stopped instance's consumer
// disappears once it holds nothing and has been idle long enough, after its unfinished entries were
// taken over by a live instance; live instances (by the registry, or by reading) are never removed.
import { describe, expect, it } from 'vitest';
import { type EventEnvelope } from '../../../src/kernel/events/event-bus.js';
import { eventBuses } from '../../support/event-buses.js';

const TYPE = 'documents.document.ingested';
const MODULE = 'search';
const STREAM = `kernel:events:${TYPE}`;

const events = eventBuses({ retryDelayMs: 100, blockMs: 100, consumerIdleMs: 400, consumerSweepMs: 100 });
const bus = events.bus;

async function consumers(): Promise<Record<string, number>> {
  const rows = (await events.raw.xinfo('CONSUMERS', STREAM, MODULE)) as unknown[][];
  return Object.fromEntries(rows.map((r) => [String(r[1]), Number(r[3])]));
}

describe('event consumers of processes that are gone', () => {
  it('removes a stopped instance\'s consumer, after taking over what it held', async () => {
    const handled: string[] = [];
    // The instance that goes away hangs on its event and stops without acknowledging it.
    const gone = bus('gone-1', { consumerSweepMs: 3_600_000 });
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => (entered = r));
    await gone.subscribe(MODULE, { [TYPE]: () => (entered(), new Promise<never>(() => undefined)) });
    await gone.publish(TYPE, { documentId: 'd-1' }, { source: 'documents' });
    await inHandler;
    await gone.close(50);
    expect(await consumers()).toEqual({ 'gone-1': 1 });

    const alive = bus('alive-1');
    await alive.subscribe(MODULE, { [TYPE]: async (e: EventEnvelope) => void handled.push((e.payload as { documentId: string }).documentId) });
    // The live instance takes the held event over, handles it (at least once: delivery is at least
    // once, and a loaded machine may redeliver), and then the dead consumer goes.
    await expect.poll(() => [...new Set(handled)], { timeout: 5_000 }).toEqual(['d-1']);
    await expect.poll(consumers, { timeout: 5_000 }).toEqual({ 'alive-1': 0 });
  });

  it('keeps the consumers of live instances, however long idle', async () => {
    const registered = bus('registered-1', { consumerSweepMs: 3_600_000 });
    await registered.subscribe(MODULE, { [TYPE]: async () => undefined });
    await expect.poll(consumers, { timeout: 5_000 }).toHaveProperty('registered-1');
    await registered.close(50);
    // Stopped reading (as a process would in a long pause), but the registry says it runs.
    const handled: string[] = [];
    const alive = bus('alive-2', { liveInstances: () => ['registered-1'] });
    await alive.subscribe(MODULE, { [TYPE]: async (e: EventEnvelope) => void handled.push((e.payload as { documentId: string }).documentId) });
    // Several sweeps later, both are still there: one by the registry, the other is the sweeper itself.
    await new Promise((r) => setTimeout(r, 1_200));
    expect(Object.keys(await consumers()).sort()).toEqual(['alive-2', 'registered-1']);
    await alive.publish(TYPE, { documentId: 'd-2' }, { source: 'documents' });
    await expect.poll(() => [...new Set(handled)], { timeout: 5_000 }).toEqual(['d-2']);
  });
});
