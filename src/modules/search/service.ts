// The search operations. Every query is the caller's: it reads the caller's partition and the shared
// one of the keyword index, and asks the embeddings module only for vectors visible to the caller
// (filter `visibleTo`), checking each answer's owner again before showing it.
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { Handlers, Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext, type Actor } from '../../kernel/context/request-context.js';
import { ModuleLogger } from '../../kernel/module/tokens.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import { highlight, parseQuery, tokenize } from '../../kernel/text-index/analyzer.js';
import type { KeywordHit } from '../../kernel/text-index/keyword-index.js';
import { configContract } from '../config/contract.js';
import { embeddingsContract } from '../embeddings/contract.js';
import { SearchAnalytics } from './analytics.js';
import { searchContract, searchSettings, MAX_TOP_K, type RetrievedSource, type SearchFilter, type SearchResult } from './contract.js';
import { SearchIndex, TAG_SEP, visiblePartitions } from './search-index.js';

type UserActor = Extract<Actor, { type: 'user' }>;
type Mode = 'keyword' | 'semantic' | 'hybrid';

/** A ranked item before it is shown (its snippet is made only if it makes the page). */
interface Candidate {
  id: string;
  score: number;
  sourceType: 'document' | 'fact';
  sourceId: string;
  title: string;
  headingPath?: string[];
}

function caller(): UserActor {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  return actor;
}

/** The words a snippet marked. */
function marked(snippet: string): string[] | undefined {
  const out = new Set<string>();
  for (const m of snippet.matchAll(/<mark>(.*?)<\/mark>/g)) out.add(m[1]!.toLowerCase());
  return out.size ? [...out] : undefined;
}

/** A chunk's indexed text starts with its headings (chunkDocument): the body is what follows them. */
function bodyOf(text: string, headingPath: string[] | undefined): string {
  const head = headingPath?.length ? `${headingPath.join(' > ')}\n\n` : '';
  return head && text.startsWith(head) ? text.slice(head.length) : text;
}

/** Reciprocal Rank Fusion: each list adds 1 / (k + rank) (rank from 1) to the items it holds. */
export function fuse<T extends { id: string }>(lists: T[][], k: number): { item: T; score: number }[] {
  const acc = new Map<string, { item: T; score: number }>();
  for (const list of lists) {
    list.forEach((item, i) => {
      const cur = acc.get(item.id);
      const add = 1 / (k + i + 1);
      if (cur) cur.score += add;
      else acc.set(item.id, { item, score: add });
    });
  }
  return [...acc.values()].sort((a, b) => b.score - a.score);
}

@injectable()
export class SearchService implements Handlers<typeof searchContract> {
  readonly settings: SettingsHolder<typeof searchSettings>;

  constructor(
    @inject(SearchIndex) private readonly index: SearchIndex,
    @inject(SearchAnalytics) private readonly analyticsStore: SearchAnalytics,
    @inject(embeddingsContract.token) private readonly embeddings: Port<typeof embeddingsContract>,
    @inject(configContract.token) config: Port<typeof configContract>,
    @inject(ModuleLogger) private readonly logger: Logger,
  ) {
    this.settings = new SettingsHolder(searchSettings, async () => (await config.getModuleSettings({ module: searchContract.id })).settings, logger);
  }

  async searchDocuments(input: { query: string; mode: Mode; topK: number; filter?: SearchFilter | undefined }) {
    return this.run('documents', input.mode, input.query, input.topK, input.filter);
  }

  async searchSemantic(input: { query: string; topK: number; filter?: SearchFilter | undefined }) {
    return this.run('semantic', 'semantic', input.query, input.topK, input.filter);
  }

  /**
   * A chat turn's sources: hybrid search with the question, then, best first, every chunk or fact whose
   * text fits what is left of the token budget (the lesser of `retrievalTokenBudget` and the caller's
   * `maxTokens`), at most `retrievalMaxSources`. One that does not fit is passed over for a shorter one
   * further down; the best one alone is cut to fit when it is longer than the whole budget. Numbered
   * from 1 in that order.
   */
  async retrieveSources(input: { query: string; maxTokens?: number | undefined; charsPerToken: number; filter?: SearchFilter | undefined }) {
    const s = this.settings.current();
    const budget = Math.min(s.retrievalTokenBudget, input.maxTokens ?? Infinity);
    const cpt = input.charsPerToken;
    // A whole message is the question; its start is what a search query may hold.
    const query = input.query.slice(0, 1000).trim();
    const answer = await this.run('retrieve', 'hybrid', query, Math.min(MAX_TOP_K, s.retrievalMaxSources * 4), input.filter, true);
    const sources: RetrievedSource[] = [];
    let left = budget;
    for (const item of answer.items) {
      if (sources.length >= s.retrievalMaxSources) break;
      const full = item.text?.trim();
      if (!full) continue;
      // The source's label ([n], title, headings) counts too.
      const label = item.title.length + (item.headingPath?.join(' > ').length ?? 0) + 12;
      const cost = (text: string) => Math.ceil((label + text.length) / cpt);
      let text = full;
      if (cost(text) > left) {
        const room = Math.floor(left * cpt) - label - 1;
        if (sources.length > 0 || room < 20) continue;
        const cut = full.slice(0, room);
        text = `${cut.slice(0, cut.lastIndexOf(' ') > room / 2 ? cut.lastIndexOf(' ') : room).trimEnd()}…`;
      }
      left -= cost(text);
      const { text: _omit, highlights: _h, ...shown } = item;
      sources.push({ ...shown, sourceType: item.sourceType as RetrievedSource['sourceType'], n: sources.length + 1, text, tokens: cost(text) });
    }
    const tokens = sources.reduce((sum, x) => sum + x.tokens, 0);
    return answer.degraded ? { sources, tokens, degraded: true as const } : { sources, tokens };
  }

  /** `withText`: each item with its whole text besides (for retrieval). */
  private async run(operation: 'documents' | 'semantic' | 'retrieve', mode: Mode, query: string, topK: number, filter: SearchFilter | undefined, withText = false) {
    const user = caller();
    const started = performance.now();
    const s = this.settings.current();
    const want = Math.max(topK, mode === 'hybrid' ? s.candidates : topK);
    let ranked: Candidate[];
    let degraded = false;
    if (mode === 'keyword') {
      ranked = this.keyword(user.id, query, want, filter);
    } else if (mode === 'semantic') {
      ranked = await this.semantic(user.id, query, want, filter);
    } else {
      const keyword = this.keyword(user.id, query, want, filter);
      let semantic: Candidate[] = [];
      try {
        semantic = await this.semantic(user.id, query, want, filter);
      } catch (err) {
        // Keyword search alone is still an answer; the caller is told it is one.
        this.logger.warn({ err: (err as Error).message }, 'semantic search unavailable; answering keyword-only');
        degraded = true;
      }
      ranked = degraded ? keyword : fuse([keyword, semantic], s.rrfK).map(({ item, score }) => ({ ...item, score }));
    }
    // Snippets only for what is shown: highlighting every candidate would cost more than ranking them.
    const parsed = parseQuery(query);
    const items = ranked.slice(0, topK).map((c) => this.present(c, parsed, user.id, s.snippetChars, withText));
    this.analyticsStore.record({ operation, mode, query, results: items.length, degraded, ms: performance.now() - started });
    return degraded ? { items, degraded: true as const } : { items };
  }

  /** A result as shown; `withText`: with the item's whole text besides (without a chunk's headings). */
  private present(c: Candidate, parsed: ReturnType<typeof parseQuery>, userId: string, width: number, withText = false): SearchResult & { text?: string } {
    let stored: { text: string; fields: Record<string, string> } | undefined;
    for (const p of visiblePartitions(userId)) stored ??= this.index.items.get(p, c.id);
    const snippet = stored ? highlight(stored.text, parsed, width) : '';
    const highlights = marked(snippet);
    const f = stored?.fields;
    const title = f?.ti ?? c.title;
    const headingPath = f?.h ? f.h.split(TAG_SEP) : c.headingPath;
    return {
      id: c.id,
      sourceType: c.sourceType,
      sourceId: c.sourceId,
      title,
      snippet,
      score: c.score,
      ...(highlights ? { highlights } : {}),
      ...(headingPath?.length ? { headingPath } : {}),
      ...(withText ? { text: stored ? bodyOf(stored.text, f?.h ? headingPath : undefined) : '' } : {}),
    };
  }

  private filterFn(filter: SearchFilter | undefined): ((f: Record<string, string>) => boolean) | undefined {
    if (!filter) return undefined;
    const types = filter.sourceTypes ? new Set<string>(filter.sourceTypes) : undefined;
    const docs = filter.documentIds ? new Set(filter.documentIds) : undefined;
    const { categoryId, tags } = filter;
    return (f) => {
      if (types && !types.has(f.t!)) return false;
      if (docs && (f.t !== 'document' || !docs.has(f.s!))) return false;
      if (categoryId !== undefined && f.c !== categoryId) return false;
      if (tags) {
        const has = f.g ? f.g.split(TAG_SEP) : [];
        if (!tags.every((t) => has.includes(t))) return false;
      }
      return true;
    };
  }

  keyword(userId: string, query: string, limit: number, filter: SearchFilter | undefined): Candidate[] {
    const fn = this.filterFn(filter);
    const hits: KeywordHit[] = [];
    for (const p of visiblePartitions(userId)) hits.push(...this.index.items.search(p, query, { limit, highlight: false, ...(fn ? { filter: fn } : {}) }));
    return hits
      .sort((a, b) => b.score - a.score)
      .slice(0, limit)
      .map((h) => ({ id: h.id, score: h.score, sourceType: h.fields.t === 'fact' ? 'fact' : 'document', sourceId: h.fields.s ?? h.id, title: h.fields.ti ?? '' }));
  }

  async semantic(userId: string, query: string, limit: number, filter: SearchFilter | undefined): Promise<Candidate[]> {
    const types = filter?.sourceTypes ?? ['document', 'fact'];
    // A documents filter leaves facts out, as in keyword search.
    const collections = (['documents', 'facts'] as const).filter((c) => types.includes(c === 'documents' ? 'document' : 'fact') && !(c === 'facts' && filter?.documentIds));
    const vectorFilter = {
      visibleTo: userId,
      ...(filter?.categoryId ? { categoryId: filter.categoryId } : {}),
      ...(filter?.tags ? { tags: filter.tags } : {}),
    };
    const answers = await Promise.all(
      collections.map((collection) =>
        this.embeddings.search({
          collection,
          query: query.slice(0, 100_000),
          topK: Math.min(200, limit),
          filter: collection === 'documents' && filter?.documentIds ? { ...vectorFilter, documentIds: filter.documentIds } : vectorFilter,
        }),
      ),
    );
    const out: Candidate[] = [];
    answers.forEach((answer, i) => {
      const sourceType = collections[i] === 'documents' ? ('document' as const) : ('fact' as const);
      for (const item of answer.items) {
        const m = item.metadata;
        // Never trust a filter alone with someone else's private item.
        if (m.ownerId !== userId && m.shared !== true) continue;
        const headingPath = Array.isArray(m.headingPath) ? (m.headingPath as unknown[]).map(String) : undefined;
        out.push({
          id: item.id,
          sourceType,
          sourceId: sourceType === 'document' ? String(m.documentId ?? item.id) : item.id,
          title: m.title ?? '',
          score: item.score,
          ...(headingPath ? { headingPath } : {}),
        });
      }
    });
    return out.sort((a, b) => b.score - a.score).slice(0, limit);
  }

  async suggest(input: { q: string; limit?: number | undefined }) {
    const user = caller();
    const limit = input.limit ?? this.settings.current().suggestionsLimit;
    const words = tokenize(input.q);
    if (!words.length || /\s$/.test(input.q)) return { items: [] };
    const last = words.at(-1)!;
    const headText = input.q.slice(0, input.q.toLowerCase().lastIndexOf(last.toLowerCase())).replace(/\s+/g, ' ');
    const out: string[] = [];
    const seen = new Set<string>();
    const push = (s: string) => {
      const key = s.toLowerCase();
      if (!seen.has(key) && out.length < limit) {
        seen.add(key);
        out.push(s);
      }
    };
    // Titles first: whole names of the caller's (and shared) documents whose words match.
    const prefixQuery = [...words.slice(0, -1), `${last.replace(/\*$/, '')}*`].join(' ');
    const titles: KeywordHit[] = [];
    for (const p of visiblePartitions(user.id)) titles.push(...this.index.titles.search(p, prefixQuery, { limit }));
    for (const t of titles.sort((a, b) => b.score - a.score)) push(t.fields.ti ?? '');
    // Then frequent words completing the last one, after what was typed before it.
    const counts = new Map<string, number>();
    for (const p of visiblePartitions(user.id)) for (const { term, docs } of this.index.items.terms(p, last, limit * 2)) counts.set(term, (counts.get(term) ?? 0) + docs);
    const terms = [...counts].sort((a, b) => b[1] - a[1]).map(([t]) => t);
    for (const t of terms) if (t !== last.toLowerCase()) push(`${headText}${t}`);
    return { items: out.filter(Boolean) };
  }

  async analytics(_input: Record<string, never>) {
    const user = caller();
    if (!user.roles.includes('admin')) throw new ContractError('forbidden', 'admins only');
    return this.analyticsStore.summary();
  }
}
