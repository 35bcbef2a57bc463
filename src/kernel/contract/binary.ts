// Bytes on the contract's wire: what every binding checks about an upload's body and a download's head,
// and how the edge names a downloaded file safely. Shared by the local and HTTP bindings, the RPC
// server and the gateway, so uploads and downloads behave the same wherever a module runs.
import { z } from 'zod';
import type { DownloadHead, UploadOperation } from './define.js';
import { ContractError } from './errors.js';

const isAsyncIterable = (v: unknown): v is AsyncIterable<Uint8Array> =>
  typeof v === 'object' && v !== null && typeof (v as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';

export const downloadHeadSchema = z.object({
  contentType: z
    .string()
    .min(3)
    .max(200)
    .regex(/^[\w.+-]+\/[\w.+-]+(\s*;\s*[\w.+-]+=("[^"\r\n]*"|[\w.+-]+))*$/, 'a media type'),
  size: z.number().int().nonnegative().optional(),
  fileName: z.string().max(1000).optional(),
  disposition: z.enum(['attachment', 'inline']),
});

/** A download as a handler answers it: the head, and a body that can be iterated. */
export const downloadSchema = downloadHeadSchema.extend({
  body: z.custom<AsyncIterable<Uint8Array>>(isAsyncIterable, 'an async iterable of bytes'),
});

export function headOf(d: DownloadHead): DownloadHead {
  return {
    contentType: d.contentType,
    disposition: d.disposition,
    ...(d.size !== undefined ? { size: d.size } : {}),
    ...(d.fileName !== undefined ? { fileName: d.fileName } : {}),
  };
}

/** `multipart/form-data; boundary=x` → `multipart/form-data`. */
export function mediaTypeEssence(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Refuses a body whose media type the operation does not take, before a byte of it is read. */
export function checkBodyType(op: UploadOperation, contentType: string | undefined): void {
  const essence = mediaTypeEssence(contentType);
  const ok = op.bodyTypes.some((t) => t === '*/*' || t.toLowerCase() === essence || (t.endsWith('/*') && essence.startsWith(t.slice(0, -1))));
  if (!ok) {
    throw new ContractError('unsupported_media_type', `send ${op.bodyTypes.join(' or ')}, not ${essence || 'an untyped body'}`);
  }
}

/**
 * A file name safe to offer in Content-Disposition: no directories, no control characters, no quotes,
 * bounded length; `fallback` when nothing is left.
 */
export function safeFileName(name: string | undefined, fallback = 'download'): string {
  const base = (name ?? '').split(/[\\/]/).pop() ?? '';
  // Control characters (C0, DEL, C1), quotes and characters Windows refuses in file names.
  // eslint-disable-next-line no-control-regex -- removing control characters is the point
  const cleaned = base.replace(/[\u0000-\u001f\u007f-\u009f"*:<>?|]/g, '_').replace(/^[.\s]+/, '').trim();
  const bounded = [...cleaned].slice(0, 200).join('');
  return bounded || fallback;
}

/** `attachment; filename="ascii"; filename*=UTF-8''utf8` (RFC 6266 / RFC 5987). */
export function contentDisposition(disposition: 'attachment' | 'inline', fileName: string | undefined): string {
  if (fileName === undefined) return disposition;
  const name = safeFileName(fileName);
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/[\\%]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return ascii === name ? `${disposition}; filename="${ascii}"` : `${disposition}; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
