// The media type of a stored file, from its bytes, never from what the client claimed. Zip containers
// (docx, xlsx, pptx, odt…) are told apart by the names in their central directory only, without
// inflating anything: a zip bomb is sniffed as safely as any other file. Formats file-type cannot
// sniff (plain text, Markdown, CSV, JSON, HTML) are recognised as text, then by content and extension.
// file-type (and the tokenizer stack under it) is loaded on the first file that needs sniffing.
import { open } from 'node:fs/promises';

const TEXT_HEAD_BYTES = 64 * 1024;
const ZIP_TAIL_BYTES = 66_000; // the end-of-central-directory record sits within the last 64 KiB + 22 bytes
const MAX_ZIP_ENTRIES_READ = 5000;

export const MEDIA_TYPES = {
  text: 'text/plain',
  markdown: 'text/markdown',
  csv: 'text/csv',
  json: 'application/json',
  html: 'text/html',
  pdf: 'application/pdf',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text',
  zip: 'application/zip',
  binary: 'application/octet-stream',
} as const;

async function readRange(filePath: string, start: number, length: number): Promise<Buffer> {
  const fh = await open(filePath, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, start);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Names in a zip's central directory (bounded), or undefined when it has none we can read. */
async function zipEntryNames(filePath: string, size: number): Promise<string[] | undefined> {
  const tailStart = Math.max(0, size - ZIP_TAIL_BYTES);
  const tail = await readRange(filePath, tailStart, size - tailStart);
  const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0 || eocd + 22 > tail.length) return undefined;
  const entries = tail.readUInt16LE(eocd + 10);
  const cdSize = tail.readUInt32LE(eocd + 12);
  const cdOffset = tail.readUInt32LE(eocd + 16);
  if (cdOffset + cdSize > size || cdSize > 8 * 1024 * 1024) return undefined;
  const cd = await readRange(filePath, cdOffset, cdSize);
  const names: string[] = [];
  let p = 0;
  for (let i = 0; i < Math.min(entries, MAX_ZIP_ENTRIES_READ) && p + 46 <= cd.length; i++) {
    if (cd.readUInt32LE(p) !== 0x02014b50) break;
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    names.push(cd.toString('utf8', p + 46, p + 46 + nameLen));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return names;
}

function zipKind(names: string[]): string {
  const has = (n: string) => names.includes(n);
  if (has('[Content_Types].xml')) {
    if (names.some((n) => n.startsWith('word/'))) return MEDIA_TYPES.docx;
    if (names.some((n) => n.startsWith('xl/'))) return MEDIA_TYPES.xlsx;
    if (names.some((n) => n.startsWith('ppt/'))) return MEDIA_TYPES.pptx;
  }
  if (has('mimetype') && has('content.xml')) return MEDIA_TYPES.odt;
  return MEDIA_TYPES.zip;
}

function extensionOf(name: string): string {
  const m = /\.([A-Za-z0-9]+)$/.exec(name);
  return m ? m[1]!.toLowerCase() : '';
}

function decodeText(head: Buffer): string | undefined {
  if (head.includes(0)) return undefined;
  try {
    // `stream: true` tolerates a character cut at the end of the sample.
    return new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: true }).replace(/^\uFEFF/, '');
  } catch {
    return undefined;
  }
}

function textKind(text: string, name: string, complete: boolean): string {
  const ext = extensionOf(name);
  const start = text.trimStart().slice(0, 2048).toLowerCase();
  if (/^(<!doctype html|<html[\s>])/.test(start) || (/^<(head|body|meta|title|div|p|h1)[\s>]/.test(start) && ['html', 'htm'].includes(ext))) {
    return MEDIA_TYPES.html;
  }
  if (start.startsWith('{') || start.startsWith('[')) {
    if (ext === 'json') return MEDIA_TYPES.json;
    if (complete) {
      try {
        JSON.parse(text);
        return MEDIA_TYPES.json;
      } catch {
        // not JSON after all: plain text
      }
    }
  }
  if (ext === 'csv') return MEDIA_TYPES.csv;
  if (ext === 'md' || ext === 'markdown') return MEDIA_TYPES.markdown;
  return MEDIA_TYPES.text;
}

/** How much of the start of a file the sniffing reads: what a writer may keep in memory to spare the reads. */
export const SNIFF_HEAD_BYTES = TEXT_HEAD_BYTES;

/**
 * `head`: the first min(size, SNIFF_HEAD_BYTES) bytes when the caller has them already (kept while
 * streaming); then a file that small is sniffed without opening it again.
 */
export async function sniffMediaType(filePath: string, size: number, name: string, known?: Buffer): Promise<string> {
  if (size === 0) return MEDIA_TYPES.text;
  const headLength = Math.min(size, TEXT_HEAD_BYTES);
  const head = known && known.length === headLength ? known : await readRange(filePath, 0, headLength);
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) {
    const names = await zipEntryNames(filePath, size);
    return names ? zipKind(names) : MEDIA_TYPES.zip;
  }
  // A head that is the whole file says all the file does.
  const { fileTypeFromBuffer, fileTypeFromFile } = await import('file-type');
  const sniffed = await (size <= TEXT_HEAD_BYTES ? fileTypeFromBuffer(head) : fileTypeFromFile(filePath)).catch(() => undefined);
  if (sniffed) return sniffed.mime;
  const text = decodeText(head);
  if (text === undefined) return MEDIA_TYPES.binary;
  return textKind(text, name, size <= TEXT_HEAD_BYTES);
}
