// Keeps the `facts` vector collection of the embeddings module in step with the facts, off the write
// path: the module's own fact events enqueue a BullMQ job, and the job brings one fact's vector to the
// fact's current state (upsert, metadata change or removal). A slow or down embeddings module therefore
// never fails or slows a fact write; the job retries with backoff, and stays in the failed list after
// its last attempt.
//
// The job reads the fact when it runs rather than trusting the event: jobs for one fact may run out of
// order (retries, several workers), and the state at run time is the only truth. After writing, it
// reads the fact's rev again; a change that slipped in meanwhile is synced once more, so the last job
// to finish always leaves the current state behind. Each fact is its own "document" in the collection
// (metadata.documentId = the fact id), which is what `setMetadata` addresses.
import { randomUUID } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { Queue } from 'bullmq';
import type { Port } from '../../kernel/contract/define.js';
import { runWithContext } from '../../kernel/context/request-context.js';
import type { ModuleJobs } from '../../kernel/jobs/jobs.js';
import { ModuleJobsToken, ModuleLogger } from '../../kernel/module/tokens.js';
import { embeddingsContract } from '../embeddings/contract.js';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { ALL_FACTS_KEY, FactStore, type StoredFact } from './fact-store.js';

export const SYNC_QUEUE = 'embeddings-sync';
const COLLECTION = 'facts';
/** Title shown for a fact in search results and citations: its first words. */
const TITLE_MAX = 80;
/** Rounds of "a change slipped in while syncing" before leaving the rest to that change's own job. */
const MAX_ROUNDS = 3;

export type SyncHint = 'content' | 'metadata' | 'delete';

export interface SyncJob {
  factId: string;
  hint: SyncHint;
}

export const SYNC_JOB_OPTIONS = {
  // About an hour of retries (1 s, 2 s, 4 s … 34 min) before a job stays in the failed list.
  attempts: 12,
  backoff: { type: 'exponential', delay: 1000 },
} as const;

export function factTitle(content: string): string {
  const oneLine = content.replace(/\s+/g, ' ').trim();
  return oneLine.length <= TITLE_MAX ? oneLine : `${oneLine.slice(0, TITLE_MAX - 1)}…`;
}

@injectable()
export class EmbeddingsSync {
  private readonly queue: Queue<SyncJob>;

  constructor(
    @inject(FactStore) private readonly facts: FactStore,
    @inject(embeddingsContract.token) private readonly embeddings: Port<typeof embeddingsContract>,
    @inject(ModuleJobsToken) private readonly jobs: ModuleJobs,
    @inject(ModuleLogger) private readonly logger: Logger,
    @inject(ModuleRedis) private readonly redis: Redis,
  ) {
    this.queue = jobs.queue<SyncJob>(SYNC_QUEUE);
  }

  startWorker(): void {
    this.jobs.worker<SyncJob>(SYNC_QUEUE, async (job) => this.sync(job.data.factId, job.data.hint), { concurrency: 4 });
  }

  /** Enqueues the sync of one fact; `key` (the event id) makes a redelivered event enqueue nothing new. */
  async enqueue(key: string, job: SyncJob): Promise<void> {
    await this.queue.add('sync', job, { ...SYNC_JOB_OPTIONS, jobId: key });
  }

  /**
   * Enqueues a full sync of every fact, e.g. after the facts collection was reset to take another
   * embedding model. Answers how many facts were queued.
   */
  async enqueueAll(): Promise<number> {
    const run = randomUUID();
    let queued = 0;
    let after = '-';
    for (;;) {
      const ids = await this.redis.zrangebylex(ALL_FACTS_KEY, after, '+', 'LIMIT', 0, 500);
      if (ids.length === 0) return queued;
      await this.queue.addBulk(ids.map((factId) => ({ name: 'sync', data: { factId, hint: 'content' as const }, opts: { ...SYNC_JOB_OPTIONS, jobId: `reindex-${run}-${factId}` } })));
      queued += ids.length;
      after = `(${ids[ids.length - 1]!}`;
    }
  }

  /** Syncs waiting or retrying, and those that gave up (left in the failed list for an operator). */
  async backlog(): Promise<{ pending: number; failed: number }> {
    const counts = await this.queue.getJobCounts('waiting', 'delayed', 'active', 'failed');
    return { pending: (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.active ?? 0), failed: counts.failed ?? 0 };
  }

  /** Brings the fact's vector to the fact's current state. */
  async sync(factId: string, hint: SyncHint): Promise<void> {
    // The embeddings module sees the knowledge module calling, not the user whose change this was.
    await runWithContext({ requestId: randomUUID(), actor: { type: 'service', name: 'knowledge' } }, async () => {
      let mode = hint;
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const fact = await this.facts.get(factId);
        if (!fact) {
          await this.embeddings.remove({ collection: COLLECTION, ids: [factId] });
          return;
        }
        await this.write(fact, mode);
        const after = await this.facts.get(factId);
        if (after?.rev === fact.rev) return;
        // Changed (or deleted) while we wrote: sync the newest state in full.
        mode = 'content';
      }
      this.logger.warn({ factId }, 'fact kept changing while its vector was synced; its latest change will sync it');
    });
  }

  private async write(fact: StoredFact, mode: SyncHint): Promise<void> {
    if (mode === 'metadata') {
      const { updated } = await this.embeddings.setMetadata({
        collection: COLLECTION,
        documentId: fact.id,
        patch: { shared: fact.shared, categoryId: fact.categoryId, tags: fact.tags },
      });
      // Nothing to update: the vector was never written (its create is still retrying). Write it whole.
      if (updated > 0) return;
    }
    await this.embeddings.upsert({
      collection: COLLECTION,
      items: [
        {
          id: fact.id,
          text: fact.content,
          metadata: {
            ownerId: fact.ownerId,
            documentId: fact.id,
            categoryId: fact.categoryId,
            tags: fact.tags,
            shared: fact.shared,
            title: factTitle(fact.content),
          },
        },
      ],
    });
  }
}
