// BullMQ queues and workers owned by a module. Every module's queues live under the BullMQ prefix
// `jobs:<moduleId>`, so two modules may both have a queue called `ingest` without their keys colliding.
// Jobs retry with exponential backoff, keep a bounded history (the failed list stays visible for a week)
// and shut down gracefully within a deadline.
import { Queue, Worker, type DefaultJobOptions, type Processor, type QueueOptions } from 'bullmq';
import type { Logger } from 'pino';
import { quitWithin, type Redis, type RedisConnections } from '../redis/redis-connections.js';
import { settlesWithin } from '../time/settles-within.js';

export type { Processor };

const HOUR_S = 3600;

/** Defaults for every job; a queue's `defaultJobOptions` and a job's own options override them. */
export const DEFAULT_JOB_OPTIONS: Readonly<DefaultJobOptions> = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  // KeepJobs ages are in seconds. The failed list is kept longer than the completed one: it is what an
  // operator looks at after something went wrong.
  removeOnComplete: { count: 1000, age: 24 * HOUR_S },
  removeOnFail: { count: 5000, age: 7 * 24 * HOUR_S },
};

/** Queue options a module may set; the connection and the key prefix are the kernel's business. */
export type ModuleQueueOptions = Omit<QueueOptions, 'connection' | 'prefix'>;

export interface ModuleWorkerOptions {
  /** Jobs processed at the same time by this worker (default 1). */
  concurrency?: number;
  /** How long a job's lock lasts without renewal; a worker that dies loses its jobs after this (default 30 s). */
  lockDurationMs?: number;
  /** How often the worker looks for jobs whose worker died (default 30 s). */
  stalledIntervalMs?: number;
  /** How many times a job may be found stalled before it fails (default 1). */
  maxStalledCount?: number;
}

export interface ModuleJobs {
  /** The module's queue `name` (created on first use, the same object afterwards). */
  queue<T = unknown>(name: string, opts?: ModuleQueueOptions): Queue<T>;
  /** Starts a worker processing the module's queue `name`; it runs until `Jobs.close`. */
  worker<T = unknown, R = unknown>(name: string, processor: Processor<T, R>, opts?: ModuleWorkerOptions): Worker<T, R>;
}

interface OwnedWorker {
  readonly label: string;
  readonly worker: Worker<unknown, unknown>;
  /** The worker's own connection (BullMQ duplicates it for its blocking fetch and closes the duplicate). */
  readonly connection: Redis;
}

export class Jobs {
  private readonly connections: RedisConnections;
  private readonly logger: Logger;
  private readonly modules = new Map<string, ModuleJobs>();
  private readonly queues = new Map<string, Queue<unknown>>();
  private readonly workers: OwnedWorker[] = [];
  /** Shared by every queue: producers only send short commands, so one connection serves them all. */
  private queueConnection: Redis | undefined;
  private closing: Promise<void> | undefined;

  constructor(opts: { connections: RedisConnections; logger: Logger }) {
    this.connections = opts.connections;
    this.logger = opts.logger.child({ component: 'jobs' });
  }

  forModule(moduleId: string): ModuleJobs {
    if (!/^[a-z0-9][a-z0-9_-]*$/i.test(moduleId)) throw new Error(`invalid module id for jobs: "${moduleId}"`);
    let jobs = this.modules.get(moduleId);
    if (!jobs) {
      jobs = {
        queue: <T>(name: string, opts?: ModuleQueueOptions) => this.queue<T>(moduleId, name, opts),
        worker: <T, R>(name: string, processor: Processor<T, R>, opts?: ModuleWorkerOptions) => this.worker<T, R>(moduleId, name, processor, opts),
      };
      this.modules.set(moduleId, jobs);
    }
    return jobs;
  }

  /**
   * Closes every worker, then every queue, within `deadlineMs`. Workers first stop fetching and wait for
   * their running jobs; a worker whose jobs are still running when the deadline nears is force-closed
   * (its jobs get an abort signal and its connections are cut), and those jobs are picked up again by
   * BullMQ's stalled-job check once their lock expires.
   */
  close(deadlineMs: number): Promise<void> {
    this.closing ??= this.shutdown(deadlineMs);
    return this.closing;
  }

  private prefix(moduleId: string): string {
    return `jobs:${moduleId}`;
  }

  private assertOpen(): void {
    if (this.closing) throw new Error('jobs are shutting down: no new queue or worker');
  }

  private queue<T>(moduleId: string, name: string, opts: ModuleQueueOptions = {}): Queue<T> {
    this.assertOpen();
    const key = `${moduleId}/${name}`;
    const existing = this.queues.get(key);
    // Queue<T> differs from Queue<unknown> only in the job data type, which the caller names.
    if (existing) return existing as unknown as Queue<T>;
    this.queueConnection ??= this.connections.blocking('jobs:queues');
    const queue = new Queue<T>(name, {
      ...opts,
      connection: this.queueConnection,
      prefix: this.prefix(moduleId),
      defaultJobOptions: { ...DEFAULT_JOB_OPTIONS, ...opts.defaultJobOptions },
    });
    queue.on('error', (err: Error) => this.logger.error({ module: moduleId, queue: name, err: err.message }, 'job queue error'));
    this.queues.set(key, queue as unknown as Queue<unknown>);
    return queue;
  }

  private worker<T, R>(moduleId: string, name: string, processor: Processor<T, R>, opts: ModuleWorkerOptions = {}): Worker<T, R> {
    this.assertOpen();
    const label = `jobs:${moduleId}:${name}`;
    const connection = this.connections.blocking(label);
    const worker = new Worker<T, R>(name, processor, {
      connection,
      prefix: this.prefix(moduleId),
      concurrency: opts.concurrency ?? 1,
      ...(opts.lockDurationMs !== undefined ? { lockDuration: opts.lockDurationMs } : {}),
      ...(opts.stalledIntervalMs !== undefined ? { stalledInterval: opts.stalledIntervalMs } : {}),
      ...(opts.maxStalledCount !== undefined ? { maxStalledCount: opts.maxStalledCount } : {}),
    });
    const log = this.logger.child({ module: moduleId, queue: name });
    // Without an 'error' listener an EventEmitter error would crash the process.
    worker.on('error', (err: Error) => log.error({ err: err.message }, 'job worker error'));
    worker.on('failed', (job, err: Error) => {
      if (!job) return;
      const final = job.attemptsMade >= (job.opts.attempts ?? 1);
      log[final ? 'error' : 'warn'](
        { jobId: job.id, jobName: job.name, attempt: job.attemptsMade, err: err.message },
        final ? 'job failed for good: it stays in the failed list' : 'job failed, will retry',
      );
    });
    worker.on('stalled', (jobId: string) => log.warn({ jobId }, 'job stalled (its worker stopped renewing the lock): retrying it'));
    this.workers.push({ label, worker: worker as unknown as Worker<unknown, unknown>, connection });
    return worker;
  }

  private async shutdown(deadlineMs: number): Promise<void> {
    const end = Date.now() + Math.max(0, deadlineMs);
    // Keep part of the budget for the forced path, so even a forced shutdown ends inside the deadline.
    const forceReserve = Math.min(1000, Math.floor(deadlineMs / 4));
    const left = (): number => Math.max(0, end - Date.now());

    await Promise.all(
      this.workers.map(async (w) => {
        // pause() stops fetching and waits for the running jobs; close(true) is only a real force close
        // when no graceful close() is pending (BullMQ returns the pending close otherwise), hence the order.
        const graceful = (async () => {
          await w.worker.pause();
          await w.worker.close();
        })();
        if (await settlesWithin(graceful, left() - forceReserve)) {
          await quitWithin(w.connection, left());
        } else {
          this.logger.warn({ worker: w.label, deadlineMs }, 'jobs still running at the shutdown deadline: force-closing the worker; they will be retried once their lock expires');
          w.worker.cancelAllJobs('shutdown deadline');
          await settlesWithin(w.worker.close(true), left());
          w.connection.disconnect();
        }
      }),
    );

    const queuesClosed = Promise.all([...this.queues.values()].map((q) => q.close()));
    const queuesDone = await settlesWithin(queuesClosed, left());
    if (this.queueConnection && !(queuesDone && (await quitWithin(this.queueConnection, left())))) {
      this.logger.warn({ deadlineMs }, 'job queues did not close before the shutdown deadline: disconnecting');
      this.queueConnection.disconnect();
    }
  }
}
