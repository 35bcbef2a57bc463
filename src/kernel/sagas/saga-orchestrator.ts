// The durable saga orchestrator (ARCHITECTURE.md §6). `start` writes the journal and enqueues one
// BullMQ job per saga (jobId = sagaId); whichever process runs a worker takes the job and holds its
// lock (the lease) while it drives the saga. When that process dies its lock expires, BullMQ's stalled
// check puts the job back, and another (or the restarted) process resumes the saga from its journal.
import { randomUUID } from 'node:crypto';
import { Queue, Worker, WaitingError, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { currentContext, newRequestId } from '../context/request-context.js';
import { ContractError } from '../contract/errors.js';
import { parseInput } from '../contract/validation.js';
import type { RedisConnections } from '../redis/redis-connections.js';
import type { AnySagaDefinition } from './saga-definition.js';
import { DEFAULT_SAGA_RETENTION, LeaseLostError, SagaJournal, type SagaLease, type SagaRetention } from './saga-journal.js';
import { isTerminal, sagaStatuses, type SagaRecord, type SagaStatus, type SagaStepRecord } from './saga-record.js';
import { runSaga, type PortResolver } from './saga-runner.js';

export type { PortResolver };

/** BullMQ key prefix of the saga queue; the queue's keys are `kernel:sagas:run:*`, in the kernel database. */
export const SAGA_QUEUE_PREFIX = 'kernel:sagas';
export const SAGA_QUEUE_NAME = 'run';
// The journal lives on the kernel connection, whose keys are relative to this prefix.
const KERNEL_PREFIX = 'kernel:';

export interface SagaOrchestratorOptions {
  connections: RedisConnections;
  logger: Logger;
  resolvePort: PortResolver;
  /**
   * How long a saga's lease lasts without renewal: the delay before a dead process's sagas resume.
   * Default 5 s (renewed every 2.5 s while a step runs), so a chat turn whose process was killed ends
   * within 10 s of a restart; only an event loop blocked for 5 s would lose a lease it still needs.
   */
  lockDurationMs?: number;
  /** How often workers look for sagas whose lease expired. Default: half of lockDurationMs. */
  stalledIntervalMs?: number;
  /**
   * Sagas this process drives at once. Default 256: a saga mostly waits on operations (a chat turn
   * holds its slot for the whole reply), and a saga waiting for a slot waits for someone else's whole
   * saga: with 16 slots and 20 chats streaming, the 17th turn's first token waited for a full reply.
   */
  concurrency?: number;
  /** First delay before a step's retry; doubles per failure. Default 500 ms. */
  retryDelayMs?: number;
  /** How long finished journals are kept (default 7 days completed, 30 days failed or compensated). */
  retention?: Partial<SagaRetention>;
  /** How often a worker takes expired journals out of the indexes. Default 60 s. */
  pruneIntervalMs?: number;
}

export interface StartSagaOptions {
  /** Caller-chosen id: starting the same id again starts nothing new. Default: a random UUID. */
  id?: string;
}

export interface ListSagasOptions {
  status?: string;
  limit?: number;
  cursor?: string;
}

interface SagaJobData {
  sagaId: string;
}

// BullMQ refuses job ids that are integers or contain ':' (and ids end up inside Redis keys).
const SAGA_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const DEFAULT_PAGE = 20;
const MAX_PAGE = 200;

export class SagaOrchestrator {
  private readonly defs = new Map<string, AnySagaDefinition>();
  private readonly logger: Logger;
  private readonly kernelRedis: Redis;
  private readonly journal: SagaJournal;
  private readonly lockDurationMs: number;
  private readonly stalledIntervalMs: number;
  private readonly concurrency: number;
  private readonly retryDelayMs: number;
  private queueConn: Redis | undefined;
  private queue: Queue<SagaJobData> | undefined;
  private workerConn: Redis | undefined;
  private worker: Worker<SagaJobData> | undefined;
  private readonly running = new Set<Promise<unknown>>();
  private readonly stopping = new AbortController();
  private closed: Promise<void> | undefined;
  private pruner: NodeJS.Timeout | undefined;

  constructor(private readonly opts: SagaOrchestratorOptions) {
    this.logger = opts.logger.child({ component: 'sagas' });
    this.kernelRedis = opts.connections.kernel('sagas');
    this.journal = new SagaJournal(this.kernelRedis, { ...DEFAULT_SAGA_RETENTION, ...opts.retention });
    this.lockDurationMs = opts.lockDurationMs ?? 5_000;
    this.stalledIntervalMs = opts.stalledIntervalMs ?? Math.round(this.lockDurationMs / 2);
    this.concurrency = opts.concurrency ?? 256;
    this.retryDelayMs = opts.retryDelayMs ?? 500;
  }

  register(def: AnySagaDefinition): void {
    if (this.defs.has(def.type)) throw new Error(`saga type "${def.type}" is registered twice`);
    this.defs.set(def.type, def);
  }

  /**
   * Validates the input, writes the saga record, then enqueues the saga. Starting an id that exists
   * already writes nothing and answers the same id (and makes sure an unfinished saga has its job).
   */
  async start<I>(type: string, input: I, opts: StartSagaOptions = {}): Promise<string> {
    if (this.closed) throw new ContractError('unavailable', 'the saga orchestrator is shutting down');
    const def = this.defs.get(type);
    if (!def) throw new ContractError('invalid_input', `unknown saga type "${type}"`, [{ path: 'type', message: 'unknown saga type' }]);
    const id = opts.id ?? randomUUID();
    if (!SAGA_ID.test(id) || `${parseInt(id, 10)}` === id) {
      throw new ContractError('invalid_input', 'Invalid input: id: letters, digits, "_", "." and "-" only, not a bare number', [
        { path: 'id', message: 'letters, digits, "_", "." and "-" only, not a bare number' },
      ]);
    }
    const parsed: unknown = parseInput(def.input, input);
    const ctx = currentContext();
    const now = new Date().toISOString();
    const steps: SagaStepRecord[] = def.steps.map((s) => ({
      name: s.name,
      module: s.module,
      operation: s.operation,
      status: 'pending',
      attempts: 0,
      idempotencyKey: `${id}:${s.name}`,
      ...(s.compensate ? { compensation: { operation: s.compensate.operation, idempotencyKey: `${id}:${s.name}:compensate`, attempts: 0 } } : {}),
    }));
    const created = await this.journal.create({
      id,
      type,
      // Stored as JSON, as every resumed run will read it.
      input: JSON.parse(JSON.stringify(parsed ?? null)) as unknown,
      requestId: ctx?.requestId ?? newRequestId(),
      ...(ctx?.actor ? { actor: ctx.actor } : {}),
      steps,
      now,
    });
    if (created) {
      await this.enqueue(id);
      this.logger.info({ sagaId: id, sagaType: type }, 'saga started');
      return id;
    }
    const existing = await this.journal.load(id);
    if (existing && existing.type !== type) {
      throw new ContractError('conflict', `saga ${id} exists with type "${existing.type}"`);
    }
    // A process may have died between writing the record and enqueueing: make sure the job is there.
    if (existing && !isTerminal(existing.status)) await this.ensureJob(id);
    return id;
  }

  get(id: string): Promise<SagaRecord | undefined> {
    return this.journal.load(id);
  }

  /** Newest first; `nextCursor` is opaque, null on the last page. */
  async list(opts: ListSagasOptions = {}): Promise<{ items: SagaRecord[]; nextCursor: string | null }> {
    const issues: { path: string; message: string }[] = [];
    if (opts.status !== undefined && !(sagaStatuses as readonly string[]).includes(opts.status)) {
      issues.push({ path: 'status', message: `one of ${sagaStatuses.join(', ')}` });
    }
    const limit = opts.limit ?? DEFAULT_PAGE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) issues.push({ path: 'limit', message: `an integer from 1 to ${MAX_PAGE}` });
    const cursor = opts.cursor === undefined || opts.cursor === '' ? undefined : Number(opts.cursor);
    if (cursor !== undefined && !Number.isSafeInteger(cursor)) issues.push({ path: 'cursor', message: 'not a cursor from a previous page' });
    if (issues.length) {
      throw new ContractError('invalid_input', `Invalid input: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues);
    }
    return this.journal.list({
      ...(opts.status ? { status: opts.status as SagaStatus } : {}),
      limit,
      ...(cursor !== undefined ? { cursor } : {}),
    });
  }

  /** This process takes part in running sagas, its own and those of processes that died. */
  async startWorker(): Promise<void> {
    if (this.worker) return;
    if (this.closed) throw new Error('the saga orchestrator is closed');
    this.workerConn = this.opts.connections.blocking('sagas-worker');
    const worker = new Worker<SagaJobData>(SAGA_QUEUE_NAME, (job, token) => this.process(job, token), {
      connection: this.workerConn,
      prefix: SAGA_QUEUE_PREFIX,
      concurrency: this.concurrency,
      lockDuration: this.lockDurationMs,
      stalledInterval: this.stalledIntervalMs,
      // A saga must never fail for stalling: each stall is a process that died, and the journal makes
      // resuming safe however often that happens.
      maxStalledCount: 1_000_000,
    });
    worker.on('error', (err) => this.logger.error({ err }, 'saga worker error'));
    // Step failures never fail the job (the runner journals and compensates them); a failed job means
    // Redis or the process was in trouble. BullMQ retries it while attempts remain, and the next
    // worker start re-enqueues any unfinished saga whose job gave up.
    worker.on('failed', (job, err) => this.logger.error({ err, sagaId: job?.id, attempts: job?.attemptsMade }, 'saga job failed'));
    this.worker = worker;
    await worker.waitUntilReady();
    await this.sweep();
    // Every worker prunes: pruning is idempotent, and the indexes stay bounded while any process runs.
    this.pruner = setInterval(() => void this.prune(), this.opts.pruneIntervalMs ?? 60_000);
    this.pruner.unref();
  }

  /** Takes expired journals out of the indexes; returns how many. */
  async prune(): Promise<number> {
    try {
      let total = 0;
      for (let n = await this.journal.prune(); n > 0; n = await this.journal.prune()) total += n;
      if (total) this.logger.debug({ sagas: total }, 'expired saga journals pruned from the indexes');
      return total;
    } catch (err) {
      if (!this.stopping.signal.aborted) this.logger.warn({ err: (err as Error).message }, 'pruning expired saga journals failed; trying again later');
      return 0;
    }
  }

  /**
   * Stops taking sagas, lets the running ones finish their current call (up to `deadlineMs`) and hands
   * them back to the queue. A saga still inside a call at the deadline keeps its lease until it
   * expires, then another process resumes it (repeating that call under the same idempotency key).
   */
  close(deadlineMs = 10_000): Promise<void> {
    this.closed ??= this.shutdown(deadlineMs);
    return this.closed;
  }

  private async shutdown(deadlineMs: number): Promise<void> {
    this.stopping.abort();
    clearInterval(this.pruner);
    if (this.worker) {
      await this.worker.pause(true).catch((err: unknown) => this.logger.warn({ err }, 'saga worker pause failed'));
      let timer: NodeJS.Timeout | undefined;
      const idle = Promise.allSettled([...this.running]).then(() => true);
      const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, deadlineMs))));
      const finished = await Promise.race([idle, late]);
      clearTimeout(timer);
      if (!finished) this.logger.warn({ sagas: this.running.size }, 'sagas still inside a call at shutdown; they resume elsewhere once their lease expires');
      // Force: the waiting was done above; BullMQ need not wait for jobs again.
      await this.worker.close(true).catch((err: unknown) => this.logger.warn({ err }, 'saga worker close failed'));
    }
    await this.queue?.close().catch((err: unknown) => this.logger.warn({ err }, 'saga queue close failed'));
    await Promise.all(
      [this.workerConn, this.queueConn, this.kernelRedis].map((c) => c?.quit().catch(() => c.disconnect())),
    );
  }

  private getQueue(): Queue<SagaJobData> {
    if (!this.queue) {
      this.queueConn = this.opts.connections.blocking('sagas-queue');
      this.queue = new Queue<SagaJobData>(SAGA_QUEUE_NAME, { connection: this.queueConn, prefix: SAGA_QUEUE_PREFIX });
      this.queue.on('error', (err) => this.logger.error({ err }, 'saga queue error'));
    }
    return this.queue;
  }

  private jobOptions(id: string): JobsOptions {
    return {
      jobId: id,
      // Step failures are handled inside the job; a job fails only when Redis or the process is in
      // trouble, so retry it patiently. The journal is the record, the finished job is not needed.
      attempts: 10,
      backoff: { type: 'exponential', delay: 1_000 },
      removeOnComplete: true,
      removeOnFail: { age: 7 * 24 * 3600 },
    };
  }

  private async enqueue(id: string): Promise<void> {
    // Adding an existing jobId is a no-op in BullMQ, which makes this safe to repeat.
    await this.getQueue().add('saga', { sagaId: id }, this.jobOptions(id));
  }

  /** Makes sure an unfinished saga has a job that will run it. */
  private async ensureJob(id: string): Promise<void> {
    const queue = this.getQueue();
    const state = await queue.getJobState(id);
    if (state === 'unknown' || state === 'completed') {
      if (state === 'completed') await queue.remove(id);
      await this.enqueue(id);
    } else if (state === 'failed') {
      // Its retries ran out while Redis or the process was in trouble; the saga is still unfinished.
      await (await queue.getJob(id))?.retry('failed');
    }
  }

  /** Gives every unfinished saga a job: covers a process that died between the journal write and the enqueue. */
  private async sweep(): Promise<void> {
    let count = 0;
    for (const status of ['running', 'compensating'] as const) {
      for await (const id of this.journal.idsIn(status)) {
        try {
          await this.ensureJob(id);
          count += 1;
        } catch (err) {
          this.logger.warn({ err, sagaId: id }, 'could not re-enqueue an unfinished saga');
        }
      }
    }
    if (count) this.logger.info({ sagas: count }, 'unfinished sagas checked for a job');
  }

  private leaseOf(id: string, token: string | undefined): SagaLease | undefined {
    if (!token) return undefined;
    // BullMQ keeps a job's lock at `<prefix>:<queue>:<jobId>:lock`; the journal script checks it.
    const full = `${SAGA_QUEUE_PREFIX}:${SAGA_QUEUE_NAME}:${id}:lock`;
    return { key: full.slice(KERNEL_PREFIX.length), token };
  }

  private async process(job: Job<SagaJobData>, token: string | undefined): Promise<void> {
    const sagaId = job.data.sagaId;
    const work = (async () => {
      if (this.stopping.signal.aborted) return 'paused' as const;
      return runSaga(
        {
          journal: this.journal,
          definitionOf: (type) => this.defs.get(type),
          resolvePort: this.opts.resolvePort,
          logger: this.logger,
          retryDelayMs: this.retryDelayMs,
        },
        sagaId,
        this.leaseOf(sagaId, token),
        this.stopping.signal,
      );
    })();
    this.running.add(work);
    try {
      const outcome = await work.catch((err: unknown) => {
        if (err instanceof LeaseLostError) this.logger.warn({ sagaId }, 'saga lease lost mid-run; another process resumes it');
        throw err;
      });
      if (outcome === 'paused') {
        // Shutting down between two calls: hand the saga back now rather than after the lease expires.
        await job.moveToWait(token);
        throw new WaitingError();
      }
    } finally {
      this.running.delete(work);
    }
  }
}
