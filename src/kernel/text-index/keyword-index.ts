// The project's one keyword-search machinery (messages now; document chunks and facts in `search`).
// Each index is partitioned (per owner, so a query can only ever see its owner's documents) and kept in
// memory as MiniSearch indexes (BM25+ ranking, prefix search) for speed. Durability and sharing across
// instances come from Redis: every change is appended to a stream (`<name>:log`) and every instance,
// including the writer, applies the stream in order; now and then one instance writes a snapshot
// (`<name>:snapshot`, one field per partition plus the stream id it covers) and trims the log. A
// restart loads the snapshot and replays the tail: the index is never rebuilt per query, nor from the
// source data. Applying an entry twice is harmless (add replaces, remove of an absent id is a no-op),
// which is what makes the replay after a snapshot safe.
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import MiniSearch, { type Query } from 'minisearch';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { containsPhrase, highlight, normalizePhrase, parseQuery, STOP_TERMS, stemTerm, tokenize, type ParsedQuery } from './analyzer.js';

export interface IndexedDocument {
  id: string;
  text: string;
  /** Small string fields kept beside the text (e.g. chatId) for filters and for the caller. */
  fields?: Record<string, string>;
}

export interface KeywordHit {
  id: string;
  score: number;
  fields: Record<string, string>;
  /** HTML-safe snippet with <mark> around the words that matched. */
  highlight: string;
}

export interface KeywordSearchOptions {
  limit?: number;
  filter?: (fields: Record<string, string>) => boolean;
  /** Characters of the highlight window. Default 160. */
  snippetWidth?: number;
  /** false: no highlight (empty string), for callers that only show some of the hits. Default true. */
  highlight?: boolean;
}

export interface KeywordIndexOptions {
  /** A connection whose key prefix belongs to the owning module (its own ModuleRedis). */
  redis: Redis;
  /** Keys `<name>:log`, `<name>:snapshot`, `<name>:snapshot-lock` under the module's prefix. */
  name: string;
  logger: Logger;
  /** Applied entries between snapshots. Default 10,000. */
  snapshotEvery?: number;
  /** And at most one snapshot per this many ms (a big partition costs to serialise). Default 5 minutes. */
  snapshotMinIntervalMs?: number;
}

type LogEntry =
  | { op: 'add'; p: string; docs: IndexedDocument[] }
  | { op: 'remove'; p: string; ids: string[] }
  | { op: 'drop'; p: string };

const FIELDS = ['text'];

function processTerm(term: string): string[] | null {
  const stem = stemTerm(term);
  if (!stem) return null;
  const raw = term.toLowerCase().replace(/['’]/g, '');
  // The raw word too, so prefix queries match words whose stem is shorter than the prefix ("runn*").
  return raw !== stem ? [stem, raw] : [stem];
}

function newPartition(): MiniSearch {
  return new MiniSearch({
    fields: FIELDS,
    storeFields: ['text', 'f'],
    idField: 'id',
    tokenize,
    processTerm,
    // Removals are frequent (chat deletions); clean the index in the background.
    autoVacuum: { batchSize: 1000, batchWait: 10, minDirtCount: 100, minDirtFactor: 0.1 },
  });
}

const PARTITION_OPTIONS = { fields: FIELDS, storeFields: ['text', 'f'], idField: 'id', tokenize, processTerm };

/** Stream ids compare as (ms, seq). */
function idAfter(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am > bm || (am === bm && as > bs);
}

// MiniSearch 7 internals used by topHits (the public `search` builds a result object with every stored
// field for each match and sorts them all, which for a frequent word over 100k documents is most of
// the query's time). `executeQuery` is the same matching and BM25+ scoring `search` uses.
interface MiniSearchInternals {
  executeQuery(query: Query, options: object): Map<number, { score: number; terms: string[] }>;
  _documentIds: Map<number, string>;
  _storedFields: Map<number, { text?: unknown; f?: unknown } | undefined>;
}

interface RankedHit {
  id: string;
  score: number;
  fields: Record<string, string>;
  text: string;
}

/** Candidates walked per round, best first, before sorting the rest (enough for a page of hits). */
const ROUND = 256;

/**
 * The best `limit` documents of a query, as MiniSearch's `search` ranks them (score × matched query
 * terms, best first), without building and sorting a result per match: scores go into typed arrays,
 * the best candidates are picked in rounds (a partial selection), and only those are checked
 * (filter, phrases) and turned into hits. Ties keep MiniSearch's order (insertion order, stable sort).
 */
function topHits(
  index: MiniSearch,
  query: Query,
  limit: number,
  filter: ((fields: Record<string, string>) => boolean) | undefined,
  accept: ((text: string) => boolean) | undefined,
): RankedHit[] {
  const ms = index as unknown as MiniSearchInternals;
  const raw = ms.executeQuery(query, {});
  const n = raw.size;
  if (!n || limit <= 0) return [];
  const ids = new Int32Array(n);
  const scores = new Float64Array(n);
  let k = 0;
  for (const [docId, r] of raw) {
    ids[k] = docId;
    scores[k] = r.score * (r.terms.length || 1);
    k++;
  }
  const out: RankedHit[] = [];
  const take = (i: number): boolean => {
    const stored = ms._storedFields.get(ids[i]!) ?? {};
    const fields = (stored.f ?? {}) as Record<string, string>;
    if (filter && !filter(fields)) return false;
    const text = String(stored.text ?? '');
    if (accept && !accept(text)) return false;
    out.push({ id: String(ms._documentIds.get(ids[i]!)), score: scores[i]!, fields, text });
    return out.length >= limit;
  };
  // Positions in score order (descending, ties by position): picked a round at a time by keeping a
  // small sorted window, so the common case (the page fills from the first candidates) costs one pass.
  const order = (a: number, b: number) => scores[b]! - scores[a]! || a - b;
  const done = new Uint8Array(n);
  let remaining = n;
  while (remaining > 0) {
    const size = Math.min(ROUND, remaining);
    if (remaining <= ROUND * 4) {
      // Few left: sort them all.
      const rest: number[] = [];
      for (let i = 0; i < n; i++) if (!done[i]) rest.push(i);
      rest.sort(order);
      for (const i of rest) if (take(i)) return out;
      return out;
    }
    // The `size` best not yet walked: a window kept sorted, entered only by candidates beating its worst.
    const window: number[] = [];
    for (let i = 0; i < n; i++) {
      if (done[i]) continue;
      if (window.length < size) {
        window.push(i);
        if (window.length === size) window.sort(order);
        continue;
      }
      const worst = window[size - 1]!;
      if (order(i, worst) >= 0) continue;
      // Binary insertion, dropping the worst.
      let lo = 0;
      let hi = size - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (order(i, window[mid]!) < 0) hi = mid;
        else lo = mid + 1;
      }
      window.pop();
      window.splice(lo, 0, i);
    }
    if (window.length < size) window.sort(order);
    for (const i of window) {
      done[i] = 1;
      remaining--;
      if (take(i)) return out;
    }
  }
  return out;
}

export class KeywordIndex {
  private readonly partitions = new Map<string, MiniSearch>();
  private readonly dirty = new Set<string>();
  private readonly dropped = new Set<string>();
  private lastId = '0-0';
  private highWater = '0-0';
  private sinceSnapshot = 0;
  private lastSnapshotAt = 0;
  private tail: Redis | undefined;
  private stopped = false;
  private tailing: Promise<void> | undefined;
  private snapshotting: Promise<void> | undefined;
  private waiters: { id: string; resolve: () => void }[] = [];
  private readonly logKey: string;
  private readonly snapshotKey: string;
  private readonly lockKey: string;
  private readonly snapshotEvery: number;
  private readonly log: Logger;

  constructor(private readonly opts: KeywordIndexOptions) {
    this.logKey = `${opts.name}:log`;
    this.snapshotKey = `${opts.name}:snapshot`;
    this.lockKey = `${opts.name}:snapshot-lock`;
    this.snapshotEvery = opts.snapshotEvery ?? 10_000;
    this.log = opts.logger.child({ component: 'keyword-index', index: opts.name });
  }

  /** Loads the last snapshot, replays the log after it, then follows the log. */
  async start(): Promise<void> {
    const snap = await this.opts.redis.hgetall(this.snapshotKey);
    const started = Date.now();
    for (const [field, json] of Object.entries(snap)) {
      if (!field.startsWith('p:')) continue;
      this.partitions.set(field.slice(2), MiniSearch.loadJSON(json, PARTITION_OPTIONS));
    }
    this.lastId = snap.id ?? '0-0';
    // Replay synchronously up to now, so the first query after start sees everything.
    for (;;) {
      const batch = await this.opts.redis.xrange(this.logKey, `(${this.lastId}`, '+', 'COUNT', 1000);
      if (!batch.length) break;
      for (const [id, fields] of batch) this.apply(id, fields);
    }
    this.log.info({ partitions: this.partitions.size, ms: Date.now() - started, at: this.lastId }, 'keyword index loaded');
    this.tail = this.opts.redis.duplicate({ maxRetriesPerRequest: null, enableAutoPipelining: false, lazyConnect: false });
    this.tail.on('error', () => undefined);
    this.tailing = this.follow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.tail?.disconnect();
    await this.tailing?.catch(() => undefined);
    await this.snapshotting?.catch(() => undefined);
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  /** Adds or replaces documents; resolves once this instance's index shows them. */
  add(partition: string, docs: IndexedDocument[]): Promise<void> {
    if (!docs.length) return Promise.resolve();
    return this.append({ op: 'add', p: partition, docs });
  }

  /**
   * The log entry adding `docs`, for a caller that writes it in its own script, atomically with the data
   * it indexes (`XADD <key> * ...fields`, `key` under the caller's module prefix like this index's): the
   * data and its index entry are then stored together or not at all, and the caller need not wait for
   * the index. Hand the id XADD answered to `written`, so that `caughtUp` covers it.
   */
  addEntry(partition: string, docs: IndexedDocument[]): { key: string; fields: string[] } {
    return { key: this.logKey, fields: ['op', 'add', 'p', partition, 'd', JSON.stringify(docs)] };
  }

  /** A log id this instance wrote through `addEntry`: `caughtUp` waits for it. */
  written(id: string): void {
    if (idAfter(id, this.highWater)) this.highWater = id;
  }

  /**
   * Resolves once this instance's index shows every entry it wrote through `addEntry` (read-your-writes
   * for a query after a write that did not wait), or after `maxWaitMs` (a broken tail must not hang queries).
   */
  caughtUp(maxWaitMs = 2000): Promise<void> {
    const id = this.highWater;
    if (this.stopped || !idAfter(id, this.lastId)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, maxWaitMs);
      this.waiters.push({ id, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  remove(partition: string, ids: string[]): Promise<void> {
    if (!ids.length) return Promise.resolve();
    return this.append({ op: 'remove', p: partition, ids });
  }

  /** Forgets a whole partition (its owner is gone). */
  drop(partition: string): Promise<void> {
    return this.append({ op: 'drop', p: partition });
  }

  size(partition: string): number {
    return this.partitions.get(partition)?.documentCount ?? 0;
  }

  /** A stored document of a partition (its text and fields), e.g. to show a hit found elsewhere. */
  get(partition: string, id: string): { text: string; fields: Record<string, string> } | undefined {
    const stored = this.partitions.get(partition)?.getStoredFields(id);
    if (!stored) return undefined;
    return { text: String(stored.text ?? ''), fields: (stored.f ?? {}) as Record<string, string> };
  }

  /**
   * Indexed words of a partition starting with `prefix` (lower case), with how many documents hold
   * each, most frequent first: completions for a search box. Stems that are not words themselves
   * ("comput" of "computer") are left out when the word they come from is among the candidates.
   */
  terms(partition: string, prefix: string, limit = 10): { term: string; docs: number }[] {
    const index = this.partitions.get(partition);
    const p = prefix.toLowerCase().replace(/['’]/g, '');
    if (!index || !p) return [];
    // MiniSearch keeps its term tree private; reading it is the only way to list terms by prefix
    // without a second copy of the vocabulary. The shape is MiniSearch 7's (term -> field -> doc -> tf).
    // Discarded documents stay in the tree until vacuumed: only live ones (`_documentIds`) count, so a
    // removed document's words are never offered.
    const internals = index as unknown as {
      _index: { atPrefix(p: string): Iterable<[string, Map<number, Map<number, number>>]> };
      _documentIds: Map<number, unknown>;
    };
    const tree = internals._index;
    const live = internals._documentIds;
    const found = new Map<string, number>();
    let seen = 0;
    for (const [term, byField] of tree.atPrefix(p)) {
      let docs = 0;
      for (const d of byField.values()) for (const shortId of d.keys()) if (live.has(shortId)) docs++;
      if (docs > 0) found.set(term, docs);
      // A bound on the work for a one-letter prefix over a big vocabulary.
      if (++seen >= 5000) break;
    }
    const stemsOfOthers = new Set<string>();
    for (const term of found.keys()) {
      const s = stemTerm(term);
      if (s && s !== term) stemsOfOthers.add(s);
    }
    return [...found]
      .filter(([term]) => !stemsOfOthers.has(term))
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, limit)
      .map(([term, docs]) => ({ term, docs }));
  }

  /**
   * Ranked (BM25+) search in one partition: every plain word (stemmed) and every prefix* must match,
   * every "quoted phrase" must appear word for word. When no document has all the words, documents
   * with some of them are ranked instead (phrases and prefixes still required).
   */
  search(partition: string, q: string, opts: KeywordSearchOptions = {}): KeywordHit[] {
    const index = this.partitions.get(partition);
    const parsed = parseQuery(q);
    if (!index || (!parsed.terms.length && !parsed.prefixes.length)) return [];
    const limit = opts.limit ?? 20;
    const filter = opts.filter;
    const accept = parsed.phrases.length
      ? (text: string) => {
          const normal = normalizePhrase(text);
          return parsed.phrases.every((p) => containsPhrase(normal, p));
        }
      : undefined;
    let results = topHits(index, this.query(parsed, 'AND'), limit, filter, accept);
    if (!results.length && parsed.terms.length > 1) {
      // Some of the words, then: the topical ones (function words only if there is nothing else).
      const topical = parsed.terms.filter((t) => !STOP_TERMS.has(t));
      const some = topical.length ? { ...parsed, terms: topical } : parsed;
      results = topHits(index, this.query(some, 'OR'), limit, filter, accept);
    }
    return results.map((r) => ({
      id: r.id,
      score: r.score,
      fields: r.fields,
      highlight: opts.highlight === false ? '' : highlight(r.text, parsed, opts.snippetWidth),
    }));
  }

  private query(parsed: ParsedQuery, words: 'AND' | 'OR'): Query {
    // Terms are already processed: each sub-query takes them as they are.
    const asIs = { tokenize: (s: string) => [s], processTerm: (t: string) => t };
    const queries: Query[] = [];
    if (parsed.terms.length) queries.push({ ...asIs, combineWith: words, queries: parsed.terms });
    for (const p of parsed.prefixes) queries.push({ ...asIs, prefix: true, queries: [p] });
    return { combineWith: 'AND', queries };
  }

  private async append(entry: LogEntry): Promise<void> {
    const payload = entry.op === 'add' ? JSON.stringify(entry.docs) : entry.op === 'remove' ? JSON.stringify(entry.ids) : '';
    const id = await this.opts.redis.xadd(this.logKey, '*', 'op', entry.op, 'p', entry.p, 'd', payload);
    if (!id) throw new Error('XADD returned no id');
    if (!idAfter(id, this.lastId)) return;
    await new Promise<void>((resolve) => this.waiters.push({ id, resolve }));
  }

  private async follow(): Promise<void> {
    const tail = this.tail!;
    while (!this.stopped) {
      try {
        const reply = (await tail.xread('COUNT', 1000, 'BLOCK', 5000, 'STREAMS', this.logKey, this.lastId)) as [string, [string, string[]][]][] | null;
        if (!reply) continue;
        for (const [, entries] of reply) for (const [id, fields] of entries) this.apply(id, fields);
        this.release();
        const due = this.sinceSnapshot >= this.snapshotEvery && Date.now() - this.lastSnapshotAt >= (this.opts.snapshotMinIntervalMs ?? 300_000);
        if (due && !this.snapshotting) {
          this.lastSnapshotAt = Date.now();
          // In the background: a failure (Redis away) is logged, and the next due snapshot tries again.
          this.snapshotting = this.snapshot()
            .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'keyword index snapshot failed; the next one will try again'))
            .finally(() => (this.snapshotting = undefined));
        }
      } catch (err) {
        if (this.stopped) return;
        this.log.warn({ err: (err as Error).message }, 'keyword index tail failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private release(): void {
    if (!this.waiters.length) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (idAfter(w.id, this.lastId)) still.push(w);
      else w.resolve();
    }
    this.waiters = still;
  }

  private apply(id: string, fields: string[]): void {
    if (!idAfter(id, this.lastId)) return;
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
    const p = f.p ?? '';
    try {
      if (f.op === 'add') {
        let index = this.partitions.get(p);
        if (!index) this.partitions.set(p, (index = newPartition()));
        for (const doc of JSON.parse(f.d ?? '[]') as IndexedDocument[]) {
          if (index.has(doc.id)) index.discard(doc.id);
          index.add({ id: doc.id, text: doc.text, f: doc.fields ?? {} });
        }
        this.dirty.add(p);
        this.dropped.delete(p);
      } else if (f.op === 'remove') {
        const index = this.partitions.get(p);
        if (index) for (const docId of JSON.parse(f.d ?? '[]') as string[]) if (index.has(docId)) index.discard(docId);
        this.dirty.add(p);
      } else if (f.op === 'drop') {
        this.partitions.delete(p);
        this.dirty.delete(p);
        this.dropped.add(p);
      }
    } catch (err) {
      // One bad entry must not stop the index: log it and go on with the next.
      this.log.error({ err, entry: id }, 'keyword index entry could not be applied');
    }
    this.lastId = id;
    this.sinceSnapshot += 1;
  }

  /**
   * Writes the changed partitions and the stream id they cover, then trims the log up to the previous
   * snapshot (not this one: an instance that read the previous snapshot while this one was written can
   * still replay from it). One instance at a time (a lock with a lease).
   */
  async snapshot(): Promise<void> {
    const redis = this.opts.redis;
    if ((await redis.set(this.lockKey, '1', 'PX', 60_000, 'NX')) !== 'OK') return;
    // What the snapshot covers, taken at once: entries applied while it is written mark their
    // partitions dirty again for the next one (clearing the marks after the write lost those).
    const at = this.lastId;
    const changed = [...this.dirty];
    const gone = [...this.dropped];
    const counted = this.sinceSnapshot;
    this.dirty.clear();
    this.dropped.clear();
    this.sinceSnapshot = 0;
    try {
      const previous = await redis.hget(this.snapshotKey, 'id');
      const multi = redis.multi();
      for (const p of changed) {
        const index = this.partitions.get(p);
        // A partition may hold entries after `at` by now: replaying them again is harmless.
        if (index) multi.hset(this.snapshotKey, `p:${p}`, JSON.stringify(index));
        // One partition at a time: the event loop serves requests in between (serialising every
        // partition at once blocked it for as long as all of them took).
        await setImmediatePromise();
      }
      for (const p of gone) multi.hdel(this.snapshotKey, `p:${p}`);
      multi.hset(this.snapshotKey, 'id', at);
      if (previous) multi.xtrim(this.logKey, 'MINID', previous);
      await multi.exec();
      this.log.debug({ at, partitions: changed.length }, 'keyword index snapshot written');
    } catch (err) {
      for (const p of changed) this.dirty.add(p);
      for (const p of gone) if (!this.partitions.has(p)) this.dropped.add(p);
      this.sinceSnapshot += counted;
      this.log.warn({ err: (err as Error).message }, 'keyword index snapshot failed; the log keeps everything');
    } finally {
      await redis.del(this.lockKey).catch(() => undefined);
    }
  }
}
