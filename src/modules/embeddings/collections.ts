// Keeps this instance's in-memory indexes in step with Redis. At start each collection is loaded from
// Redis (no re-embedding); then every instance tails the collections' change logs, so a vector written
// by any instance is searchable on every other within a block interval (well under a second). An
// entry names ids only: the current state is read back from Redis, so applying an entry twice, late,
// or out of order with a local write converges to what Redis holds.
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { COLLECTIONS } from './contract.js';
import { VectorIndex, type IndexTuning, type VectorMetadata } from './vector-index.js';
import { VectorStore, type Collection, type CollectionInfo, type LogEntry } from './vector-store.js';

const BLOCK_MS = 250;
/** How often a changed graph is written to the snapshot directory. */
const SNAPSHOT_EVERY_MS = 60_000;

/** What a graph snapshot says about itself (`<dir>/<collection>.json`, beside its graph file). */
interface SnapshotMeta {
  model: string;
  dimensions: number;
  since: string | null;
  /** The change-log id the graph includes everything up to. */
  position: string;
  graph: string;
  slots: (string | null)[];
}
/** How often the local count is checked against Redis, to catch a log gap (trimmed entries). */
const AUDIT_EVERY_MS = 30_000;

export class Collections {
  private readonly indexes = new Map<Collection, VectorIndex | undefined>();
  private readonly positions = new Map<Collection, string>();
  private tailConn: Redis | undefined;
  private running = false;
  private tailDone: Promise<void> | undefined;
  private lastAudit = Date.now();
  private readonly loaded = new Map<Collection, Promise<void>>();
  private readonly savedVersion = new Map<Collection, number>();
  private lastSnapshot = Date.now();
  /** Change-log entries of this instance's writes already applied here: the tail skips them. */
  private readonly appliedHere = new Set<string>();

  /**
   * `snapshotDir`: where HNSW graphs are saved, so a restart loads the graph instead of rebuilding it
   * (minutes at 100k vectors). Only a cache: the vectors themselves are in Redis, and a snapshot that
   * does not match Redis and the change log is ignored.
   */
  constructor(
    private readonly redis: Redis,
    readonly store: VectorStore,
    private readonly tuning: () => IndexTuning,
    private readonly logger: Logger,
    private readonly snapshotDir?: string,
  ) {}

  /** Loads every collection and starts following the change logs. */
  async start(): Promise<void> {
    await Promise.all(COLLECTIONS.map((c) => this.ensureLoaded(c)));
    this.running = true;
    this.tailConn = this.redis.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: null, lazyConnect: false });
    this.tailConn.on('error', () => undefined);
    this.tailDone = this.tail();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.tailConn?.disconnect();
    await this.tailDone?.catch(() => undefined);
    await this.saveSnapshots();
    for (const idx of this.indexes.values()) idx?.dispose();
  }

  ensureLoaded(c: Collection): Promise<void> {
    let p = this.loaded.get(c);
    if (!p) {
      p = this.reload(c).catch((err: unknown) => {
        this.loaded.delete(c);
        throw err;
      });
      this.loaded.set(c, p);
    }
    return p;
  }

  /** After the tuning changed: an index that now deserves a graph starts building it. */
  retune(): void {
    for (const idx of this.indexes.values()) idx?.maybeBuild();
  }

  index(c: Collection): VectorIndex | undefined {
    return this.indexes.get(c);
  }

  /** Replaces the collection's index with what Redis holds now. */
  async reload(c: Collection): Promise<void> {
    const started = Date.now();
    // The position is taken first: changes made during the scan are applied again afterwards.
    const position = await this.store.logHead(c);
    const info = await this.store.info(c);
    const previous = this.indexes.get(c);
    if (!info) {
      this.indexes.set(c, undefined);
    } else {
      const idx = new VectorIndex(info.model, info.dimensions, this.tuning, Math.max(1024, await this.store.count(c)));
      idx.holdBuild = true;
      const snapshot = await this.usableSnapshot(c, info, position);
      if (snapshot) idx.reserve(snapshot.meta.slots);
      for await (const page of this.store.scanAll(c)) {
        for (const v of page) if (v.vector.length === info.dimensions) idx.put(v.id, v.vector, v.metadata);
      }
      idx.holdBuild = false;
      let graph = 'none';
      if (snapshot) {
        try {
          idx.adoptGraph(path.join(this.snapshotDir!, snapshot.meta.graph), snapshot.changed);
          this.savedVersion.set(c, idx.version);
          graph = 'snapshot';
        } catch (err) {
          this.logger.warn({ collection: c, err: (err as Error).message }, 'graph snapshot unreadable; rebuilding');
        }
      }
      this.indexes.set(c, idx);
      if (graph === 'none') idx.maybeBuild();
      this.logger.info({ collection: c, vectors: idx.size, model: info.model, graph, ms: Date.now() - started }, 'vector collection loaded');
    }
    previous?.dispose();
    // What was logged since `position` may have gone into the previous index (a local write, whose
    // entry the tail then skips, or the tail itself, whose read can also move the position past it)
    // and been missed by the scan: apply all of it again, from Redis, to the new index.
    let last = position;
    for (;;) {
      const entries = (await VectorStore.readLogs(this.redis, new Map([[c, last]]))).get(c) ?? [];
      if (!entries.length) break;
      await this.handleAll(c, entries);
      last = entries[entries.length - 1]!.streamId;
    }
    const current = this.positions.get(c);
    this.positions.set(c, current !== undefined && compareIds(current, last) > 0 ? current : last);
  }

  /** A saved graph that matches the collection, with the ids changed since it was written. */
  private async usableSnapshot(c: Collection, info: CollectionInfo, head: string): Promise<{ meta: SnapshotMeta; changed: string[] } | undefined> {
    if (!this.snapshotDir) return undefined;
    let meta: SnapshotMeta;
    try {
      meta = JSON.parse(await readFile(path.join(this.snapshotDir, `${c}.json`), 'utf8')) as SnapshotMeta;
    } catch {
      return undefined;
    }
    if (meta.model !== info.model || meta.dimensions !== info.dimensions || meta.since !== (info.since ?? null)) return undefined;
    if (compareIds(meta.position, head) > 0) return undefined; // From another Redis, or a reset one.
    const changed: string[] = [];
    if (meta.position !== head) {
      // Entries right after the snapshot may have been trimmed away: then what changed is unknown.
      const oldest = await this.store.logTail(c);
      if (oldest === undefined || compareIds(oldest, meta.position) > 0) return undefined;
      for (const e of await this.store.logSince(c, meta.position, head)) {
        if (e.op === 'reset') return undefined;
        changed.push(...e.ids);
      }
    }
    return { meta, changed };
  }

  /** Writes the graph of every collection that changed since its last snapshot. */
  async saveSnapshots(): Promise<void> {
    this.lastSnapshot = Date.now();
    if (!this.snapshotDir) return;
    for (const c of COLLECTIONS) {
      const idx = this.indexes.get(c);
      if (!idx || !idx.graphReady || this.savedVersion.get(c) === idx.version) continue;
      try {
        await mkdir(this.snapshotDir, { recursive: true });
        const version = idx.version;
        const meta: SnapshotMeta = { model: idx.model, dimensions: idx.dimensions, since: (await this.store.info(c))?.since ?? null, position: this.positions.get(c) ?? '0-0', graph: `${c}-${Date.now()}.usearch`, slots: idx.slotIds() };
        if (!idx.saveGraph(path.join(this.snapshotDir, meta.graph))) continue;
        const tmp = path.join(this.snapshotDir, `${c}.json.tmp`);
        await writeFile(tmp, JSON.stringify(meta));
        // The JSON names its graph file: renaming it is the one step that switches snapshots.
        await rename(tmp, path.join(this.snapshotDir, `${c}.json`));
        this.savedVersion.set(c, version);
        for (const f of await readdir(this.snapshotDir)) {
          if (f.startsWith(`${c}-`) && f.endsWith('.usearch') && f !== meta.graph) await rm(path.join(this.snapshotDir, f), { force: true });
        }
      } catch (err) {
        this.logger.warn({ collection: c, err: (err as Error).message }, 'graph snapshot not written');
      }
    }
  }

  /** Brings the given ids to their state in Redis (after a local write, or a log entry). */
  async apply(c: Collection, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const state = await this.store.fetch(c, ids);
    let idx = this.indexes.get(c);
    for (const [id, v] of state) {
      if (!v) {
        idx?.delete(id);
        continue;
      }
      if (!idx || idx.dimensions !== v.vector.length) {
        // The collection took a (new) model: start a fresh index for it, unless another write made
        // one while this one read the collection's model (writes made together into an empty
        // collection): replacing it would drop what that write had put in.
        const info = await this.store.info(c);
        if (!info || info.dimensions !== v.vector.length) continue;
        const current = this.indexes.get(c);
        if (current && current.model === info.model && current.dimensions === info.dimensions) idx = current;
        else {
          current?.dispose();
          idx = new VectorIndex(info.model, info.dimensions, this.tuning);
          this.indexes.set(c, idx);
        }
      }
      idx.put(id, v.vector, v.metadata);
    }
  }

  /**
   * After a local write: puts what was written (`streamId` its change-log entry) into the index
   * without reading it back from Redis, and lets the tail skip that entry. Any later change (here or
   * elsewhere) has a later entry, applied from Redis as usual, so the index still converges to Redis.
   */
  async applyWritten(c: Collection, streamId: string, items: { id: string; vector: Float32Array; metadata: VectorMetadata }[]): Promise<void> {
    const idx = this.indexes.get(c);
    if (!idx || items.some((i) => i.vector.length !== idx.dimensions)) {
      await this.apply(c, items.map((i) => i.id));
      return;
    }
    // The metadata as it reads back from Redis (JSON), not the caller's object.
    for (const i of items) idx.put(i.id, i.vector, JSON.parse(JSON.stringify(i.metadata)) as VectorMetadata);
    // Normally the tail deletes it at once; one it read before this (it then applied from Redis) would stay.
    if (this.appliedHere.size > 10_000) this.appliedHere.clear();
    this.appliedHere.add(streamId);
  }

  /** Forgets the collection locally (it was reset). */
  dropLocal(c: Collection): void {
    this.indexes.get(c)?.dispose();
    this.indexes.set(c, undefined);
  }

  private async handle(c: Collection, entries: LogEntry[]): Promise<void> {
    await this.handleAll(c, entries.filter((e) => e.op === 'reset' || !this.appliedHere.delete(e.streamId)));
    this.positions.set(c, entries[entries.length - 1]!.streamId);
  }

  /** Applies log entries from Redis (a reset drops what came before it). */
  private async handleAll(c: Collection, entries: LogEntry[]): Promise<void> {
    const ids = new Set<string>();
    for (const e of entries) {
      if (e.op === 'reset') {
        // Everything before the reset is gone; what follows it is applied from Redis below.
        ids.clear();
        this.dropLocal(c);
        continue;
      }
      for (const id of e.ids) ids.add(id);
    }
    await this.apply(c, [...ids]);
  }

  private async audit(): Promise<void> {
    this.lastAudit = Date.now();
    for (const c of COLLECTIONS) {
      const [count, oldest] = await Promise.all([this.store.count(c), this.store.logTail(c)]);
      const local = this.indexes.get(c)?.size ?? 0;
      const position = this.positions.get(c) ?? '0-0';
      const missed = oldest !== undefined && position !== '0-0' && compareIds(position, oldest) < 0;
      if (count !== local || missed) {
        // Counts can differ for a moment while entries are in flight: read the log once more first.
        const pending = await VectorStore.readLogs(this.redis, new Map([[c, position]])).catch(() => new Map<Collection, LogEntry[]>());
        if ((pending.get(c)?.length ?? 0) > 0 && !missed) continue;
        this.logger.warn({ collection: c, redis: count, local, missed }, 'vector collection out of step with Redis; reloading');
        await this.reload(c);
      }
    }
  }

  private async tail(): Promise<void> {
    while (this.running) {
      try {
        const batches = await VectorStore.readLogs(this.tailConn!, this.positions, BLOCK_MS);
        for (const [c, entries] of batches) if (entries.length > 0) await this.handle(c, entries);
        if (Date.now() - this.lastAudit > AUDIT_EVERY_MS) await this.audit();
        if (Date.now() - this.lastSnapshot > SNAPSHOT_EVERY_MS) await this.saveSnapshots();
      } catch (err) {
        if (!this.running) return;
        this.logger.warn({ err: (err as Error).message }, 'following the vector change log failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}
