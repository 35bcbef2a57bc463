// Pages through the union of several id indexes (sorted sets whose members all have score 0, so they
// sort by id, and ids sort by creation), newest first, with filters applied to the loaded records.
// A page reads a bounded number of records: a filter that matches little returns a short page with a
// cursor to go on from, instead of scanning the whole index in one request.
import type { Redis } from 'ioredis';

const BATCH = 100;

class DescendingIds {
  private buffer: string[] = [];
  private exhausted = false;
  private after: string | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    cursor: string | undefined,
    private readonly batch: number,
  ) {
    this.after = cursor;
  }

  async head(): Promise<string | undefined> {
    if (this.buffer.length === 0 && !this.exhausted) {
      const max = this.after === undefined ? '+' : `(${this.after}`;
      this.buffer = await this.redis.zrevrangebylex(this.key, max, '-', 'LIMIT', 0, this.batch);
      if (this.buffer.length < this.batch) this.exhausted = true;
      const last = this.buffer[this.buffer.length - 1];
      if (last !== undefined) this.after = last;
    }
    return this.buffer[0];
  }

  shift(): void {
    this.buffer.shift();
  }
}

/** Ids from all `keys`, newest first, each once, strictly older than `cursor`. */
async function* mergedIds(redis: Redis, keys: string[], cursor: string | undefined, batch: number): AsyncGenerator<string> {
  const sources = [...new Set(keys)].map((k) => new DescendingIds(redis, k, cursor, batch));
  for (;;) {
    const heads = await Promise.all(sources.map((s) => s.head()));
    let top: string | undefined;
    for (const h of heads) if (h !== undefined && (top === undefined || h > top)) top = h;
    if (top === undefined) return;
    heads.forEach((h, i) => {
      if (h === top) sources[i]!.shift();
    });
    yield top;
  }
}

export interface PageRequest<T> {
  keys: string[];
  limit: number;
  cursor: string | undefined;
  /** Loads the records of some ids (missing ones as undefined): one round trip per batch. */
  load: (ids: string[]) => Promise<(T | undefined)[]>;
  keep: (record: T) => boolean;
  /** Whether `keep` is expected to reject records (a filter): then ids are read in larger batches. */
  selective: boolean;
  /** Records read at most for one page. */
  scanBudget: number;
}

export async function pageOf<T extends { id: string }>(redis: Redis, req: PageRequest<T>): Promise<{ items: T[]; nextCursor: string | null }> {
  const items: T[] = [];
  let scanned = 0;
  let lastScanned: string | undefined;
  let batch: string[] = [];
  // Unfiltered, a page needs limit + 1 ids (the one more says whether a next page exists).
  const ids = mergedIds(redis, req.keys, req.cursor, req.selective ? BATCH : Math.min(BATCH, req.limit + 1));

  /** Loads and filters the batch; true once the page is full (ids after the last item are left unread). */
  let leftover = false;
  const flush = async (): Promise<boolean> => {
    const records = await req.load(batch);
    for (let i = 0; i < batch.length; i++) {
      const r = records[i];
      lastScanned = batch[i];
      if (r && req.keep(r)) {
        items.push(r);
        if (items.length === req.limit) {
          leftover = i < batch.length - 1;
          batch = [];
          return true;
        }
      }
    }
    batch = [];
    return false;
  };
  const more = async () => leftover || (await ids.next()).done !== true;

  for await (const id of ids) {
    batch.push(id);
    scanned++;
    if (batch.length === BATCH || scanned >= req.scanBudget || items.length + batch.length >= req.limit) {
      // A full page's cursor is its last item: the next page reads on from there.
      if (await flush()) return { items, nextCursor: (await more()) ? items[items.length - 1]!.id : null };
      if (scanned >= req.scanBudget) return { items, nextCursor: (await more()) ? lastScanned! : null };
    }
  }
  if (batch.length && (await flush()) && leftover) return { items, nextCursor: items[items.length - 1]!.id };
  return { items, nextCursor: null };
}
