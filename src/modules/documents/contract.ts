// Documents: a user's files turned into searchable knowledge. An upload answers at once; the work runs
// as durable jobs, one per stage (parse → chunk → embed → index), pushed live to the owner as
// `document:progress`, cancellable between stages and embedding batches, resumed after a crash.
import { z } from 'zod';
import { defineContract, event, operation, uploadOperation } from '../../kernel/contract/index.js';

export const DOCUMENT_STATUSES = ['queued', 'parsing', 'chunking', 'embedding', 'indexed', 'failed', 'cancelled'] as const;
export const STAGES = ['parse', 'chunk', 'embed', 'index'] as const;
export type DocumentStatus = (typeof DOCUMENT_STATUSES)[number];
export type Stage = (typeof STAGES)[number];

/** The formats the pipeline reads (by media type sniffed from the bytes). */
export const SUPPORTED_MEDIA_TYPES = [
  'text/plain',
  'text/markdown',
  'text/html',
  'text/csv',
  'application/json',
  'application/pdf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
] as const;

const status = z.enum(DOCUMENT_STATUSES);
const id = z.string().min(1).max(100);
const tag = z.string().trim().min(1).max(100);

export const documentView = z.object({
  id: z.string(),
  name: z.string(),
  mediaType: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  fileId: z.string(),
  shared: z.boolean(),
  status,
  /** The stage running or last run; null before the first. */
  stage: z.enum(STAGES).nullable(),
  progress: z.number().min(0).max(1),
  chunkCount: z.number().int(),
  categoryId: z.string().nullable(),
  tags: z.array(z.string()),
  /** The page it was read from (documents added with `POST /documents/url`). */
  sourceUrl: z.string().optional(),
  /** Why it failed: the stage and the reason (`parse: the PDF is encrypted`). */
  error: z.string().optional(),
  createdAt: z.string(),
  indexedAt: z.string().optional(),
});
export type DocumentView = z.output<typeof documentView>;

export const chunkView = z.object({
  id: z.string(),
  documentId: z.string(),
  seq: z.number().int(),
  text: z.string(),
  /** The headings above the chunk, outermost first. */
  headingPath: z.array(z.string()),
  /** The (first) page it comes from, for paged formats (PDF). */
  page: z.number().int().nullable(),
});
export type ChunkView = z.output<typeof chunkView>;

const progressPayload = z.object({ documentId: z.string(), status, stage: z.enum(STAGES).nullable(), progress: z.number() });
export type DocumentProgress = z.output<typeof progressPayload>;

export const documentsSettings = z.object({
  maxFilesPerUpload: z.number().int().min(1).max(1000).default(50).describe('Files in one upload request'),
  chunkSize: z.number().int().min(200).max(20_000).default(1200).describe('Target chunk length in characters'),
  chunkOverlap: z.number().int().min(0).max(5000).default(200).describe('Characters a chunk repeats from the previous one in the same section'),
  embedBatchSize: z.number().int().min(1).max(512).default(64).describe('Chunks per embeddings call (cancellation is checked between batches)'),
  inlineStagesMaxBytes: z
    .number()
    .int()
    .min(0)
    .max(1024 ** 3)
    .default(256 * 1024)
    .describe('Files up to this size run their stages one after another in one job (status, progress and cancel per stage as ever); larger ones get a job per stage'),
  concurrency: z.number().int().min(1).max(64).default(8).describe('Pipeline jobs run at once by one process'),
  attempts: z.number().int().min(1).max(20).default(5).describe('Tries of a stage before a transient failure fails the document'),
  backoffMs: z.number().int().min(10).max(600_000).default(1000).describe('First retry delay (doubles each time)'),
  maxTextChars: z.number().int().min(1000).max(100_000_000).default(10_000_000).describe('Longest extracted text accepted'),
  maxUnzippedBytes: z.number().int().min(1024).max(4 * 1024 ** 3).default(256 * 1024 ** 2).describe('What a docx may expand to when unzipped (zip bombs)'),
  jobLockMs: z.number().int().min(500).max(600_000).default(30_000).describe('Job lease: a crashed process’s jobs are taken over after this'),
  stalledCheckMs: z.number().int().min(100).max(600_000).default(15_000).describe('How often to look for jobs of crashed processes'),
});
export type DocumentsSettings = z.output<typeof documentsSettings>;

/** An absolute http(s) URL (the browser module's SSRF guard then decides whether it may be read). */
const webUrl = z
  .string()
  .trim()
  .max(4096)
  .refine((u) => URL.canParse(u) && ['http:', 'https:'].includes(new URL(u).protocol), 'an absolute http:// or https:// URL');

const page = { limit: z.coerce.number().int().min(1).max(100).default(20), cursor: z.string().regex(/^\d{1,12}$/, 'a nextCursor from a previous page').optional() };

export const documentsContract = defineContract({
  id: 'documents',
  summary: 'Document upload and the ingestion pipeline: parse, chunk, embed, index; progress, cancel, reindex, delete.',
  operations: {
    upload: uploadOperation({
      input: z.object({}),
      output: z.object({ items: z.array(documentView) }),
      bodyTypes: ['multipart/form-data'],
      form: z.object({
        file: z.array(z.file()).describe('one or more files: txt, md, html, pdf, docx, csv, json'),
        categoryId: z.string().optional(),
        tags: z.array(z.string()).optional().describe('repeated fields or one comma-separated field'),
      }),
      timeoutMs: 30 * 60_000,
      summary: 'Uploads documents (multipart `file` parts); answers at once while they are processed',
    }),
    addUrl: operation({
      input: z.object({
        url: webUrl,
        categoryId: z.string().trim().min(1).max(200).optional(),
        tags: z.array(tag).max(50).optional(),
      }),
      output: documentView,
      // The page is read first (through the browser module, up to its navigation timeout), then queued.
      timeoutMs: 150_000,
      summary: 'Reads a web page through the browser module (SSRF rules apply) and puts its text into the pipeline as a Markdown document',
    }),
    listDocuments: operation({
      input: z.object({ status: status.optional(), ...page }),
      output: z.object({ items: z.array(documentView), nextCursor: z.string().nullable() }),
      idempotent: true,
    }),
    getDocument: operation({ input: z.object({ id }), output: documentView, idempotent: true }),
    updateDocument: operation({
      input: z.object({
        id,
        categoryId: z.string().trim().min(1).max(200).nullable().optional(),
        tags: z.array(tag).max(50).optional(),
        shared: z.boolean().optional(),
      }),
      output: documentView,
      idempotent: true,
      summary: 'Changes category, tags or (admins only) sharing; the vectors follow',
    }),
    getContent: operation({
      input: z.object({ id }),
      output: z.object({ id: z.string(), name: z.string(), text: z.string() }),
      idempotent: true,
      timeoutMs: 30_000,
      summary: 'The text extracted from the document (Markdown)',
    }),
    listChunks: operation({
      input: z.object({ id, ownerId: z.string().min(1).max(200).optional(), ...page, limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      output: z.object({ items: z.array(chunkView), nextCursor: z.string().nullable() }),
      idempotent: true,
      summary: 'The chunks of an indexed document (for keyword indexes)',
    }),
    reindex: operation({ input: z.object({ id }), output: documentView, summary: 'Runs the pipeline again (e.g. after the embedding model changed)' }),
    cancel: operation({ input: z.object({ id }), output: documentView, idempotent: true, summary: 'Stops processing and removes what it wrote' }),
    deleteDocument: operation({ input: z.object({ id }), output: z.null(), idempotent: true, timeoutMs: 60_000 }),
  },
  events: {
    'documents.document.indexed': event({
      payload: z.object({
        documentId: z.string(),
        ownerId: z.string(),
        name: z.string(),
        mediaType: z.string(),
        categoryId: z.string().nullable(),
        tags: z.array(z.string()),
        shared: z.boolean(),
        chunkCount: z.number().int(),
        /** Bumped by every reindex: an index keeps the latest run only. */
        run: z.number().int(),
        indexedAt: z.string(),
      }),
      summary: 'A document is searchable; its chunks are readable with listChunks',
    }),
    'documents.document.updated': event({
      payload: z.object({ documentId: z.string(), ownerId: z.string(), categoryId: z.string().nullable(), tags: z.array(z.string()), shared: z.boolean() }),
    }),
    'documents.document.deleted': event({ payload: z.object({ documentId: z.string(), ownerId: z.string() }) }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'not_found', 'conflict', 'payload_too_large', 'unsupported_media_type', 'unavailable', 'timeout'],
  settings: documentsSettings,
  routes: [
    { method: 'POST', path: '/documents/upload', operation: 'upload', auth: 'user', status: 202 },
    { method: 'POST', path: '/documents/url', operation: 'addUrl', auth: 'user', status: 202, rateLimit: 'expensive' },
    { method: 'GET', path: '/documents', operation: 'listDocuments', auth: 'user' },
    { method: 'GET', path: '/documents/:id', operation: 'getDocument', auth: 'user' },
    { method: 'PATCH', path: '/documents/:id', operation: 'updateDocument', auth: 'user' },
    { method: 'GET', path: '/documents/:id/content', operation: 'getContent', auth: 'user' },
    { method: 'GET', path: '/documents/:id/chunks', operation: 'listChunks', auth: 'user' },
    { method: 'POST', path: '/documents/:id/reindex', operation: 'reindex', auth: 'user', status: 202 },
    { method: 'POST', path: '/documents/:id/cancel', operation: 'cancel', auth: 'user' },
    { method: 'DELETE', path: '/documents/:id', operation: 'deleteDocument', auth: 'user', status: 204 },
  ],
});

export { progressPayload as documentProgressSchema };
