// Shared set-up of the saga tests: a private Redis, connections, the test ledger and orchestrators
// that are all closed after each test.
import type { Redis } from 'ioredis';
import { createLogger } from '../../src/kernel/log/logger.js';
import { RedisConnections } from '../../src/kernel/redis/redis-connections.js';
import { SagaOrchestrator, type SagaOrchestratorOptions } from '../../src/kernel/sagas/saga-orchestrator.js';
import type { SagaRecord, SagaStatus } from '../../src/kernel/sagas/saga-record.js';
import { createLedger, transferSaga, type LedgerHooks, type LedgerPort } from './saga-ledger.js';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { startTestRedis, type TestRedis } from './redis.js';

export const sagaTestLogger = createLogger((process.env.SAGA_TEST_LOG_LEVEL as 'silent' | undefined) ?? 'silent', 'saga-test');

export class SagaHarness {
  readonly connections: RedisConnections;
  /** The ledger module's own connection (database 1, prefix `ledger:`). */
  readonly ledgerRedis: Redis;
  /** Unprefixed database 0, to look at the kernel's keys. */
  readonly raw: Redis;
  private readonly orchestrators: SagaOrchestrator[] = [];

  constructor(redis: TestRedis) {
    this.connections = new RedisConnections(redis.target, sagaTestLogger);
    this.ledgerRedis = this.connections.forModule('ledger', 1);
    this.raw = this.connections.blocking('saga-test-raw');
  }

  ledger(hooks: LedgerHooks = {}): LedgerPort {
    return createLedger(this.ledgerRedis, hooks);
  }

  orchestrator(ledger: LedgerPort | undefined, opts: Partial<SagaOrchestratorOptions> = {}): SagaOrchestrator {
    const o = new SagaOrchestrator({
      connections: this.connections,
      logger: sagaTestLogger,
      resolvePort: (id) => (id === 'ledger' ? ledger : undefined),
      retryDelayMs: 20,
      ...opts,
    });
    o.register(transferSaga);
    this.orchestrators.push(o);
    return o;
  }

  async setBalances(balances: Record<string, number>): Promise<void> {
    for (const [account, amount] of Object.entries(balances)) await this.ledgerRedis.set(`balance:${account}`, amount);
  }

  async close(): Promise<void> {
    await Promise.all(this.orchestrators.map((o) => o.close(2000)));
    await this.raw.flushall();
    await this.connections.closeAll();
  }
}

/** Polls the journal until the saga reaches one of `statuses`. */
export async function waitForSaga(
  orchestrator: SagaOrchestrator,
  id: string,
  statuses: SagaStatus[],
  timeoutMs = 15_000,
): Promise<SagaRecord> {
  const until = Date.now() + timeoutMs;
  let last: SagaRecord | undefined;
  while (Date.now() < until) {
    last = await orchestrator.get(id);
    if (last && statuses.includes(last.status)) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`saga ${id} did not reach ${statuses.join('|')} within ${timeoutMs} ms; last: ${JSON.stringify(last, null, 2)}`);
}

/** A promise with its resolve function, for hooks that must wait for the test. */
export function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * Registers a saga suite's hooks: one private Redis for the suite (handed to `onRedis`, if given), a
 * fresh harness for each test (handed to `onHarness`), closed after it (`beforeClose` first, if given).
 */
export function sagaSuite(onHarness: (h: SagaHarness) => void, opts: { onRedis?: (redis: TestRedis) => void; beforeClose?: () => Promise<void> } = {}): void {
  let redis: TestRedis | undefined;
  let h: SagaHarness | undefined;
  beforeAll(async () => {
    redis = await startTestRedis();
    opts.onRedis?.(redis);
  });
  afterAll(async () => {
    await redis?.stop();
  });
  beforeEach(() => {
    h = new SagaHarness(redis!);
    onHarness(h);
  });
  afterEach(async () => {
    await opts.beforeClose?.();
    await h?.close();
  });
}
