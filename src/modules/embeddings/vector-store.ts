// The durable side of the collections, in the module's own Redis database. Per collection:
//   c:<col>:info      hash  model, dimensions (the one model the collection holds)
//   c:<col>:v         hash  id -> float32 little-endian bytes (unit length)
//   c:<col>:m         hash  id -> metadata JSON
//   c:<col>:d:<docId> set   ids of a document's vectors (remove and setMetadata by document)
//   c:<col>:log       stream of changes {op, ids}: every instance tails it to stay in step
// Each write is one MULTI, so a reader never sees a vector without its metadata or its log entry.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ContractError } from '../../kernel/contract/errors.js';
import type { VectorMetadata } from './vector-index.js';

export type Collection = 'documents' | 'facts';

export interface CollectionInfo {
  model: string;
  dimensions: number;
  /** When the collection took its model: tells a graph snapshot of this collection from any other. */
  since?: string;
}

export interface StoredVector {
  id: string;
  vector: Float32Array;
  metadata: VectorMetadata;
}

export type LogOp = 'put' | 'del' | 'meta' | 'reset';

export interface LogEntry {
  streamId: string;
  op: LogOp;
  ids: string[];
}

/** Entries kept in each change log; an instance further behind than this reloads in full. */
const LOG_MAX = 50_000;

const k = {
  info: (c: Collection) => `c:${c}:info`,
  vectors: (c: Collection) => `c:${c}:v`,
  metas: (c: Collection) => `c:${c}:m`,
  doc: (c: Collection, documentId: string) => `c:${c}:d:${documentId}`,
  log: (c: Collection) => `c:${c}:log`,
};
export const logKey = k.log;

export function toBytes(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export function fromBytes(b: Buffer): Float32Array {
  // Copied: a Buffer from ioredis may sit at an unaligned offset of a pooled slab. (Every platform
  // onnxruntime and usearch ship for is little-endian, as the bytes are.)
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return new Float32Array(copy.buffer);
}

function parseFields(fields: string[]): { op: LogOp; ids: string[] } {
  const o: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) o[fields[i]!] = fields[i + 1]!;
  return { op: (o.op ?? 'put') as LogOp, ids: o.ids ? (JSON.parse(o.ids) as string[]) : [] };
}

interface PendingPut {
  c: Collection;
  model: CollectionInfo;
  items: StoredVector[];
  resolve: (streamId: string) => void;
  reject: (err: unknown) => void;
}

/** Vectors one grouped write takes at most. */
const GROUP_MAX_ITEMS = 4096;

export class VectorStore {
  /** WATCH is per connection: model-checked writes go one at a time over a connection of their own. */
  private readonly writer: Redis;
  private writing: Promise<unknown> = Promise.resolve();
  /** Writes waiting for the writer: those of one collection and model go together in one MULTI. */
  private pending: PendingPut[] = [];

  constructor(private readonly redis: Redis) {
    this.writer = redis.duplicate({ enableAutoPipelining: false });
    // Its failures reach the writes that hit them; without a listener ioredis prints every reconnect error.
    this.writer.on('error', () => undefined);
  }

  async close(): Promise<void> {
    await this.writer.quit().catch(() => this.writer.disconnect());
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn, fn);
    this.writing = run.catch(() => undefined);
    return run;
  }

  async info(c: Collection): Promise<CollectionInfo | undefined> {
    const h = await this.redis.hgetall(k.info(c));
    if (!h.model || !h.dimensions) return undefined;
    return { model: h.model, dimensions: Number(h.dimensions), ...(h.since ? { since: h.since } : {}) };
  }

  async count(c: Collection): Promise<number> {
    return this.redis.hlen(k.vectors(c));
  }

  /**
   * Writes vectors with their metadata, the collection's model checked under WATCH: a collection
   * holding vectors of another model refuses (409) until it is emptied or reset; an empty one takes
   * the new model. Answers the change-log id of the write.
   *
   * Writes go one at a time (WATCH), so the ones that queue up meanwhile (concurrent documents) are
   * committed together: one WATCH/MULTI round for all of them instead of one each.
   */
  put(c: Collection, model: CollectionInfo, items: StoredVector[]): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.pending.push({ c, model, items, resolve, reject });
      void this.serial(() => this.flush());
    });
  }

  /** Commits the oldest waiting write with every other waiting one of the same collection and model. */
  private async flush(): Promise<void> {
    const first = this.pending[0];
    if (!first) return; // An earlier flush took it.
    const group: PendingPut[] = [];
    let count = 0;
    for (const p of this.pending) {
      if (p.c !== first.c || p.model.model !== first.model.model || p.model.dimensions !== first.model.dimensions) continue;
      if (group.length > 0 && count + p.items.length > GROUP_MAX_ITEMS) break;
      group.push(p);
      count += p.items.length;
    }
    this.pending = this.pending.filter((p) => !group.includes(p));
    try {
      const streamId = await this.putNow(first.c, first.model, group.flatMap((p) => p.items));
      for (const p of group) p.resolve(streamId);
    } catch (err) {
      for (const p of group) p.reject(err);
    }
  }

  private async putNow(c: Collection, model: CollectionInfo, items: StoredVector[]): Promise<string> {
    const w = this.writer;
    for (let attempt = 0; attempt < 5; attempt++) {
      // Only the model record is watched: it changes on creation and reset, not on every write.
      await w.watch(k.info(c));
      try {
        const [h, count] = await Promise.all([w.hgetall(k.info(c)), w.hlen(k.vectors(c))]);
        const current = h.model && h.dimensions ? { model: h.model, dimensions: Number(h.dimensions) } : undefined;
        if (current && (current.model !== model.model || current.dimensions !== model.dimensions) && count > 0) {
          throw new ContractError(
            'conflict',
            `the ${c} collection holds ${count} vectors of ${current.model} (${current.dimensions} dimensions), not ${model.model} (${model.dimensions}): reset the collection and reindex before embedding with another model`,
            { collection: c, model: current.model, dimensions: current.dimensions },
          );
        }
        const ids = items.map((i) => i.id);
        const previous = await w.hmget(k.metas(c), ...ids);
        const tx = w.multi();
        if (!current || current.model !== model.model || current.dimensions !== model.dimensions) {
          tx.del(k.info(c));
          tx.hset(k.info(c), { model: model.model, dimensions: String(model.dimensions), since: `${new Date().toISOString()}/${randomUUID()}` });
        }
        items.forEach((item, i) => {
          const before = previous[i] ? (JSON.parse(previous[i]!) as VectorMetadata) : undefined;
          if (before?.documentId && before.documentId !== item.metadata.documentId) tx.srem(k.doc(c, before.documentId), item.id);
          if (item.metadata.documentId) tx.sadd(k.doc(c, item.metadata.documentId), item.id);
        });
        tx.hset(k.vectors(c), ...items.flatMap((i) => [i.id, toBytes(i.vector)]));
        tx.hset(k.metas(c), ...items.flatMap((i) => [i.id, JSON.stringify(i.metadata)]));
        tx.xadd(k.log(c), 'MAXLEN', '~', LOG_MAX, '*', 'op', 'put', 'ids', JSON.stringify(ids));
        const done = await tx.exec();
        if (done === null) continue; // The model or the vectors changed under us: look again.
        const failed = done.find(([err]) => err);
        if (failed) throw failed[0]!;
        return String(done[done.length - 1]![1]);
      } catch (err) {
        await w.unwatch().catch(() => undefined);
        throw err;
      }
    }
    throw new ContractError('unavailable', `the ${c} collection is changing too fast to write to; try again`);
  }

  /** Ids of a document's vectors. */
  async idsOfDocument(c: Collection, documentId: string): Promise<string[]> {
    return this.redis.smembers(k.doc(c, documentId));
  }

  async remove(c: Collection, ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const metas = await this.redis.hmget(k.metas(c), ...ids);
    const tx = this.redis.multi();
    tx.hdel(k.vectors(c), ...ids);
    tx.hdel(k.metas(c), ...ids);
    metas.forEach((m, i) => {
      const documentId = m ? (JSON.parse(m) as VectorMetadata).documentId : undefined;
      if (documentId) tx.srem(k.doc(c, documentId), ids[i]!);
    });
    tx.xadd(k.log(c), 'MAXLEN', '~', LOG_MAX, '*', 'op', 'del', 'ids', JSON.stringify(ids));
    const res = await tx.exec();
    return Number(res?.[0]?.[1] ?? 0);
  }

  /** Applies `patch` to the metadata of every listed vector; those that vanished meanwhile are skipped. */
  async patchMetadata(c: Collection, ids: string[], patch: (m: VectorMetadata) => VectorMetadata): Promise<number> {
    if (ids.length === 0) return 0;
    const metas = await this.redis.hmget(k.metas(c), ...ids);
    const updates: [string, string][] = [];
    metas.forEach((m, i) => {
      if (m) updates.push([ids[i]!, JSON.stringify(patch(JSON.parse(m) as VectorMetadata))]);
    });
    if (updates.length === 0) return 0;
    const tx = this.redis.multi();
    // HSET XX would be ideal; a concurrent delete between the read and here is rare and re-deleted by
    // its own log entry being applied after ours, so only ids still present are written.
    for (const [id, json] of updates) tx.hset(k.metas(c), id, json);
    tx.xadd(k.log(c), 'MAXLEN', '~', LOG_MAX, '*', 'op', 'meta', 'ids', JSON.stringify(updates.map(([id]) => id)));
    await tx.exec();
    return updates.length;
  }

  /** Drops every vector of the collection and its model, so the next write may use another model. */
  async reset(c: Collection): Promise<number> {
    const count = await this.count(c);
    let cursor = '0';
    const docKeys: string[] = [];
    do {
      // SCAN matches the full key name: the module's prefix is added here by hand.
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.redis.options.keyPrefix ?? ''}${k.doc(c, '*')}`, 'COUNT', 1000);
      cursor = next;
      docKeys.push(...keys.map((key) => key.slice((this.redis.options.keyPrefix ?? '').length)));
    } while (cursor !== '0');
    const tx = this.redis.multi();
    tx.del(k.vectors(c), k.metas(c), k.info(c), ...docKeys);
    tx.xadd(k.log(c), 'MAXLEN', '~', LOG_MAX, '*', 'op', 'reset', 'ids', '[]');
    await tx.exec();
    return count;
  }

  /** Current state of some ids (absent: deleted). */
  async fetch(c: Collection, ids: string[]): Promise<Map<string, StoredVector | null>> {
    const out = new Map<string, StoredVector | null>();
    if (ids.length === 0) return out;
    const [vectors, metas] = await Promise.all([this.redis.hmgetBuffer(k.vectors(c), ...ids), this.redis.hmget(k.metas(c), ...ids)]);
    ids.forEach((id, i) => {
      const v = vectors[i];
      const m = metas[i];
      out.set(id, v && m ? { id, vector: fromBytes(v), metadata: JSON.parse(m) as VectorMetadata } : null);
    });
    return out;
  }

  /** Every vector, in pages: what a starting instance loads. */
  async *scanAll(c: Collection, page = 2000): AsyncGenerator<StoredVector[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscanBuffer(k.vectors(c), cursor, 'COUNT', page);
      cursor = next.toString();
      const ids: string[] = [];
      const vecs: Buffer[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) {
        ids.push(flat[i]!.toString());
        vecs.push(flat[i + 1]!);
      }
      if (ids.length === 0) continue;
      const metas = await this.redis.hmget(k.metas(c), ...ids);
      const batch: StoredVector[] = [];
      ids.forEach((id, i) => {
        const m = metas[i];
        if (m) batch.push({ id, vector: fromBytes(vecs[i]!), metadata: JSON.parse(m) as VectorMetadata });
      });
      yield batch;
    } while (cursor !== '0');
  }

  /** The newest change-log id (`0-0` when there is none): where a fresh instance starts tailing. */
  async logHead(c: Collection): Promise<string> {
    const last = await this.redis.xrevrange(k.log(c), '+', '-', 'COUNT', 1);
    return last[0]?.[0] ?? '0-0';
  }

  /** The oldest id still in the log: an instance whose position is older missed entries. */
  async logTail(c: Collection): Promise<string | undefined> {
    const first = await this.redis.xrange(k.log(c), '-', '+', 'COUNT', 1);
    return first[0]?.[0];
  }

  /** Entries after `after` up to and including `upTo`. */
  async logSince(c: Collection, after: string, upTo: string): Promise<LogEntry[]> {
    const entries = await this.redis.xrange(k.log(c), `(${after}`, upTo);
    return entries.map(([streamId, fields]) => ({ streamId, ...parseFields(fields) }));
  }

  /** Blocks up to `blockMs` for changes after the given positions, on a connection of its own. */
  static async readLogs(conn: Redis, positions: Map<Collection, string>, blockMs?: number): Promise<Map<Collection, LogEntry[]>> {
    const cols = [...positions.keys()];
    const streams = ['STREAMS', ...cols.map(k.log), ...cols.map((c) => positions.get(c)!)];
    const res = (await (blockMs === undefined ? conn.xread('COUNT', 1000, ...(streams as ['STREAMS', ...string[]])) : conn.xread('COUNT', 1000, 'BLOCK', blockMs, ...(streams as ['STREAMS', ...string[]])))) as
      | [string, [string, string[]][]][]
      | null;
    const out = new Map<Collection, LogEntry[]>();
    for (const [key, entries] of res ?? []) {
      const col = cols.find((c) => key.endsWith(k.log(c)));
      if (!col) continue;
      out.set(
        col,
        entries.map(([streamId, fields]) => ({ streamId, ...parseFields(fields) })),
      );
    }
    return out;
  }
}
