// Blob storage for every user's files: uploads streamed to disk under the data directory, stored by id
// with their SHA-256 and a media type sniffed from the content, per-user quota, downloads as
// attachments. Other modules store and read files through the same door (`storeFile`, `getContent`).
import { z } from 'zod';
import { defineContract, downloadOperation, operation, uploadOperation } from '../../kernel/contract/index.js';

const MIB = 1024 * 1024;

export const fileView = z.object({
  id: z.string(),
  name: z.string(),
  mediaType: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string(),
  createdAt: z.string(),
});
export type FileView = z.output<typeof fileView>;

const fileId = z.string().min(1).max(100);
/** Only a service (another module) names the owner; a user's own files are the actor's. */
const ownerId = z.string().min(1).max(200).optional();
const fileName = z.string().trim().min(1).max(255);

export const filesSettings = z.object({
  maxFileBytes: z.number().int().min(1).default(100 * MIB).describe('Largest file accepted, in bytes'),
  maxRequestBytes: z.number().int().min(1).default(200 * MIB).describe('Largest upload request (all its parts), in bytes'),
  quotaBytes: z.number().int().min(0).default(5 * 1024 * MIB).describe('Bytes of files one user may keep'),
});
export type FilesSettings = z.output<typeof filesSettings>;

const limitsView = z.object({
  maxFileBytes: z.number().int(),
  maxRequestBytes: z.number().int(),
  quotaBytes: z.number().int(),
  usedBytes: z.number().int(),
  fileCount: z.number().int(),
});

export const filesContract = defineContract({
  id: 'files',
  summary: 'Files: streamed uploads stored by id with SHA-256 and sniffed media type, quotas, downloads.',
  operations: {
    uploadFile: uploadOperation({
      input: z.object({}),
      output: fileView,
      bodyTypes: ['multipart/form-data'],
      form: z.object({ file: z.file() }),
      timeoutMs: 30 * 60_000,
      summary: 'Uploads one file (multipart part `file`)',
    }),
    storeFile: uploadOperation({
      input: z.object({ name: fileName, ownerId }),
      output: fileView,
      bodyTypes: ['*/*'],
      timeoutMs: 30 * 60_000,
      summary: "Stores the body's bytes as a file (for modules that parse their own uploads)",
    }),
    listFiles: operation({
      input: z.object({ limit: z.coerce.number().int().min(1).max(100).default(20), cursor: z.string().regex(/^\d{1,12}$/, 'a nextCursor from a previous page').optional() }),
      output: z.object({ items: z.array(fileView), nextCursor: z.string().nullable() }),
      idempotent: true,
    }),
    getFile: operation({ input: z.object({ id: fileId, ownerId }), output: fileView, idempotent: true }),
    getContent: downloadOperation({
      input: z.object({ id: fileId, ownerId }),
      summary: 'The file as an attachment',
    }),
    deleteFile: operation({ input: z.object({ id: fileId, ownerId }), output: z.null(), idempotent: true }),
    getUsage: operation({
      input: z.object({ ownerId }),
      output: limitsView,
      idempotent: true,
      summary: "The limits in force and the caller's usage",
    }),
  },
  errors: ['invalid_input', 'unauthenticated', 'not_found', 'payload_too_large', 'unsupported_media_type'],
  settings: filesSettings,
  routes: [
    { method: 'POST', path: '/files', operation: 'uploadFile', auth: 'user', status: 201 },
    { method: 'GET', path: '/files', operation: 'listFiles', auth: 'user' },
    { method: 'GET', path: '/files/usage', operation: 'getUsage', auth: 'user' },
    { method: 'GET', path: '/files/:id', operation: 'getFile', auth: 'user' },
    { method: 'GET', path: '/files/:id/content', operation: 'getContent', auth: 'user' },
    { method: 'DELETE', path: '/files/:id', operation: 'deleteFile', auth: 'user', status: 204 },
  ],
});
