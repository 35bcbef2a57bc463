// The durable saga orchestrator (ARCHITECTURE.md §6). Each saga type has its BullMQ queue, and only
// processes hosting the module that declares the type run workers for it (`startWorker(types)`).
//
// Fast path: a process that hosts the type drives a saga it starts itself, at once, in process: the
// journal record and the saga's lease (`saga-lease:<id>`, renewed while it runs) are written in one
// script, and nothing is queued. A saga that ends in time costs BullMQ nothing. When the driving
// process dies, its lease expires; every process serving the type looks for unfinished sagas without a
// lease every `stalledIntervalMs` (and once when its workers start) and queues a job for each, which a
// worker takes: it takes the lease and resumes the saga from its journal. A worker that finds the lease
// still held (the driver is alive, just slow) puts the job back to sleep for as long as the lease has
// left. A driver that stops early (shutdown, an error) gives its lease up and queues the job itself.
// Slow path (the starting process does not host the type, or a recovery): the job is queued at once and
// a worker takes the saga's lease before driving it. Journal writes are fenced by the lease either way.
import { randomUUID } from 'node:crypto';
import { DelayedError, Queue, Worker, WaitingError, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { currentContext, newRequestId } from '../context/request-context.js';
import { ContractError } from '../contract/errors.js';
import { parseInput } from '../contract/validation.js';
import type { RedisConnections } from '../redis/redis-connections.js';
import type { AnySagaDefinition } from './saga-definition.js';
import { DEFAULT_SAGA_RETENTION, LeaseLostError, leaseKey, SagaJournal, type SagaLease, type SagaRetention } from './saga-journal.js';
import { isTerminal, sagaStatuses, type SagaRecord, type SagaStatus, type SagaStepRecord } from './saga-record.js';
import { runSaga, type PortResolver, type RunOutcome, type SagaRunnerDeps } from './saga-runner.js';

export type { PortResolver };

/** BullMQ key prefix of the saga queues; a type's queue keys are `kernel:sagas:<type>:*`, in the kernel database. */
export const SAGA_QUEUE_PREFIX = 'kernel:sagas';
/** The BullMQ queue of a saga type (saga types never contain ':', which BullMQ refuses). */
export const sagaQueueName = (type: string): string => type;

export interface SagaOrchestratorOptions {
  connections: RedisConnections;
  logger: Logger;
  resolvePort: PortResolver;
  /**
   * How long a saga's lease (and a worker's BullMQ job lock) lasts without renewal: the delay before a
   * dead process's sagas resume. Default 5 s (renewed every third of it while the saga runs), so a
   * chat turn whose process was killed ends within 10 s of a restart; only an event loop blocked for
   * 5 s would lose a lease it still needs.
   */
  lockDurationMs?: number;
  /**
   * How often workers look for sagas whose lease expired (their driver died), and BullMQ for stalled
   * jobs. Default: half of lockDurationMs, so a saga resumes within 1.5 leases of its driver's death.
   */
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
  private readonly queues = new Map<string, Queue<SagaJobData>>();
  private readonly workerConns: Redis[] = [];
  private readonly workers: Worker<SagaJobData>[] = [];
  /** The saga types this process runs workers for (and drives itself when it starts one). */
  private readonly served = new Set<string>();
  private workersStarted = false;
  /** Leases this process holds, by saga id: renewed together, every third of the lease. */
  private readonly leases = new Map<string, SagaLease>();
  private renewer: NodeJS.Timeout | undefined;
  private readonly running = new Set<Promise<unknown>>();
  /** Sagas driven here that stopped between calls at shutdown: made due at once once the workers closed. */
  private readonly handBacks: { type: string; id: string }[] = [];
  private readonly stopping = new AbortController();
  private closed: Promise<void> | undefined;
  private pruner: NodeJS.Timeout | undefined;
  private orphanSweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

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
    const saga = {
      id,
      type,
      // Stored as JSON, as every resumed run will read it.
      input: JSON.parse(JSON.stringify(parsed ?? null)) as unknown,
      requestId: ctx?.requestId ?? newRequestId(),
      ...(ctx?.actor ? { actor: ctx.actor } : {}),
      steps,
      now,
    };
    // Driven here when this process hosts the type's module; otherwise queued for a process that does.
    const lease = this.served.has(type) ? { key: leaseKey(id), token: randomUUID() } : undefined;
    const created = await this.journal.create(saga, lease && { ...lease, ttlMs: this.lockDurationMs });
    if (created) {
      if (lease) {
        const { now: at, ...rest } = saga;
        this.drive({ ...rest, status: 'running', currentStep: null, createdAt: at, updatedAt: at, steps: steps.map((s) => ({ ...s })) }, lease);
      } else {
        await this.enqueue(type, id);
      }
      this.logger.info({ sagaId: id, sagaType: type }, 'saga started');
      return id;
    }
    const existing = await this.journal.load(id);
    if (existing && existing.type !== type) {
      throw new ContractError('conflict', `saga ${id} exists with type "${existing.type}"`);
    }
    // A process may have died between writing the record and enqueueing: make sure the job is there.
    if (existing && !isTerminal(existing.status)) await this.ensureJob(type, id);
    return id;
  }

  /** The saga types this process runs workers for (empty before startWorker). */
  servedTypes(): string[] {
    return [...this.served];
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

  /**
   * This process takes part in running sagas of `types` (default: every registered type), its own and
   * those of processes that died: pass the types declared by the modules this process hosts, since a
   * saga's steps are its module's operations. No types, no worker.
   */
  async startWorker(types?: readonly string[]): Promise<void> {
    if (this.workersStarted) return;
    if (this.closed) throw new Error('the saga orchestrator is closed');
    this.workersStarted = true;
    for (const type of types ?? [...this.defs.keys()]) {
      if (!this.defs.has(type)) throw new Error(`saga type "${type}" is not registered`);
      this.served.add(type);
    }
    for (const type of this.served) {
      const conn = this.opts.connections.blocking(`sagas-worker:${type}`);
      this.workerConns.push(conn);
      const worker = new Worker<SagaJobData>(sagaQueueName(type), (job, token) => this.process(job, token), {
        connection: conn,
        prefix: SAGA_QUEUE_PREFIX,
        concurrency: this.concurrency,
        lockDuration: this.lockDurationMs,
        stalledInterval: this.stalledIntervalMs,
        // A saga must never fail for stalling: each stall is a process that died, and the journal makes
        // resuming safe however often that happens.
        maxStalledCount: 1_000_000,
      });
      worker.on('error', (err) => this.logger.error({ err, sagaType: type }, 'saga worker error'));
      // Step failures never fail the job (the runner journals and compensates them); a failed job means
      // Redis or the process was in trouble. BullMQ retries it while attempts remain, and the next
      // worker start re-enqueues any unfinished saga whose job gave up.
      worker.on('failed', (job, err) => this.logger.error({ err, sagaId: job?.id, attempts: job?.attemptsMade }, 'saga job failed'));
      this.workers.push(worker);
      await worker.waitUntilReady();
    }
    if (!this.served.size) return;
    await this.sweep();
    // Sagas whose driver died: their lease expires, and the next look finds them.
    this.orphanSweeper = setInterval(() => {
      this.sweeping ??= this.sweepOrphans().finally(() => (this.sweeping = undefined));
    }, this.stalledIntervalMs);
    this.orphanSweeper.unref();
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
    clearInterval(this.orphanSweeper);
    await this.sweeping;
    await Promise.all(this.workers.map((w) => w.pause(true).catch((err: unknown) => this.logger.warn({ err }, 'saga worker pause failed'))));
    if (this.running.size) {
      let timer: NodeJS.Timeout | undefined;
      const idle = Promise.allSettled([...this.running]).then(() => true);
      const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, deadlineMs))));
      const finished = await Promise.race([idle, late]);
      clearTimeout(timer);
      if (!finished) this.logger.warn({ sagas: this.running.size }, 'sagas still inside a call at shutdown; they resume elsewhere once their lease expires');
    }
    // Leases of sagas still inside a call are no longer renewed: they expire and the sagas resume elsewhere.
    clearInterval(this.renewer);
    // Force: the waiting was done above; BullMQ need not wait for jobs again.
    await Promise.all(this.workers.map((w) => w.close(true).catch((err: unknown) => this.logger.warn({ err }, 'saga worker close failed'))));
    await Promise.all(this.handBacks.map((b) => this.handBack(b.type, b.id)));
    await Promise.all([...this.queues.values()].map((q) => q.close().catch((err: unknown) => this.logger.warn({ err }, 'saga queue close failed'))));
    await Promise.all([...this.workerConns, this.queueConn, this.kernelRedis].map((c) => c?.quit().catch(() => c.disconnect())));
  }

  private getQueue(type: string): Queue<SagaJobData> {
    let queue = this.queues.get(type);
    if (!queue) {
      this.queueConn ??= this.opts.connections.blocking('sagas-queue');
      queue = new Queue<SagaJobData>(sagaQueueName(type), { connection: this.queueConn, prefix: SAGA_QUEUE_PREFIX });
      queue.on('error', (err) => this.logger.error({ err, sagaType: type }, 'saga queue error'));
      this.queues.set(type, queue);
    }
    return queue;
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

  /** `delayMs`: the recovery job of a saga driven here, due when its lease would have expired. */
  private async enqueue(type: string, id: string, delayMs?: number): Promise<void> {
    // Adding an existing jobId is a no-op in BullMQ, which makes this safe to repeat.
    await this.getQueue(type).add('saga', { sagaId: id }, { ...this.jobOptions(id), ...(delayMs ? { delay: delayMs } : {}) });
  }

  /** Makes sure an unfinished saga has a job that will run it. */
  private async ensureJob(type: string, id: string): Promise<void> {
    const queue = this.getQueue(type);
    const state = await queue.getJobState(id);
    if (state === 'unknown' || state === 'completed') {
      if (state === 'completed') await queue.remove(id);
      await this.enqueue(type, id);
    } else if (state === 'failed') {
      // Its retries ran out while Redis or the process was in trouble; the saga is still unfinished.
      await (await queue.getJob(id))?.retry('failed');
    }
  }

  /**
   * Gives every unfinished saga of the types served here a job: covers a process that died between the
   * journal write and the enqueue, and the sagas a dead process was driving (at a restart their lease
   * may not have expired yet: the job sleeps until it has).
   */
  private async sweep(): Promise<void> {
    let count = 0;
    for (const status of ['running', 'compensating'] as const) {
      for await (const id of this.journal.idsIn(status)) if (await this.ensureJobFor(id)) count += 1;
    }
    if (count) this.logger.info({ sagas: count }, 'unfinished sagas checked for a job');
  }

  /** Queues a job for each unfinished saga whose lease nobody holds (its driver died): they resume here or elsewhere. */
  private async sweepOrphans(): Promise<void> {
    try {
      let count = 0;
      for (const id of await this.journal.withoutLease()) {
        if (this.stopping.signal.aborted) return;
        if (await this.ensureJobFor(id)) count += 1;
      }
      if (count) this.logger.debug({ sagas: count }, 'sagas without a lease checked for a job');
    } catch (err) {
      if (!this.stopping.signal.aborted) this.logger.warn({ err: (err as Error).message }, 'looking for sagas whose driver died failed; trying again');
    }
  }

  /** Whether the saga is unfinished and of a type served here; then it has a job. */
  private async ensureJobFor(id: string): Promise<boolean> {
    try {
      const rec = await this.journal.load(id);
      if (!rec || isTerminal(rec.status) || !this.served.has(rec.type)) return false;
      await this.ensureJob(rec.type, id);
      return true;
    } catch (err) {
      this.logger.warn({ err, sagaId: id }, 'could not re-enqueue an unfinished saga');
      return false;
    }
  }

  private runnerDeps(): SagaRunnerDeps {
    return {
      journal: this.journal,
      definitionOf: (type) => this.defs.get(type),
      resolvePort: this.opts.resolvePort,
      logger: this.logger,
      retryDelayMs: this.retryDelayMs,
    };
  }

  /** Holds `lease` until release: renewed with every other lease this process holds. */
  private hold(id: string, lease: SagaLease): () => void {
    this.leases.set(id, lease);
    if (!this.renewer) {
      this.renewer = setInterval(() => void this.renewLeases(), Math.max(50, Math.round(this.lockDurationMs / 3)));
      this.renewer.unref();
    }
    return () => {
      if (this.leases.get(id) === lease) this.leases.delete(id);
    };
  }

  private async renewLeases(): Promise<void> {
    if (!this.leases.size) return;
    try {
      const lost = await this.journal.renewLeases([...this.leases.values()], this.lockDurationMs);
      // The run finds out at its next journal write (LeaseLostError) and stops there.
      for (const l of lost) this.logger.warn({ lease: l.key }, 'saga lease lost; another process resumes the saga');
    } catch (err) {
      if (!this.stopping.signal.aborted) this.logger.warn({ err: (err as Error).message }, 'saga leases not renewed; trying again');
    }
  }

  /** The fast path: drives a saga this process just started; its job is queued only if it stops early. */
  private drive(rec: SagaRecord, lease: SagaLease): void {
    const release = this.hold(rec.id, lease);
    const work = (async () => {
      let outcome: RunOutcome | 'error';
      try {
        outcome = await runSaga(this.runnerDeps(), rec.id, lease, this.stopping.signal, rec);
      } catch (err) {
        if (err instanceof LeaseLostError) this.logger.warn({ sagaId: rec.id }, 'saga lease lost mid-run; another process resumes it');
        else this.logger.error({ err, sagaId: rec.id }, 'saga run failed; a worker resumes it from its journal');
        outcome = 'error';
      } finally {
        release();
      }
      if (outcome === 'finished') return;
      // Stopped between two calls (shutdown) or failed: give the lease up and queue the saga for a worker
      // (if that fails, the next look for sagas without a lease queues it).
      await this.journal.releaseLease(lease).catch(() => undefined);
      // On shutdown after the workers closed (shutdown does it), so that none of ours takes it up again.
      if (outcome === 'paused') this.handBacks.push({ type: rec.type, id: rec.id });
      else await this.enqueue(rec.type, rec.id);
    })();
    // Nothing above should throw after the run (each step catches), but a rejection here (say the queue
    // closed during a shutdown) must be logged, never left unhandled.
    const tracked = work.catch((err: unknown) => this.logger.warn({ err: (err as Error).message, sagaId: rec.id }, 'saga hand-off after its run failed; a worker resumes it'));
    this.running.add(tracked);
    void tracked.finally(() => this.running.delete(tracked));
  }

  private async handBack(type: string, id: string): Promise<void> {
    try {
      // A job may be asleep already (queued by another process's look for sagas without a lease): due now.
      const queue = this.getQueue(type);
      if ((await queue.getJobState(id)) === 'delayed') await (await queue.getJob(id))?.promote();
      else await this.enqueue(type, id);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, sagaId: id }, 'saga not handed back at once; it resumes when its job comes due');
    }
  }

  private async process(job: Job<SagaJobData>, token: string | undefined): Promise<void> {
    const sagaId = job.data.sagaId;
    const work = (async (): Promise<RunOutcome | 'held'> => {
      if (this.stopping.signal.aborted) return 'paused';
      const lease: SagaLease = { key: leaseKey(sagaId), token: token ?? randomUUID() };
      const got = await this.journal.acquireLease(lease, this.lockDurationMs);
      if (!got.acquired) {
        // Its driver is alive (or died less than a lease ago): look again when the lease would expire.
        this.logger.debug({ sagaId, leaseLeftMs: got.remainingMs }, 'saga lease held elsewhere; its job sleeps until the lease would expire');
        await job.moveToDelayed(Date.now() + Math.max(got.remainingMs, 20) + 20, token);
        return 'held';
      }
      // Read under the lease, never before: a driver's last write gives the lease up with the final
      // status, so a journal read earlier could show a saga that has finished since.
      const rec = await this.journal.load(sagaId).catch(async (err: unknown) => {
        await this.journal.releaseLease(lease).catch(() => undefined);
        throw err;
      });
      if (!rec || isTerminal(rec.status)) {
        await this.journal.releaseLease(lease);
        if (!rec) this.logger.warn({ sagaId }, 'saga job has no journal record; dropped');
        return 'finished';
      }
      const release = this.hold(sagaId, lease);
      try {
        const outcome = await runSaga(this.runnerDeps(), sagaId, lease, this.stopping.signal, rec);
        if (outcome === 'paused') await this.journal.releaseLease(lease);
        return outcome;
      } catch (err) {
        if (err instanceof LeaseLostError) this.logger.warn({ sagaId }, 'saga lease lost mid-run; another process resumes it');
        else await this.journal.releaseLease(lease).catch(() => undefined);
        throw err;
      } finally {
        release();
      }
    })();
    this.running.add(work);
    try {
      const outcome = await work;
      if (outcome === 'held') throw new DelayedError();
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
