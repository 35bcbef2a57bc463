// A child process that takes part in running sagas, for the crash tests: it hosts the test ledger
// and a saga worker. Run with `node --import tsx tests/support/saga-worker.ts`.
//   REDIS_URL              where Redis is (unix:///… from startTestRedis)
//   SAGA_HANG_ON_STEP      optional step name: after that step's ledger effect is applied, print
//                          `hanging <idempotencyKey>` on stdout and never answer (the parent then kills us)
//   SAGA_LOCK_MS, SAGA_STALLED_MS   lease knobs
//   SAGA_START             optional JSON {id, input}: once ready, this process starts that transfer
//                          itself (so it drives it in process, the saga fast path)
// Protocol on stdout, one line each: `ready`, `started <id>`, `hanging <key>`. Logs go to stderr.
import { pino } from 'pino';
import { redisTargetFromUrl, RedisConnections } from '../../src/kernel/redis/redis-connections.js';
import { SagaOrchestrator } from '../../src/kernel/sagas/saga-orchestrator.js';
import { createLedger, transferSaga } from './saga-ledger.js';

const url = process.env.REDIS_URL;
if (!url) throw new Error('REDIS_URL is required');
const hangOn = process.env.SAGA_HANG_ON_STEP;

const logger = pino({ level: process.env.SAGA_LOG_LEVEL ?? 'warn', base: { pid: process.pid } }, pino.destination(2));
const connections = new RedisConnections(redisTargetFromUrl(url), logger);
const ledger = createLedger(connections.forModule('ledger', 1), {
  async after(_op, key) {
    if (hangOn && key.endsWith(`:${hangOn}`)) {
      process.stdout.write(`hanging ${key}\n`);
      await new Promise<never>(() => undefined);
    }
  },
});

const orchestrator = new SagaOrchestrator({
  connections,
  logger,
  resolvePort: (id) => (id === 'ledger' ? ledger : undefined),
  lockDurationMs: Number(process.env.SAGA_LOCK_MS ?? 1000),
  stalledIntervalMs: Number(process.env.SAGA_STALLED_MS ?? 500),
  retryDelayMs: 50,
});
orchestrator.register(transferSaga);
await orchestrator.startWorker();
process.stdout.write('ready\n');
if (process.env.SAGA_START) {
  const { id, input } = JSON.parse(process.env.SAGA_START) as { id: string; input: unknown };
  await orchestrator.start('test.transfer', input, { id });
  process.stdout.write(`started ${id}\n`);
}

process.once('SIGTERM', () => {
  void orchestrator
    .close(2000)
    .then(() => connections.closeAll())
    .finally(() => process.exit(0));
});
