// Documents in Redis (database 3, prefix `documents:`): a hash per document, a time-ordered set per
// owner, the owner's content hashes (the same bytes twice are one document), the set of documents still
// in the pipeline (resumed at start), and per run the intermediate results: parsed blocks, chunks.
// Multi-key changes are Lua scripts, all or nothing.
import { randomBytes } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { STAGES, type DocumentStatus, type DocumentView, type Stage } from './contract.js';
import type { Block } from './blocks.js';
import type { Chunk } from './chunker.js';
import { runScript } from '../../kernel/redis/lua-script.js';

export interface StoredDocument extends DocumentView {
  ownerId: string;
  run: number;
  /** Index in STAGES of the stage reached by this run (-1 before parse). */
  stageIdx: number;
  /** Chunks of this run already embedded (batches done), so a resumed embed starts after them. */
  embedded: number;
}

const docKey = (id: string) => `doc:${id}`;
const ownerDocsKey = (ownerId: string) => `owner:${ownerId}:docs`;
const ownerShaKey = (ownerId: string) => `owner:${ownerId}:sha`;
const ACTIVE = 'active';
export const blocksKey = (id: string, run: number) => `doc:${id}:r${run}:blocks`;
export const chunksKey = (id: string, run: number) => `doc:${id}:r${run}:chunks`;
const textKey = (id: string) => `doc:${id}:text`;

// KEYS: owner's hashes, doc, owner's docs, active. ARGV: sha, id, stale id ('' if none), score, fields…
// Answers the id of the document now holding these bytes: ours, or the one that was there first.
const CREATE = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cur ~= ARGV[3] then return cur end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
return ARGV[2]`;

// KEYS: doc. ARGV: run, stage index, stage, status, progress. Moves a run forward, never back.
const BEGIN = `
local h = redis.call('HMGET', KEYS[1], 'run', 'status', 'stageIdx')
if not h[1] then return 'gone' end
if h[1] ~= ARGV[1] then return 'stale' end
if h[2] == 'cancelled' or h[2] == 'failed' then return h[2] end
if h[2] == 'indexed' or tonumber(h[3]) > tonumber(ARGV[2]) then return 'past' end
redis.call('HSET', KEYS[1], 'stageIdx', ARGV[2], 'stage', ARGV[3], 'status', ARGV[4], 'progress', ARGV[5])
return 'ok'`;

// KEYS: doc, active. ARGV: run, then field/value pairs. Sets fields only while the run is current and live.
const UPDATE_RUN = `
local h = redis.call('HMGET', KEYS[1], 'run', 'status')
if not h[1] then return 'gone' end
if h[1] ~= ARGV[1] then return 'stale' end
if h[2] == 'cancelled' or h[2] == 'failed' or h[2] == 'indexed' then return h[2] end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'indexed' or status == 'failed' or status == 'cancelled' then redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'id')) end
return 'ok'`;

// KEYS: doc, active. ARGV: new run. Starts a run again from a final state.
const RESTART = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'gone' end
if status ~= 'indexed' and status ~= 'failed' and status ~= 'cancelled' then return 'busy' end
redis.call('HSET', KEYS[1], 'run', ARGV[1], 'status', 'queued', 'stage', '', 'stageIdx', '-1', 'progress', '0', 'embedded', '0', 'chunkCount', '0', 'error', '', 'indexedAt', '')
redis.call('ZADD', KEYS[2], ARGV[2], redis.call('HGET', KEYS[1], 'id'))
return 'ok'`;

// KEYS: doc, active. ARGV: error. Cancels a document that is still in the pipeline.
const CANCEL = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'gone' end
if status == 'indexed' or status == 'failed' or status == 'cancelled' then return status end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'progress', '0', 'chunkCount', '0', 'embedded', '0')
redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'id'))
return 'ok'`;

// KEYS: doc, owner's docs, owner's hashes, active. ARGV: id, owner. Answers the run, or 0 if it was not there.
const REMOVE = `
if redis.call('HGET', KEYS[1], 'ownerId') ~= ARGV[2] then return 0 end
local run = tonumber(redis.call('HGET', KEYS[1], 'run'))
local sha = redis.call('HGET', KEYS[1], 'sha256')
if sha and redis.call('HGET', KEYS[3], sha) == ARGV[1] then redis.call('HDEL', KEYS[3], sha) end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return run`;

// The index stage reports `embedding` until it is done: `indexed` is only ever set by its last step.
const STATUS_OF_STAGE: Record<Stage, DocumentStatus> = { parse: 'parsing', chunk: 'chunking', embed: 'embedding', index: 'embedding' };
export { STATUS_OF_STAGE };

function fromHash(h: Record<string, string>): StoredDocument | undefined {
  if (!h.id) return undefined;
  return {
    id: h.id,
    ownerId: h.ownerId!,
    name: h.name!,
    mediaType: h.mediaType!,
    size: Number(h.size),
    sha256: h.sha256!,
    fileId: h.fileId!,
    shared: h.shared === '1',
    status: h.status as DocumentStatus,
    stage: h.stage ? (h.stage as Stage) : null,
    progress: Math.max(0, Math.min(1, Number(h.progress ?? 0))),
    chunkCount: Number(h.chunkCount ?? 0),
    categoryId: h.categoryId ? h.categoryId : null,
    tags: h.tags ? (JSON.parse(h.tags) as string[]) : [],
    ...(h.sourceUrl ? { sourceUrl: h.sourceUrl } : {}),
    ...(h.error ? { error: h.error } : {}),
    createdAt: h.createdAt!,
    ...(h.indexedAt ? { indexedAt: h.indexedAt } : {}),
    run: Number(h.run ?? 1),
    stageIdx: Number(h.stageIdx ?? -1),
    embedded: Number(h.embedded ?? 0),
  };
}

export function newDocumentId(): string {
  return `d_${Date.now().toString(16).padStart(12, '0')}${randomBytes(8).toString('hex')}`;
}

export type RunState = 'ok' | 'gone' | 'stale' | 'cancelled' | 'failed' | 'past' | 'indexed';

@injectable()
export class DocumentStore {
  constructor(@inject(ModuleRedis) readonly redis: Redis) {}

  /** Creates the document unless the owner already has one with these bytes (then that one's id). */
  async create(doc: StoredDocument): Promise<string> {
    const stale = await this.redis.hget(ownerShaKey(doc.ownerId), doc.sha256);
    const staleId = stale && !(await this.redis.exists(docKey(stale))) ? stale : '';
    const fields: Record<string, string> = {
      id: doc.id,
      ownerId: doc.ownerId,
      name: doc.name,
      mediaType: doc.mediaType,
      size: String(doc.size),
      sha256: doc.sha256,
      fileId: doc.fileId,
      shared: doc.shared ? '1' : '0',
      status: doc.status,
      stage: '',
      stageIdx: '-1',
      progress: '0',
      chunkCount: '0',
      categoryId: doc.categoryId ?? '',
      tags: JSON.stringify(doc.tags),
      ...(doc.sourceUrl ? { sourceUrl: doc.sourceUrl } : {}),
      createdAt: doc.createdAt,
      run: String(doc.run),
      embedded: '0',
    };
    const held = await runScript(
      this.redis,
      CREATE,
      4,
      ownerShaKey(doc.ownerId),
      docKey(doc.id),
      ownerDocsKey(doc.ownerId),
      ACTIVE,
      doc.sha256,
      doc.id,
      staleId,
      Date.parse(doc.createdAt),
      ...Object.entries(fields).flat(),
    );
    return String(held);
  }

  async get(id: string): Promise<StoredDocument | undefined> {
    return fromHash(await this.redis.hgetall(docKey(id)));
  }

  async getOwned(ownerId: string, id: string): Promise<StoredDocument | undefined> {
    const d = await this.get(id);
    return d && d.ownerId === ownerId ? d : undefined;
  }

  async begin(id: string, run: number, stage: Stage, progress: number): Promise<RunState> {
    const idx = STAGES.indexOf(stage);
    return (await runScript(this.redis, BEGIN, 1, docKey(id), run, idx, stage, STATUS_OF_STAGE[stage], progress)) as RunState;
  }

  /** Sets fields of the run if it is still the current, live one. */
  async updateRun(id: string, run: number, fields: Record<string, string | number>): Promise<RunState> {
    return (await runScript(this.redis, UPDATE_RUN, 2, docKey(id), ACTIVE, run, ...Object.entries(fields).flatMap(([k, v]) => [k, String(v)]))) as RunState;
  }

  async state(id: string, run: number): Promise<RunState> {
    const [r, status] = await this.redis.hmget(docKey(id), 'run', 'status');
    if (r === null) return 'gone';
    if (Number(r) !== run) return 'stale';
    return status === 'cancelled' || status === 'failed' || status === 'indexed' ? (status as RunState) : 'ok';
  }

  async restart(id: string, run: number): Promise<'ok' | 'gone' | 'busy'> {
    return (await runScript(this.redis, RESTART, 2, docKey(id), ACTIVE, run, Date.now())) as 'ok' | 'gone' | 'busy';
  }

  async cancel(id: string): Promise<string> {
    return String(await runScript(this.redis, CANCEL, 2, docKey(id), ACTIVE));
  }

  async setMetadata(id: string, fields: Record<string, string>): Promise<void> {
    await this.redis.hset(docKey(id), fields);
  }

  /** Removes the record (and its hash index entry); answers its last run, or undefined if it was not there. */
  async remove(ownerId: string, id: string): Promise<number | undefined> {
    const run = Number(await runScript(this.redis, REMOVE, 4, docKey(id), ownerDocsKey(ownerId), ownerShaKey(ownerId), ACTIVE, id, ownerId));
    return run > 0 ? run : undefined;
  }

  async removeRunData(id: string, runs: number[]): Promise<void> {
    if (!runs.length) return;
    await this.redis.del(...runs.flatMap((r) => [blocksKey(id, r), chunksKey(id, r)]));
  }

  async removeText(id: string): Promise<void> {
    await this.redis.del(textKey(id));
  }

  async saveParsed(id: string, run: number, blocks: Block[], text: string): Promise<void> {
    await this.redis.multi().set(blocksKey(id, run), JSON.stringify(blocks)).set(textKey(id), text).exec();
  }

  async blocks(id: string, run: number): Promise<Block[] | undefined> {
    const raw = await this.redis.get(blocksKey(id, run));
    return raw ? (JSON.parse(raw) as Block[]) : undefined;
  }

  async text(id: string): Promise<string | undefined> {
    return (await this.redis.get(textKey(id))) ?? undefined;
  }

  /** Replaces the run's chunks in one step: a retried chunk stage never duplicates them. */
  async saveChunks(id: string, run: number, chunks: Chunk[]): Promise<void> {
    const key = chunksKey(id, run);
    const tx = this.redis.multi().del(key);
    for (let i = 0; i < chunks.length; i += 500) tx.rpush(key, ...chunks.slice(i, i + 500).map((c) => JSON.stringify(c)));
    await tx.del(blocksKey(id, run)).exec();
  }

  async chunks(id: string, run: number, start = 0, stop = -1): Promise<Chunk[]> {
    return (await this.redis.lrange(chunksKey(id, run), start, stop)).map((c) => JSON.parse(c) as Chunk);
  }

  async chunkTotal(id: string, run: number): Promise<number> {
    return this.redis.llen(chunksKey(id, run));
  }

  async active(): Promise<string[]> {
    return this.redis.zrange(ACTIVE, '0', '-1');
  }

  async list(ownerId: string, limit: number, cursor: string | undefined, status?: DocumentStatus): Promise<{ items: StoredDocument[]; nextCursor: string | null }> {
    // Newest first; with a status filter, pages are scanned until `limit` matches (bounded per call).
    let offset = cursor && /^\d+$/.test(cursor) ? Number(cursor) : 0;
    const items: StoredDocument[] = [];
    const total = await this.redis.zcard(ownerDocsKey(ownerId));
    let scanned = 0;
    while (items.length < limit && offset < total && scanned < 5000) {
      const ids = await this.redis.zrevrange(ownerDocsKey(ownerId), offset, offset + Math.max(limit, 100) - 1);
      const docs = await Promise.all(ids.map((i) => this.get(i)));
      for (const d of docs) {
        offset++;
        scanned++;
        if (d && (!status || d.status === status)) items.push(d);
        if (items.length === limit) break;
      }
      if (!ids.length) break;
    }
    return { items, nextCursor: offset < total ? String(offset) : null };
  }
}
