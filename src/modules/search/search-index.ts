// The keyword side of search: document chunks and facts in the kernel's keyword index (the project's one
// keyword machinery, also behind message search), kept current from the documents and knowledge events.
//
// Visibility is structural: an item lives in exactly one partition, `u:<ownerId>` while private and
// `shared` once an admin shares it, and a query reads only the caller's partition and `shared`. So a
// private item of someone else cannot reach a result, a snippet or a suggestion: it is not in any
// partition the query touches. When `shared` changes the item moves between partitions.
//
// What each source put into the index (its run, partition and chunk ids) is recorded in Redis, so an
// event applied twice, late or out of order (a reindex's older run; a fact's lower rev) is recognised.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import type { Port } from '../../kernel/contract/define.js';
import { isContractError } from '../../kernel/contract/errors.js';
import { runWithContext, type Actor } from '../../kernel/context/request-context.js';
import { ModuleLogger, ModuleRedis } from '../../kernel/module/tokens.js';
import { KeywordIndex, type IndexedDocument } from '../../kernel/text-index/keyword-index.js';
import { documentsContract } from '../documents/contract.js';

const SERVICE: Actor = { type: 'service', name: 'search' };
export const SHARED = 'shared';
export const partitionOf = (ownerId: string, shared: boolean) => (shared ? SHARED : `u:${ownerId}`);
export const visiblePartitions = (userId: string) => [`u:${userId}`, SHARED];
/** Tags travel in one string field; this separator cannot occur in a tag. */
export const TAG_SEP = '\u001f';
const TOMBSTONE_TTL_S = 7 * 24 * 3600;
const BATCH = 500;

export interface DocumentIndexed {
  documentId: string;
  ownerId: string;
  name: string;
  categoryId: string | null;
  tags: string[];
  shared: boolean;
  run: number;
  /** When the pipeline read the document's metadata for this announcement. */
  indexedAt?: string;
}

export interface DocumentMeta {
  documentId: string;
  ownerId: string;
  categoryId: string | null;
  tags: string[];
  shared: boolean;
}

export interface FactEvent {
  factId: string;
  ownerId: string;
  shared: boolean;
  categoryId: string | null;
  tags: string[];
  rev: number;
  content?: string;
}

/** A fact's title: its first line, cut at a word. */
export function factTitle(content: string): string {
  const line = content.trim().split('\n')[0]!.trim();
  if (line.length <= 80) return line;
  const cut = line.slice(0, 80);
  return `${cut.slice(0, cut.lastIndexOf(' ') > 40 ? cut.lastIndexOf(' ') : 80)}…`;
}

export function chunkDocument(
  chunk: { id: string; text: string; headingPath: string[] },
  meta: { documentId: string; name: string; categoryId: string | null; tags: string[]; ownerId: string },
): IndexedDocument {
  return {
    id: chunk.id,
    // The headings are part of what a chunk is about (as for its vector).
    text: chunk.headingPath.length ? `${chunk.headingPath.join(' > ')}\n\n${chunk.text}` : chunk.text,
    fields: { t: 'document', s: meta.documentId, ti: meta.name, c: meta.categoryId ?? '', g: meta.tags.join(TAG_SEP), o: meta.ownerId, h: chunk.headingPath.join(TAG_SEP) },
  };
}

@injectable()
export class SearchIndex {
  /** Chunks and facts. */
  readonly items: KeywordIndex;
  /** Document titles, for suggestions. */
  readonly titles: KeywordIndex;
  private readonly chains = new Map<string, Promise<void>>();
  private readonly log: Logger;

  constructor(
    @inject(ModuleRedis) private readonly redis: Redis,
    @inject(ModuleLogger) logger: Logger,
    @inject(documentsContract.token) private readonly documents: Port<typeof documentsContract>,
  ) {
    this.items = new KeywordIndex({ redis, name: 'items', logger });
    this.titles = new KeywordIndex({ redis, name: 'titles', logger });
    this.log = logger.child({ component: 'search-index' });
  }

  async start(): Promise<void> {
    await Promise.all([this.items.start(), this.titles.start()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.items.stop(), this.titles.stop()]);
  }

  /** One change at a time per source (events of different types may arrive together). */
  private serial(key: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    // The caller gets the failure through `next`; the chain's own copy only orders, so it is settled here
    // (it would otherwise be an unhandled rejection whenever no later change follows a failed one).
    const tail = next.catch(() => undefined).finally(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    this.chains.set(key, tail);
    return next;
  }

  documentIndexed(e: DocumentIndexed): Promise<void> {
    return this.serial(`d:${e.documentId}`, async () => {
      const rec = await this.redis.hgetall(`doc:${e.documentId}`);
      if (rec.deleted) return;
      if (rec.run && Number(rec.run) > e.run) return;
      const chunks = await this.readChunks(e.documentId, e.ownerId, e.run);
      if (!chunks) return;
      // A change of sharing, category or tags announced before this (see documentUpdated) but made
      // after the pipeline read the metadata wins over what this announcement carries.
      if (rec.pending) {
        const p = JSON.parse(rec.pending) as { shared: boolean; categoryId: string | null; tags: string[]; at: string };
        if (!e.indexedAt || p.at > e.indexedAt) e = { ...e, shared: p.shared, categoryId: p.categoryId, tags: p.tags };
      }
      const partition = partitionOf(e.ownerId, e.shared);
      const docs = chunks.map((c) => chunkDocument(c, e));
      for (let i = 0; i < docs.length; i += BATCH) await this.items.add(partition, docs.slice(i, i + BATCH));
      const fresh = new Set(docs.map((d) => d.id));
      if (rec.partition) {
        const old = (JSON.parse(rec.ids ?? '[]') as string[]).filter((id) => rec.partition !== partition || !fresh.has(id));
        for (let i = 0; i < old.length; i += BATCH * 10) await this.items.remove(rec.partition, old.slice(i, i + BATCH * 10));
        if (rec.partition !== partition) await this.titles.remove(rec.partition, [e.documentId]);
      }
      await this.titles.add(partition, [{ id: e.documentId, text: e.name, fields: { t: 'document', s: e.documentId, ti: e.name } }]);
      // The record lives as long as the document (a pending change had given the key a lifetime).
      await this.redis.multi().hdel(`doc:${e.documentId}`, 'pending').persist(`doc:${e.documentId}`).exec();
      await this.redis.hset(`doc:${e.documentId}`, {
        run: e.run,
        ownerId: e.ownerId,
        partition,
        name: e.name,
        categoryId: e.categoryId ?? '',
        tags: JSON.stringify(e.tags),
        ids: JSON.stringify([...fresh]),
      });
      this.log.debug({ documentId: e.documentId, chunks: docs.length, partition }, 'document indexed for keyword search');
    });
  }

  /** The chunks of one run, or undefined when the document is gone or has moved on to another run. */
  private async readChunks(documentId: string, ownerId: string, run: number) {
    const out: { id: string; text: string; headingPath: string[] }[] = [];
    let cursor: string | undefined;
    try {
      do {
        const page = await runWithContext({ requestId: randomUUID(), actor: SERVICE }, () =>
          this.documents.listChunks({ id: documentId, ownerId, limit: 1000, ...(cursor ? { cursor } : {}) }),
        );
        for (const c of page.items) {
          if (c.id.split(':').at(-2) !== String(run)) return undefined;
          out.push(c);
        }
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
    } catch (err) {
      if (isContractError(err) && err.code === 'not_found') return undefined;
      throw err;
    }
    return out;
  }

  /** Sharing, category or tags changed: the chunks follow (moved between partitions if need be). */
  documentUpdated(e: DocumentMeta, occurredAt = new Date().toISOString()): Promise<void> {
    return this.serial(`d:${e.documentId}`, async () => {
      const rec = await this.redis.hgetall(`doc:${e.documentId}`);
      if (rec.deleted) return;
      if (!rec.partition) {
        // Not indexed here yet (events of different types travel in different streams): keep the
        // newest change for the `indexed` announcement to compare with.
        const prev = rec.pending ? (JSON.parse(rec.pending) as { at: string }) : undefined;
        if (!prev || prev.at <= occurredAt) {
          await this.redis.hset(`doc:${e.documentId}`, 'pending', JSON.stringify({ shared: e.shared, categoryId: e.categoryId, tags: e.tags, at: occurredAt }));
          await this.redis.expire(`doc:${e.documentId}`, TOMBSTONE_TTL_S);
        }
        return;
      }
      const partition = partitionOf(e.ownerId, e.shared);
      const same = partition === rec.partition && (e.categoryId ?? '') === rec.categoryId && JSON.stringify(e.tags) === rec.tags;
      if (same) return;
      const ids = JSON.parse(rec.ids ?? '[]') as string[];
      const meta = { documentId: e.documentId, name: rec.name ?? '', categoryId: e.categoryId, tags: e.tags, ownerId: e.ownerId };
      for (let i = 0; i < ids.length; i += BATCH) {
        const docs: IndexedDocument[] = [];
        for (const id of ids.slice(i, i + BATCH)) {
          // The text is already here: re-reading the document is not needed to re-file it.
          const stored = this.items.get(rec.partition, id) ?? this.items.get(partition, id);
          if (stored) docs.push({ id, text: stored.text, fields: { ...stored.fields, c: meta.categoryId ?? '', g: meta.tags.join(TAG_SEP) } });
        }
        await this.items.add(partition, docs);
      }
      if (rec.partition !== partition) {
        for (let i = 0; i < ids.length; i += BATCH * 10) await this.items.remove(rec.partition, ids.slice(i, i + BATCH * 10));
        await this.titles.remove(rec.partition, [e.documentId]);
        await this.titles.add(partition, [{ id: e.documentId, text: meta.name, fields: { t: 'document', s: e.documentId, ti: meta.name } }]);
      }
      await this.redis.hset(`doc:${e.documentId}`, { partition, categoryId: e.categoryId ?? '', tags: JSON.stringify(e.tags) });
    });
  }

  documentDeleted(e: { documentId: string }): Promise<void> {
    return this.serial(`d:${e.documentId}`, async () => {
      const key = `doc:${e.documentId}`;
      const rec = await this.redis.hgetall(key);
      if (rec.partition) {
        const ids = JSON.parse(rec.ids ?? '[]') as string[];
        for (let i = 0; i < ids.length; i += BATCH * 10) await this.items.remove(rec.partition, ids.slice(i, i + BATCH * 10));
        await this.titles.remove(rec.partition, [e.documentId]);
      }
      // A tombstone: an `indexed` event of this document arriving late must not bring it back.
      await this.redis.multi().del(key).hset(key, { deleted: '1', run: rec.run ?? '0' }).expire(key, TOMBSTONE_TTL_S).exec();
    });
  }

  fact(type: 'created' | 'updated' | 'deleted', e: FactEvent): Promise<void> {
    return this.serial(`f:${e.factId}`, async () => {
      const key = `fact:${e.factId}`;
      const rec = await this.redis.hgetall(key);
      // Events of different types travel in different streams: the highest rev wins.
      if (rec.rev && Number(rec.rev) >= e.rev) return;
      if (type === 'deleted') {
        if (rec.partition) await this.items.remove(rec.partition, [e.factId]);
        await this.redis.multi().del(key).hset(key, { rev: e.rev, deleted: '1' }).expire(key, TOMBSTONE_TTL_S).exec();
        return;
      }
      const partition = partitionOf(e.ownerId, e.shared);
      const content = e.content ?? '';
      await this.items.add(partition, [
        { id: e.factId, text: content, fields: { t: 'fact', s: e.factId, ti: factTitle(content), c: e.categoryId ?? '', g: e.tags.join(TAG_SEP), o: e.ownerId, h: '' } },
      ]);
      if (rec.partition && rec.partition !== partition) await this.items.remove(rec.partition, [e.factId]);
      await this.redis.hset(key, { rev: e.rev, partition });
    });
  }

  /** A deleted user's private items go with them. */
  async dropOwner(userId: string): Promise<void> {
    await Promise.all([this.items.drop(`u:${userId}`), this.titles.drop(`u:${userId}`)]);
  }
}
