// Text to vectors and back: embedding providers chosen per collection (a built-in zero-download
// embedder, Ollama, or a local ONNX model through the accelerator), and durable vector collections with
// filtered similarity search. Every vector records the model and dimension that made it.
import { z } from 'zod';
import { defineContract, operation } from '../../kernel/contract/index.js';

export const COLLECTIONS = ['documents', 'facts'] as const;
export const PROVIDERS = ['builtin', 'ollama', 'onnx'] as const;
/** The built-in embedder's model id: feature hashing, 384 dimensions; matches wording, not meaning. */
export const BUILTIN_MODEL = 'autobot-hash-384';
export const BUILTIN_DIMENSIONS = 384;

export const MAX_TEXTS = 512;
export const MAX_TEXT_CHARS = 100_000;
export const MAX_TOP_K = 200;

const collection = z.enum(COLLECTIONS);
const provider = z.enum(PROVIDERS);
const text = z.string().max(MAX_TEXT_CHARS, `at most ${MAX_TEXT_CHARS} characters`);
const id = z.string().min(1).max(200);
const tag = z.string().min(1).max(100);

/** What a vector carries besides itself. `ownerId` scopes it; extra JSON fields travel untouched. */
export const vectorMetadata = z
  .object({
    ownerId: z.string().min(1).max(200),
    documentId: id.optional(),
    categoryId: z.string().max(200).nullable().optional(),
    tags: z.array(tag).max(100).optional(),
    shared: z.boolean().optional(),
    title: z.string().max(1000).optional(),
  })
  .catchall(z.json());

const metadataPatch = z
  .object({
    shared: z.boolean().optional(),
    categoryId: z.string().max(200).nullable().optional(),
    tags: z.array(tag).max(100).optional(),
  })
  .refine((p) => p.shared !== undefined || p.categoryId !== undefined || p.tags !== undefined, 'name at least one of shared, categoryId, tags');

const searchFilter = z.object({
  ownerId: z.string().min(1).max(200).optional(),
  /** The vectors this user may see: their own and the shared ones. */
  visibleTo: z.string().min(1).max(200).optional(),
  documentIds: z.array(id).max(10_000).optional(),
  categoryId: z.string().min(1).max(200).optional(),
  /** Matches vectors carrying every one of these tags. */
  tags: z.array(tag).max(50).optional(),
});

const embeddingsOut = z.object({ model: z.string(), dimensions: z.number().int(), embeddings: z.array(z.array(z.number())) });

const modelView = z.object({
  id: z.string(),
  provider,
  dimensions: z.number().int(),
  /** The model of a collection (by default settings) — `documents` and `facts` may differ. */
  default: z.boolean(),
  /** `ready`: usable now; `unavailable`: its provider cannot be reached or its files are missing. */
  status: z.enum(['ready', 'unavailable']),
  collections: z.array(collection),
  detail: z.string().optional(),
});

export const embeddingsSettings = z.object({
  documentsProvider: provider.default('builtin').describe('Embedding provider of the documents collection (chunks); changing it needs a reindex'),
  factsProvider: provider.default('builtin').describe('Embedding provider of the facts collection; changing it needs a reindex'),
  ollamaModel: z.string().min(1).max(200).default('nomic-embed-text').describe('Ollama embedding model (through the llm module)'),
  ollamaDimensions: z.number().int().min(1).max(8192).default(768).describe('Dimensions the Ollama model produces'),
  onnxModel: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a directory name under <data dir>/models')
    .default('all-MiniLM-L6-v2')
    .describe('Directory under <data dir>/models holding model.onnx and tokenizer.json'),
  onnxDimensions: z.number().int().min(1).max(8192).default(384).describe('Dimensions the ONNX model produces'),
  onnxMaxTokens: z.number().int().min(8).max(8192).default(256).describe('Tokens per text given to the ONNX model (longer texts are cut)'),
  batchSize: z.number().int().min(1).max(512).default(32).describe('Texts per call to a provider'),
  cache: z.boolean().default(true).describe('Cache embeddings by model and content hash, so the same text is never embedded twice'),
  cacheTtlDays: z.number().int().min(1).max(3650).default(30).describe('Days a cached embedding is kept'),
  searchOverFetch: z.number().int().min(1).max(100).default(4).describe('Candidates fetched per wanted result before filtering'),
  exactSearchBelow: z.number().int().min(0).max(1_000_000).default(2000).describe('Filtered sets this small are searched exactly'),
});
export type EmbeddingsSettings = z.output<typeof embeddingsSettings>;

export const embeddingsContract = defineContract({
  id: 'embeddings',
  summary: 'Embedding generation (built-in, Ollama, ONNX) and durable vector collections with filtered similarity search.',
  operations: {
    generate: operation({
      input: z.object({
        texts: z.array(text).min(1).max(MAX_TEXTS),
        model: z.string().min(1).max(200).optional(),
      }),
      output: embeddingsOut,
      idempotent: true,
      timeoutMs: 120_000,
      summary: 'Embeds texts with a model (default: the documents collection model)',
    }),
    upsert: operation({
      input: z.object({
        collection,
        items: z.array(z.object({ id, text, metadata: vectorMetadata })).min(1).max(MAX_TEXTS),
      }),
      output: z.object({ upserted: z.number().int(), model: z.string(), dimensions: z.number().int() }),
      idempotent: true,
      timeoutMs: 120_000,
      summary: "Embeds with the collection's model (cached by model and content) and stores the vectors; the same id replaces",
    }),
    remove: operation({
      input: z
        .object({ collection, ids: z.array(id).max(100_000).optional(), documentId: id.optional() })
        .refine((i) => i.ids !== undefined || i.documentId !== undefined, { message: 'give ids or documentId', path: ['ids'] }),
      output: z.object({ removed: z.number().int() }),
      idempotent: true,
      timeoutMs: 60_000,
    }),
    setMetadata: operation({
      input: z.object({ collection, documentId: id, patch: metadataPatch }),
      output: z.object({ updated: z.number().int() }),
      idempotent: true,
      timeoutMs: 60_000,
      summary: "Changes sharing, category or tags of every vector of a document",
    }),
    search: operation({
      input: z
        .object({
          collection,
          query: z.string().min(1).max(MAX_TEXT_CHARS).optional(),
          vector: z.array(z.number().finite()).min(1).max(8192).optional(),
          topK: z.number().int().min(1).max(MAX_TOP_K).default(10),
          filter: searchFilter.optional(),
        })
        .refine((i) => (i.query === undefined) !== (i.vector === undefined), { message: 'give exactly one of query and vector', path: ['query'] }),
      output: z.object({
        items: z.array(z.object({ id: z.string(), score: z.number(), metadata: vectorMetadata })),
        model: z.string(),
        dimensions: z.number().int(),
      }),
      idempotent: true,
      timeoutMs: 30_000,
      summary: 'Nearest vectors by cosine similarity; a vector of another dimension than the collection is 409 conflict',
    }),
    listModels: operation({
      input: z.object({}),
      output: z.object({ items: z.array(modelView) }),
      idempotent: true,
    }),
    listCollections: operation({
      input: z.object({}),
      output: z.object({
        items: z.array(
          z.object({
            collection,
            /** The model its vectors were made with (null: empty, takes the configured model on the next write). */
            model: z.string().nullable(),
            dimensions: z.number().int().nullable(),
            vectors: z.number().int(),
            configuredModel: z.string(),
            /** The configured model differs from the vectors': reset the collection and reindex. */
            needsReindex: z.boolean(),
            index: z.enum(['empty', 'exact', 'building', 'hnsw']),
            /** The HNSW graph was loaded from this instance's snapshot at start, not rebuilt. */
            graphFromSnapshot: z.boolean(),
          }),
        ),
      }),
      idempotent: true,
    }),
    resetCollection: operation({
      input: z.object({ collection }),
      output: z.object({ removed: z.number().int() }),
      idempotent: true,
      timeoutMs: 60_000,
      summary: 'Drops every vector of a collection so it can take another model (then reindex its sources)',
    }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'not_found', 'conflict', 'unavailable', 'timeout'],
  settings: embeddingsSettings,
  routes: [
    { method: 'POST', path: '/embeddings/generate', operation: 'generate', auth: 'user', rateLimit: 'expensive' },
    { method: 'POST', path: '/embeddings/search', operation: 'search', auth: 'user' },
    { method: 'GET', path: '/embeddings/models', operation: 'listModels', auth: 'user' },
    { method: 'GET', path: '/embeddings/collections', operation: 'listCollections', auth: 'admin' },
    { method: 'DELETE', path: '/embeddings/collections/:collection', operation: 'resetCollection', auth: 'admin' },
  ],
});
