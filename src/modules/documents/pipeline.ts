// The ingestion pipeline: stages parse → chunk → embed → index, each enqueuing the next as a BullMQ job
// under a deterministic job id (`<doc>-r<run>-<stage>`), so a stage retried after a crash never
// enqueues its successor twice. A small file (`inlineStagesMaxBytes`) runs its next stages in the same
// job instead, and the index stage (an event and a record update) always runs in the embed stage's job:
// a job costs dozens of Redis commands (add, fetch, lock, finish, its event stream), more than a small
// document's stages themselves. Each stage still claims its step, reports its status and checks for a
// cancel, so only the number of jobs changes. Every stage first claims its step in the document's record (a run only
// moves forward), checks again between embedding batches, and when it finds its run cancelled, deleted
// or superseded it removes what it wrote itself: the last writer cleans up, so nothing is left behind.
import { randomUUID } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import { UnrecoverableError, type Job, type Queue, type Worker } from 'bullmq';
import type { Port } from '../../kernel/contract/define.js';
import { isContractError } from '../../kernel/contract/errors.js';
import { runWithContext, type Actor } from '../../kernel/context/request-context.js';
import { ModuleEventsToken, ModuleJobsToken, ModuleLogger, RealtimeToken, type ModuleEvents } from '../../kernel/module/tokens.js';
import type { ModuleJobs } from '../../kernel/jobs/jobs.js';
import type { Realtime } from '../../kernel/realtime/realtime.js';
import { embeddingsContract } from '../embeddings/contract.js';
import { filesContract } from '../files/contract.js';
import { STAGES, type DocumentProgress, type Stage } from './contract.js';
import { blocksToMarkdown } from './blocks.js';
import { chunkBlocks } from './chunker.js';
import { DocumentStore, type RunState, type StoredDocument } from './document-store.js';
import { parseDocument, ParseFailure } from './parsers.js';
import { DocumentsSettingsHolder } from './settings.js';

export interface IngestJob {
  documentId: string;
  ownerId: string;
  run: number;
  /** The file's size, which decides whether stages run on in one job (absent in older jobs: one per stage). */
  size?: number;
}

export const QUEUE = 'ingest';
export const COLLECTION = 'documents' as const;
const SERVICE: Actor = { type: 'service', name: 'documents' };

/** The run this job belongs to is no longer live: what it wrote has been removed. */
class RunEnded extends Error {}

/** A failure that retrying cannot fix. */
export class PermanentFailure extends Error {}

export const vectorId = (documentId: string, run: number, seq: number) => `${documentId}:${run}:${seq}`;
export const jobId = (documentId: string, run: number, stage: Stage) => `${documentId}-r${run}-${stage}`;

/** Progress of a run: each stage owns a slice of 0..1 (embedding, the long one, most). */
const PROGRESS: Record<Stage, number> = { parse: 0.02, chunk: 0.15, embed: 0.2, index: 0.97 };

async function collect(body: AsyncIterable<Uint8Array>, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += c.length;
    if (size > max) throw new PermanentFailure('the file is larger than recorded');
    parts.push(Buffer.from(c));
  }
  return Buffer.concat(parts);
}

@injectable()
export class Pipeline {
  private worker: Worker<IngestJob> | undefined;

  constructor(
    @inject(DocumentStore) private readonly store: DocumentStore,
    @inject(DocumentsSettingsHolder) private readonly settings: DocumentsSettingsHolder,
    @inject(ModuleJobsToken) private readonly jobs: ModuleJobs,
    @inject(ModuleEventsToken) private readonly events: ModuleEvents,
    @inject(RealtimeToken) private readonly realtime: Realtime,
    @inject(ModuleLogger) private readonly logger: Logger,
    @inject(embeddingsContract.token) private readonly embeddings: Port<typeof embeddingsContract>,
    @inject(filesContract.token) private readonly files: Port<typeof filesContract>,
  ) {}

  queue(): Queue<IngestJob> {
    return this.jobs.queue<IngestJob>(QUEUE);
  }

  async enqueue(stage: Stage, data: IngestJob): Promise<void> {
    const s = this.settings.current();
    await this.queue().add(stage, data, {
      jobId: jobId(data.documentId, data.run, stage),
      attempts: s.attempts,
      backoff: { type: 'exponential', delay: s.backoffMs },
    });
  }

  async enqueueMany(stage: Stage, items: IngestJob[]): Promise<void> {
    const s = this.settings.current();
    await this.queue().addBulk(
      items.map((data) => ({
        name: stage,
        data,
        opts: { jobId: jobId(data.documentId, data.run, stage), attempts: s.attempts, backoff: { type: 'exponential' as const, delay: s.backoffMs } },
      })),
    );
  }

  async start(): Promise<void> {
    const s = this.settings.current();
    this.worker = this.jobs.worker<IngestJob>(QUEUE, (job) => runWithContext({ requestId: `job-${job.id ?? randomUUID()}`, actor: SERVICE }, () => this.process(job)), {
      concurrency: s.concurrency,
      lockDurationMs: s.jobLockMs,
      stalledIntervalMs: s.stalledCheckMs,
      maxStalledCount: 10,
    });
    await this.resume();
  }

  /** Documents accepted but whose next job may never have been enqueued (a crash right after the 202). */
  private async resume(): Promise<void> {
    for (const id of await this.store.active()) {
      const doc = await this.store.get(id);
      if (!doc) continue;
      const stage = STAGES[Math.max(0, doc.stageIdx)]!;
      await this.enqueue(stage, { documentId: id, ownerId: doc.ownerId, run: doc.run, size: doc.size });
    }
  }

  push(doc: Pick<StoredDocument, 'id' | 'ownerId' | 'status' | 'stage' | 'progress'>): void {
    const payload: DocumentProgress = { documentId: doc.id, status: doc.status, stage: doc.stage, progress: doc.progress };
    this.realtime.toUser(doc.ownerId, 'document:progress', payload);
  }

  /** Runs one stage; answers the stage that comes next (undefined: the run is done or not this job's). */
  private async runStage(stage: Stage, data: IngestJob): Promise<Stage | undefined> {
    switch (stage) {
      case 'parse':
        return this.parse(data);
      case 'chunk':
        return this.chunk(data);
      case 'embed':
        return this.embed(data);
      case 'index':
        return this.index(data);
      default:
        throw new UnrecoverableError(`unknown stage ${String(stage)}`);
    }
  }

  /** Whether `next` runs in the job that finished the stage before it. */
  private runsInline(next: Stage, data: IngestJob): boolean {
    return next === 'index' || (data.size !== undefined && data.size <= this.settings.current().inlineStagesMaxBytes);
  }

  private async process(job: Job<IngestJob>): Promise<void> {
    let stage = job.name as Stage;
    const { documentId, run } = job.data;
    try {
      for (;;) {
        const next = await this.runStage(stage, job.data);
        if (!next) return;
        if (!this.runsInline(next, job.data)) {
          await this.enqueue(next, job.data);
          return;
        }
        stage = next;
      }
    } catch (err) {
      if (err instanceof RunEnded) return;
      const permanent = err instanceof ParseFailure || err instanceof PermanentFailure || err instanceof UnrecoverableError || (isContractError(err) && !err.retryable);
      const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (permanent || last) {
        const reason = err instanceof Error ? err.message : String(err);
        await this.fail(job.data, stage, last && !permanent ? `${reason} (gave up after ${job.attemptsMade + 1} attempts)` : reason);
        throw new UnrecoverableError(`${stage}: ${reason}`);
      }
      this.logger.warn({ documentId, run, stage, err: (err as Error).message }, 'stage failed; retrying');
      throw err;
    }
  }

  /**
   * Claims `stage` for the run; false when a later stage already has it (a job retried after a crash:
   * its successor was enqueued or, inline, already ran). Throws RunEnded when the run is over.
   */
  private async claim(data: IngestJob, stage: Stage): Promise<boolean> {
    const state = await this.store.begin(data.documentId, data.run, stage, PROGRESS[stage]);
    if (state === 'past') return false;
    await this.ensureLive(data, state);
    this.push({ id: data.documentId, ownerId: data.ownerId, status: stage === 'parse' ? 'parsing' : stage === 'chunk' ? 'chunking' : 'embedding', stage, progress: PROGRESS[stage] });
    return true;
  }

  private async ensureLive(data: IngestJob, state: RunState): Promise<void> {
    if (state === 'ok') return;
    await this.cleanUp(data, state);
    throw new RunEnded(state);
  }

  /** Removes what a run that is no longer live wrote. */
  async cleanUp(data: IngestJob, state: RunState): Promise<void> {
    const { documentId, run } = data;
    if (state === 'stale') {
      // A newer run owns the document now: only this run's own vectors go.
      const ids = (await this.store.chunks(documentId, run)).map((c) => vectorId(documentId, run, c.seq));
      for (let i = 0; i < ids.length; i += 10_000) await this.embeddings.remove({ collection: COLLECTION, ids: ids.slice(i, i + 10_000) });
    } else if (state === 'gone' || state === 'cancelled' || state === 'failed') {
      await this.embeddings.remove({ collection: COLLECTION, documentId });
    }
    if (state !== 'indexed') await this.store.removeRunData(documentId, [run]);
  }

  private async fail(data: IngestJob, stage: Stage, reason: string): Promise<void> {
    const error = `${stage}: ${reason}`;
    const state = await this.store.updateRun(data.documentId, data.run, { status: 'failed', error, stage, progress: 0, chunkCount: 0 });
    if (state !== 'ok') return;
    this.logger.info({ documentId: data.documentId, error }, 'document failed');
    await this.cleanUp(data, 'failed').catch((err: Error) => this.logger.warn({ err: err.message }, 'clean-up after a failure did not finish'));
    this.push({ id: data.documentId, ownerId: data.ownerId, status: 'failed', stage, progress: 0 });
  }

  private async parse(data: IngestJob): Promise<Stage | undefined> {
    if (!(await this.claim(data, 'parse'))) return 'chunk';
    const doc = await this.store.get(data.documentId);
    if (!doc) throw new RunEnded('gone');
    const s = this.settings.current();
    let bytes: Buffer;
    try {
      const download = await this.files.getContent({ id: doc.fileId, ownerId: doc.ownerId });
      bytes = await collect(download.body, doc.size);
    } catch (err) {
      if (isContractError(err) && err.code === 'not_found') throw new PermanentFailure('the file is gone');
      throw err;
    }
    const parsed = await parseDocument(bytes, doc.mediaType, { maxTextChars: s.maxTextChars, maxUnzippedBytes: s.maxUnzippedBytes });
    await this.store.saveParsed(doc.id, data.run, parsed.blocks, blocksToMarkdown(parsed.blocks));
    // Inline, the next stage's claim makes this check.
    if (!this.runsInline('chunk', data)) await this.ensureLive(data, await this.store.state(doc.id, data.run));
    return 'chunk';
  }

  private async chunk(data: IngestJob): Promise<Stage | undefined> {
    if (!(await this.claim(data, 'chunk'))) return 'embed';
    const blocks = await this.store.blocks(data.documentId, data.run);
    if (!blocks) {
      // Chunks replace the blocks in one MULTI: a chunk stage that crashed right after it left chunks.
      const saved = await this.store.chunkTotal(data.documentId, data.run);
      if (!saved) throw new Error('the parsed text of this run is missing');
      await this.ensureLive(data, await this.store.updateRun(data.documentId, data.run, { chunkCount: saved }));
      return 'embed';
    }
    const s = this.settings.current();
    const chunks = chunkBlocks(blocks, { size: s.chunkSize, overlap: s.chunkOverlap });
    if (!chunks.length) throw new PermanentFailure('nothing to index: no text');
    await this.store.saveChunks(data.documentId, data.run, chunks);
    await this.ensureLive(data, await this.store.updateRun(data.documentId, data.run, { chunkCount: chunks.length }));
    return 'embed';
  }

  private async embed(data: IngestJob): Promise<Stage | undefined> {
    if (!(await this.claim(data, 'embed'))) return 'index';
    const { documentId, run } = data;
    const total = await this.store.chunkTotal(documentId, run);
    const liveness = (d: StoredDocument | undefined): RunState => (!d ? 'gone' : d.run !== run ? 'stale' : d.status === 'cancelled' || d.status === 'failed' ? d.status : 'ok');
    let doc = await this.store.get(documentId);
    await this.ensureLive(data, liveness(doc));
    if (!doc) throw new RunEnded('gone');
    // A first batch clears the vectors of earlier runs (a reindex); a resumed one keeps its own.
    if (doc.embedded === 0) await this.embeddings.remove({ collection: COLLECTION, documentId });
    const batch = this.settings.current().embedBatchSize;
    const start = doc.embedded;
    for (let from = start; from < total; from += batch) {
      // Between batches: the document may have been cancelled, deleted or reindexed meanwhile (the
      // record read above is fresh enough for the first).
      if (from !== start) {
        doc = await this.store.get(documentId);
        await this.ensureLive(data, liveness(doc));
      }
      const chunks = await this.store.chunks(documentId, run, from, from + batch - 1);
      await this.embeddings.upsert({
        collection: COLLECTION,
        items: chunks.map((c) => ({
          id: vectorId(documentId, run, c.seq),
          text: c.headingPath.length ? `${c.headingPath.join(' > ')}\n\n${c.text}` : c.text,
          metadata: {
            ownerId: doc!.ownerId,
            documentId,
            categoryId: doc!.categoryId,
            tags: doc!.tags,
            shared: doc!.shared,
            title: doc!.name.slice(0, 1000),
            seq: c.seq,
            run,
            headingPath: c.headingPath,
            page: c.page,
          },
        })),
      });
      const done = Math.min(total, from + chunks.length);
      const progress = PROGRESS.embed + ((PROGRESS.index - PROGRESS.embed) * done) / Math.max(1, total);
      // Recorded after the write: a cancel that came during it is seen here, and this run cleans up.
      await this.ensureLive(data, await this.store.updateRun(documentId, run, { embedded: done, progress: progress.toFixed(4) }));
      // The last batch's progress is not pushed: `indexed` follows at once.
      if (done < total) this.push({ id: documentId, ownerId: data.ownerId, status: 'embedding', stage: 'embed', progress });
    }
    return 'index';
  }

  private async index(data: IngestJob): Promise<Stage | undefined> {
    if (!(await this.claim(data, 'index'))) return undefined;
    const { documentId, run } = data;
    const doc = await this.store.get(documentId);
    if (!doc) throw new RunEnded('gone');
    const chunkCount = await this.store.chunkTotal(documentId, run);
    const indexedAt = new Date().toISOString();
    // Announced before the record says indexed: a crash in between announces it again (subscribers are
    // idempotent), never not at all.
    await this.events.publish('documents.document.indexed', {
      documentId,
      ownerId: doc.ownerId,
      name: doc.name,
      mediaType: doc.mediaType,
      categoryId: doc.categoryId,
      tags: doc.tags,
      shared: doc.shared,
      chunkCount,
      run,
      indexedAt,
    });
    await this.ensureLive(data, await this.store.updateRun(documentId, run, { status: 'indexed', progress: 1, chunkCount, indexedAt, error: '' }));
    if (run > 1) await this.store.removeRunData(documentId, Array.from({ length: run - 1 }, (_, i) => i + 1));
    this.push({ id: documentId, ownerId: data.ownerId, status: 'indexed', stage: 'index', progress: 1 });
    return undefined;
  }
}
