// One collection in memory: every vector (unit length, so inner product = cosine) with its metadata,
// and an HNSW graph (usearch) over them once the collection is big enough for it to beat a scan.
// Filtered searches over-fetch from the graph and fall back to an exact scan of the matching vectors
// when the graph's candidates hold too few matches: a filter never yields a silently short list.
import usearch, { type Index as HnswIndex } from 'usearch';
import type { z } from 'zod';
import type { vectorMetadata } from './contract.js';

export type VectorMetadata = z.output<typeof vectorMetadata>;

export interface SearchFilter {
  ownerId?: string | undefined;
  visibleTo?: string | undefined;
  documentIds?: string[] | undefined;
  categoryId?: string | undefined;
  tags?: string[] | undefined;
}

export interface Hit {
  id: string;
  score: number;
  metadata: VectorMetadata;
}

export interface IndexTuning {
  /** Below this many vectors a search is an exact scan (faster than a graph that small, and perfect). */
  exactBelow: number;
  /** Graph candidates fetched per wanted result when a filter applies. */
  overFetch: number;
}

const CONNECTIVITY = 16;
const EXPANSION_ADD = 128;
const EXPANSION_SEARCH = 96;
/** Vectors added to the graph per event-loop turn while it is built in the background. */
const BUILD_SLICE = 2000;
const MIN_CANDIDATES = 40;

function matches(m: VectorMetadata, f: SearchFilter, docs: Set<string> | undefined): boolean {
  if (f.ownerId !== undefined && m.ownerId !== f.ownerId) return false;
  if (f.visibleTo !== undefined && m.ownerId !== f.visibleTo && m.shared !== true) return false;
  if (docs && (m.documentId === undefined || !docs.has(m.documentId))) return false;
  if (f.categoryId !== undefined && m.categoryId !== f.categoryId) return false;
  if (f.tags && f.tags.length > 0) {
    const have = m.tags ?? [];
    for (const t of f.tags) if (!have.includes(t)) return false;
  }
  return true;
}

function hasFilter(f: SearchFilter | undefined): f is SearchFilter {
  return !!f && (f.ownerId !== undefined || f.visibleTo !== undefined || f.documentIds !== undefined || f.categoryId !== undefined || (f.tags?.length ?? 0) > 0);
}

export class VectorIndex {
  private data: Float32Array;
  private capacity: number;
  /** slot -> id (undefined: free). */
  private ids: (string | undefined)[] = [];
  private metas: (VectorMetadata | undefined)[] = [];
  private readonly slotOf = new Map<string, number>();
  private readonly free: number[] = [];
  private readonly byDocument = new Map<string, Set<number>>();
  private graph: HnswIndex | undefined;
  /** Slots below this are in the graph (the background build's progress). */
  private graphUpTo = 0;
  private building = false;
  private disposed = false;
  /** While a collection is being loaded, the graph waits (it may come from a snapshot instead). */
  holdBuild = false;
  /** Slots a saved graph gave to ids, kept for them while the vectors are put back. */
  private readonly reserved = new Map<string, number>();
  private reservedUpTo = 0;
  /** The graph was loaded from a snapshot rather than built. */
  graphFromSnapshot = false;
  /** Bumped by every change: a snapshot is only worth writing when it moved. */
  version = 0;

  constructor(
    readonly model: string,
    readonly dimensions: number,
    private readonly tuning: () => IndexTuning,
    initialCapacity = 1024,
  ) {
    this.capacity = initialCapacity;
    this.data = new Float32Array(initialCapacity * dimensions);
  }

  get size(): number {
    return this.slotOf.size;
  }

  /** The graph answers searches only once it holds every slot. */
  get graphReady(): boolean {
    return this.graph !== undefined && !this.building;
  }

  has(id: string): boolean {
    return this.slotOf.has(id);
  }

  vectorOf(id: string): Float32Array | undefined {
    const slot = this.slotOf.get(id);
    return slot === undefined ? undefined : this.data.subarray(slot * this.dimensions, (slot + 1) * this.dimensions);
  }

  metadataOf(id: string): VectorMetadata | undefined {
    const slot = this.slotOf.get(id);
    return slot === undefined ? undefined : this.metas[slot];
  }

  idsOfDocument(documentId: string): string[] {
    return [...(this.byDocument.get(documentId) ?? [])].map((s) => this.ids[s]!);
  }

  private grow(min: number): void {
    let cap = this.capacity;
    while (cap < min) cap *= 2;
    if (cap === this.capacity) return;
    const next = new Float32Array(cap * this.dimensions);
    next.set(this.data);
    this.data = next;
    this.capacity = cap;
  }

  private indexDocument(slot: number, documentId: string | undefined, add: boolean): void {
    if (documentId === undefined) return;
    let set = this.byDocument.get(documentId);
    if (add) {
      if (!set) this.byDocument.set(documentId, (set = new Set()));
      set.add(slot);
    } else if (set) {
      set.delete(slot);
      if (set.size === 0) this.byDocument.delete(documentId);
    }
  }

  /** Adds or replaces. A vector whose bytes did not change only has its metadata replaced. */
  put(id: string, vector: Float32Array, metadata: VectorMetadata): void {
    this.version++;
    if (vector.length !== this.dimensions) throw new Error(`vector of ${vector.length} dimensions in a ${this.dimensions}-dimension index`);
    const existing = this.slotOf.get(id);
    if (existing !== undefined) {
      this.indexDocument(existing, this.metas[existing]?.documentId, false);
      this.metas[existing] = metadata;
      this.indexDocument(existing, metadata.documentId, true);
      const at = existing * this.dimensions;
      let same = true;
      for (let i = 0; i < this.dimensions; i++) {
        if (this.data[at + i] !== vector[i]) {
          same = false;
          break;
        }
      }
      if (same) return;
      this.data.set(vector, at);
      if (this.graph && existing < this.graphUpTo) {
        this.graph.remove(BigInt(existing));
        this.graph.add(BigInt(existing), this.data.subarray(at, at + this.dimensions));
      }
      return;
    }
    const reservedSlot = this.reserved.get(id);
    if (reservedSlot !== undefined) this.reserved.delete(id);
    const slot = reservedSlot ?? this.free.pop() ?? this.ids.length;
    if (slot >= this.capacity) this.grow(slot + 1);
    this.data.set(vector, slot * this.dimensions);
    this.ids[slot] = id;
    this.metas[slot] = metadata;
    this.slotOf.set(id, slot);
    this.indexDocument(slot, metadata.documentId, true);
    if (this.graph && slot < this.graphUpTo) this.graph.add(BigInt(slot), this.data.subarray(slot * this.dimensions, (slot + 1) * this.dimensions));
    else if (this.graph && !this.building && slot === this.graphUpTo) {
      this.graph.add(BigInt(slot), this.data.subarray(slot * this.dimensions, (slot + 1) * this.dimensions));
      this.graphUpTo = slot + 1;
    }
    this.maybeBuild();
  }

  setMetadata(id: string, metadata: VectorMetadata): void {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return;
    this.indexDocument(slot, this.metas[slot]?.documentId, false);
    this.metas[slot] = metadata;
    this.indexDocument(slot, metadata.documentId, true);
  }

  delete(id: string): boolean {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return false;
    this.version++;
    this.slotOf.delete(id);
    this.indexDocument(slot, this.metas[slot]?.documentId, false);
    this.ids[slot] = undefined;
    this.metas[slot] = undefined;
    this.data.fill(0, slot * this.dimensions, (slot + 1) * this.dimensions);
    if (this.graph && slot < this.graphUpTo) this.graph.remove(BigInt(slot));
    this.free.push(slot);
    return true;
  }

  allIds(): string[] {
    return [...this.slotOf.keys()];
  }

  /** Builds the graph in slices, yielding between them, once the collection outgrows exact scans. */
  maybeBuild(): void {
    if (this.graph || this.building || this.disposed || this.holdBuild || this.size < this.tuning().exactBelow) return;
    this.building = true;
    this.graph = this.newGraph();
    this.graphUpTo = 0;
    const step = () => {
      if (this.disposed || !this.graph) return;
      const end = Math.min(this.ids.length, this.graphUpTo + BUILD_SLICE);
      const keys: bigint[] = [];
      const vecs: Float32Array[] = [];
      for (let s = this.graphUpTo; s < end; s++) {
        if (this.ids[s] === undefined) continue;
        keys.push(BigInt(s));
        vecs.push(this.data.subarray(s * this.dimensions, (s + 1) * this.dimensions));
      }
      if (keys.length > 0) this.graph.add(BigUint64Array.from(keys), vecs, 0);
      this.graphUpTo = end;
      if (end < this.ids.length) setImmediate(step);
      else this.building = false;
    };
    setImmediate(step);
  }

  private newGraph(): HnswIndex {
    return new usearch.Index({
      dimensions: this.dimensions,
      metric: usearch.MetricKind.IP,
      quantization: usearch.ScalarKind.F32,
      connectivity: CONNECTIVITY,
      expansion_add: EXPANSION_ADD,
      expansion_search: EXPANSION_SEARCH,
      multi: false,
    });
  }

  /** Ids by slot (null: a free slot), as a snapshot records them beside the graph. */
  slotIds(): (string | null)[] {
    return Array.from({ length: this.ids.length }, (_, s) => this.ids[s] ?? null);
  }

  /** Writes the graph to `file`; false when there is no complete graph to write. */
  saveGraph(file: string): boolean {
    if (!this.graphReady) return false;
    this.graph!.save(file);
    return true;
  }

  /** Before the vectors are put back: every id gets the slot it had when the graph was saved. */
  reserve(slotIds: (string | null)[]): void {
    this.grow(slotIds.length);
    this.ids.length = slotIds.length;
    this.metas.length = slotIds.length;
    this.reservedUpTo = slotIds.length;
    slotIds.forEach((id, s) => {
      if (id !== null) this.reserved.set(id, s);
    });
  }

  /**
   * After the vectors are back: takes the saved graph instead of building one, then brings it up to
   * date: slots whose vector is gone leave it, new vectors join it, changed ones are re-added.
   */
  adoptGraph(file: string, changed: Iterable<string>): void {
    const g = this.newGraph();
    g.load(file);
    for (const s of this.reserved.values()) g.remove(BigInt(s));
    this.reserved.clear();
    for (let s = 0; s < this.reservedUpTo; s++) if (this.ids[s] === undefined) this.free.push(s);
    const vec = (s: number) => this.data.subarray(s * this.dimensions, (s + 1) * this.dimensions);
    for (let s = this.reservedUpTo; s < this.ids.length; s++) if (this.ids[s] !== undefined) g.add(BigInt(s), vec(s));
    for (const id of new Set(changed)) {
      const s = this.slotOf.get(id);
      if (s === undefined || s >= this.reservedUpTo) continue;
      g.remove(BigInt(s));
      g.add(BigInt(s), vec(s));
    }
    this.graph = g;
    this.graphUpTo = this.ids.length;
    this.building = false;
    this.graphFromSnapshot = true;
  }

  /** Resolves once a background build (if any) has finished: for tests and benchmarks. */
  async settled(): Promise<void> {
    while (this.building) await new Promise((r) => setTimeout(r, 5));
  }

  private score(slot: number, q: Float32Array): number {
    const at = slot * this.dimensions;
    const d = this.data;
    let s = 0;
    for (let i = 0; i < this.dimensions; i++) s += d[at + i]! * q[i]!;
    return s;
  }

  private exact(q: Float32Array, k: number, accept: (slot: number) => boolean, slots?: Iterable<number>): Hit[] {
    // A bounded min-heap would beat sorting for huge scans; k is small and the sort runs on survivors only.
    const best: { slot: number; score: number }[] = [];
    let floor = -Infinity;
    const consider = (slot: number) => {
      if (this.ids[slot] === undefined || !accept(slot)) return;
      const score = this.score(slot, q);
      if (best.length >= k && score <= floor) return;
      best.push({ slot, score });
      if (best.length >= k * 4) {
        best.sort((a, b) => b.score - a.score);
        best.length = k;
        floor = best[k - 1]!.score;
      }
    };
    if (slots) for (const s of slots) consider(s);
    else for (let s = 0; s < this.ids.length; s++) consider(s);
    return this.hits(best, k);
  }

  private hits(scored: { slot: number; score: number }[], k: number): Hit[] {
    scored.sort((a, b) => b.score - a.score || (this.ids[a.slot]! < this.ids[b.slot]! ? -1 : 1));
    return scored.slice(0, k).map(({ slot, score }) => ({ id: this.ids[slot]!, score, metadata: this.metas[slot]! }));
  }

  search(query: Float32Array, k: number, filter?: SearchFilter): Hit[] {
    if (this.size === 0) return [];
    const f = hasFilter(filter) ? filter : undefined;
    const docs = f?.documentIds ? new Set(f.documentIds) : undefined;
    const accept = f ? (slot: number) => matches(this.metas[slot]!, f, docs) : () => true;
    // Named documents: their own vectors are few, scan them exactly.
    if (docs) {
      const slots: number[] = [];
      for (const d of docs) for (const s of this.byDocument.get(d) ?? []) slots.push(s);
      return this.exact(query, k, accept, slots);
    }
    if (!this.graphReady || this.size < this.tuning().exactBelow) return this.exact(query, k, accept);
    const graph = this.graph!;
    // At least MIN_CANDIDATES: asking the graph for a few more than k costs little and lifts recall,
    // most where removals and replacements have thinned its links.
    const want = Math.min(this.size, Math.max(MIN_CANDIDATES, f ? k * this.tuning().overFetch : k));
    const found = graph.search(query, want, 0);
    const scored: { slot: number; score: number }[] = [];
    for (let i = 0; i < found.keys.length; i++) {
      const slot = Number(found.keys[i]);
      if (this.ids[slot] === undefined || !accept(slot)) continue;
      scored.push({ slot, score: 1 - found.distances[i]! });
    }
    if (scored.length >= k || (!f && scored.length >= Math.min(k, this.size))) return this.hits(scored, k);
    // Too few candidates survived the filter: the filtered set is searched exactly instead.
    return this.exact(query, k, accept);
  }

  dispose(): void {
    this.disposed = true;
    this.graph = undefined;
  }
}
