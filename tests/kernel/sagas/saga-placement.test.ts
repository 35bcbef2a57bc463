// Saga workers run only where the module declaring the saga is hosted (ARCHITECTURE.md §6): a saga's
// steps are its module's operations, so a process hosting none of them (an llm-only process) must not
// pick its sagas up. And a process that starts a saga of a type it hosts drives it itself at once,
// queuing nothing unless it stops early or dies.
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAGA_QUEUE_PREFIX, sagaQueueName } from '../../../src/kernel/sagas/saga-orchestrator.js';
import { chatTurnSaga } from '../../../src/modules/messages/chat-turn-saga.js';
import { startFakeOllama, type FakeOllama } from '../../support/fake-ollama.js';
import type { TestRedis } from '../../support/redis.js';
import { startChatApp } from '../../modules/messages/chat-app.js';
import { SagaHarness, sagaSuite, waitForSaga } from '../../support/saga-harness.js';

let redis: TestRedis;
let h: SagaHarness;
sagaSuite((next) => (h = next), { onRedis: (r) => (redis = r) });

const input = { from: 'alice', to: 'bob', amount: 30, feePayer: 'carol', fee: 5 };

describe('saga placement', () => {
  it('leaves a saga to the processes serving its type: one serving none never runs it', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const ranBy: string[] = [];
    const bystander = h.orchestrator(h.ledger({ before: () => void ranBy.push('bystander') }));
    await bystander.startWorker([]);
    expect(bystander.servedTypes()).toEqual([]);
    const id = await bystander.start('test.transfer', input, { id: 'placed-1' });

    // Not driven by the process that started it (it does not host the type), and no worker took it.
    const queue = new Queue(sagaQueueName('test.transfer'), { connection: h.connections.blocking('saga-test-queue'), prefix: SAGA_QUEUE_PREFIX });
    try {
      expect(await queue.getJobState(id)).toBe('waiting');
    } finally {
      await queue.close();
    }
    expect((await bystander.get(id))?.steps.map((s) => s.attempts)).toEqual([0, 0, 0]);

    const host = h.orchestrator(h.ledger({ before: () => void ranBy.push('host') }));
    await host.startWorker(['test.transfer']);
    expect(host.servedTypes()).toEqual(['test.transfer']);
    expect((await waitForSaga(host, id, ['completed', 'compensated', 'failed'])).status).toBe('completed');
    expect(ranBy).toEqual(['host', 'host', 'host']);
  });

  it('drives a saga in the process that starts it when that process serves the type, queuing nothing', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const ranBy: string[] = [];
    const other = h.orchestrator(h.ledger({ before: () => void ranBy.push('other') }));
    await other.startWorker(['test.transfer']);
    const starter = h.orchestrator(h.ledger({ before: () => void ranBy.push('starter') }));
    await starter.startWorker(['test.transfer']);

    const id = await starter.start('test.transfer', input, { id: 'placed-2' });
    const queue = new Queue(sagaQueueName('test.transfer'), { connection: h.connections.blocking('saga-test-queue'), prefix: SAGA_QUEUE_PREFIX });
    try {
      // No job at any point: BullMQ only hears of a saga whose driver stopped early or died.
      expect(await queue.getJobState(id)).toBe('unknown');
      expect((await waitForSaga(starter, id, ['completed', 'compensated', 'failed'])).status).toBe('completed');
      expect(await queue.getJobState(id)).toBe('unknown');
    } finally {
      await queue.close();
    }
    expect(ranBy).toEqual(['starter', 'starter', 'starter']);
    // The lease is given up with the final status.
    expect(await h.raw.exists(`kernel:saga-lease:${id}`)).toBe(0);
  });

  it('lets a live driver finish a step longer than its lease: nobody takes the saga over while the lease is renewed', async () => {
    await h.setBalances({ alice: 100, bob: 0, carol: 10 });
    const ranBy: string[] = [];
    const lease = { lockDurationMs: 300, stalledIntervalMs: 150 };
    const other = h.orchestrator(h.ledger({ before: () => void ranBy.push('other') }), lease);
    await other.startWorker(['test.transfer']);
    const slow = async (op: string, key: string) => {
      // Several lease periods: the other process looks for sagas without a lease meanwhile, many times.
      if (key.endsWith(':creditTarget')) await new Promise((r) => setTimeout(r, 1500));
    };
    const starter = h.orchestrator(h.ledger({ before: () => void ranBy.push('starter'), after: slow }), lease);
    await starter.startWorker(['test.transfer']);

    const id = await starter.start('test.transfer', input, { id: 'placed-slow' });
    const saga = await waitForSaga(starter, id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    // Nobody took the saga over from its live driver: every step ran once, there.
    expect(saga.steps.map((s) => s.attempts)).toEqual([1, 1, 1]);
    expect(ranBy).toEqual(['starter', 'starter', 'starter']);
  });

  describe('in the runtime', () => {
    let fake: FakeOllama;
    beforeAll(async () => {
      fake = await startFakeOllama();
    });
    afterAll(async () => {
      await fake.close();
    });

    it('runs the chat-turn workers only in a process hosting messages, not in an llm-only one', async () => {
      const llmOnly = await startChatApp(redis.url, fake.url, { env: { AUTOBOT_MODULES: 'config,health,llm' } });
      try {
        expect(llmOnly.runtime.sagas.servedTypes()).toEqual([]);
      } finally {
        await llmOnly.stop();
      }
      const withMessages = await startChatApp(redis.url, fake.url);
      try {
        expect(withMessages.runtime.sagas.servedTypes()).toEqual([chatTurnSaga.type]);
      } finally {
        await withMessages.stop();
      }
    });
  });
});
