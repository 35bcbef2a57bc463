// Search: keyword (BM25, stemming, "phrases", prefix*), semantic (the embeddings module) and hybrid
// (Reciprocal Rank Fusion of both) over document chunks and facts, scoped to what the caller may see:
// their own items and the shared ones. Suggestions for a search box and search analytics.
import { z } from 'zod';
import { defineContract, operation } from '../../kernel/contract/index.js';

export const SOURCE_TYPES = ['document', 'fact'] as const;
export const MODES = ['keyword', 'semantic', 'hybrid'] as const;
export const MAX_TOP_K = 100;

const id = z.string().trim().min(1).max(200);
const tag = z.string().trim().min(1).max(100);

export const searchFilter = z
  .object({
    /** Which kinds of items to search (default both). */
    sourceTypes: z.array(z.enum(SOURCE_TYPES)).min(1).max(SOURCE_TYPES.length).optional(),
    categoryId: id.optional(),
    /** Only chunks of these documents (facts are left out when this is given). */
    documentIds: z.array(id).min(1).max(1000).optional(),
    /** Items carrying every one of these tags. */
    tags: z.array(tag).min(1).max(50).optional(),
  })
  .strict();
export type SearchFilter = z.output<typeof searchFilter>;

export const searchResult = z.object({
  /** The chunk id (`<documentId>:<run>:<seq>`) or the fact id. */
  id: z.string(),
  sourceType: z.enum(['document', 'fact', 'message']),
  /** The document or the fact. */
  sourceId: z.string(),
  title: z.string(),
  /** HTML-safe text around the match, matched words in <mark>…</mark>. */
  snippet: z.string(),
  score: z.number(),
  /** The query words found in the item. */
  highlights: z.array(z.string()).optional(),
  headingPath: z.array(z.string()).optional(),
});
export type SearchResult = z.output<typeof searchResult>;

const searchAnswer = z.object({
  items: z.array(searchResult),
  /** One source (the embeddings module) could not be asked: the answer is keyword-only. */
  degraded: z.literal(true).optional(),
});

const query = z.string().trim().min(1).max(1000);
const topK = z.coerce.number().int().min(1).max(MAX_TOP_K).default(10);

/** Longest text a retrieval may be asked with (a whole chat message); its start is the query. */
export const RETRIEVAL_QUERY_MAX = 1_000_000;

/** A source chosen for a chat turn's prompt, numbered from 1 in the order it is cited. */
export const retrievedSource = z.object({
  /** Its citation number: `[n]` in the prompt and the answer, `citations[n - 1]` on the message. */
  n: z.number().int().min(1),
  /** The chunk id (`<documentId>:<run>:<seq>`) or the fact id. */
  id: z.string(),
  sourceType: z.enum(SOURCE_TYPES),
  /** The document or the fact. */
  sourceId: z.string(),
  title: z.string(),
  headingPath: z.array(z.string()).optional(),
  /** What the prompt quotes: the chunk's text (after its headings) or the fact; cut to fit the budget when marked `…`. */
  text: z.string(),
  /** HTML-safe text around the query's words, matched words in <mark>…</mark> (as search results). */
  snippet: z.string(),
  /** The hybrid (RRF) score it was ranked by. */
  score: z.number(),
  /** Its estimated share of the token budget. */
  tokens: z.number().int().min(0),
});
export type RetrievedSource = z.output<typeof retrievedSource>;

export const retrieveOutput = z.object({
  sources: z.array(retrievedSource),
  /** Estimated tokens of all sources. */
  tokens: z.number().int().min(0),
  /** The embeddings module could not be asked: the sources come from keyword search alone. */
  degraded: z.literal(true).optional(),
});

export const searchSettings = z.object({
  rrfK: z.number().int().min(1).max(1000).default(60).describe('The k of Reciprocal Rank Fusion: score = Σ 1 / (k + rank)'),
  candidates: z.number().int().min(10).max(200).default(50).describe('Items each list (keyword, semantic) brings to the fusion'),
  snippetChars: z.number().int().min(40).max(1000).default(200).describe('Length of a result snippet'),
  suggestionsLimit: z.number().int().min(1).max(50).default(8).describe('Suggestions returned for a prefix'),
  analyticsSamples: z.number().int().min(100).max(100_000).default(2000).describe('Latest query latencies kept for the analytics percentiles'),
  retrievalTokenBudget: z.number().int().min(50).max(100_000).default(1500).describe('Tokens of sources a chat turn with knowledge puts into the prompt'),
  retrievalMaxSources: z.number().int().min(1).max(50).default(6).describe('Most sources a chat turn with knowledge puts into the prompt'),
});
export type SearchSettings = z.output<typeof searchSettings>;

const countRow = z.object({ query: z.string(), count: z.number().int() });

export const searchContract = defineContract({
  id: 'search',
  summary: 'Keyword, semantic and hybrid search over your documents and facts and the shared ones; suggestions; search analytics.',
  operations: {
    searchDocuments: operation({
      input: z.object({ query, mode: z.enum(MODES).default('hybrid'), topK, filter: searchFilter.optional() }).strict(),
      output: searchAnswer,
      idempotent: true,
      timeoutMs: 30_000,
      summary: 'Ranked search over document chunks and facts: keyword (BM25, "phrases", prefix*), semantic, or hybrid (RRF, k = 60)',
    }),
    searchSemantic: operation({
      input: z.object({ query, topK, filter: searchFilter.optional() }).strict(),
      output: searchAnswer,
      idempotent: true,
      timeoutMs: 30_000,
      summary: 'Nearest document chunks and facts by meaning (the embeddings module)',
    }),
    retrieveSources: operation({
      input: z
        .object({
          query: z.string().trim().min(1).max(RETRIEVAL_QUERY_MAX),
          /** The caller's ceiling on the sources' tokens (e.g. part of a model's context window); `retrievalTokenBudget` applies below it. */
          maxTokens: z.number().int().min(1).max(10_000_000).optional(),
          /** The caller's estimate of characters per token, so the budget counts as its prompt does. */
          charsPerToken: z.number().min(1).max(10).default(3.5),
          filter: searchFilter.optional(),
        })
        .strict(),
      output: retrieveOutput,
      idempotent: true,
      timeoutMs: 30_000,
      summary: 'The best chunks and facts for a question (hybrid) within the retrieval token budget, numbered for citing: a chat turn with knowledge',
    }),
    suggest: operation({
      input: z.object({ q: z.string().max(200).default(''), limit: z.coerce.number().int().min(1).max(50).optional() }),
      output: z.object({ items: z.array(z.string()) }),
      idempotent: true,
      summary: 'Completions of what is being typed: titles and frequent words of what you may search',
    }),
    analytics: operation({
      input: z.object({}),
      output: z.object({
        queries: z.number().int(),
        zeroResultQueries: z.number().int(),
        degradedQueries: z.number().int(),
        byMode: z.record(z.string(), z.number().int()),
        latencyMs: z.object({ samples: z.number().int(), average: z.number().nullable(), p50: z.number().nullable(), p95: z.number().nullable(), p99: z.number().nullable() }),
        topQueries: z.array(countRow),
        topZeroResultQueries: z.array(countRow),
      }),
      idempotent: true,
      summary: 'Queries, zero-result queries and latency (admins)',
    }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'unavailable'],
  settings: searchSettings,
  routes: [
    { method: 'POST', path: '/search/documents', operation: 'searchDocuments', auth: 'user' },
    { method: 'POST', path: '/search/semantic', operation: 'searchSemantic', auth: 'user' },
    { method: 'GET', path: '/search/suggestions', operation: 'suggest', auth: 'user' },
    { method: 'GET', path: '/search/analytics', operation: 'analytics', auth: 'admin' },
  ],
});
