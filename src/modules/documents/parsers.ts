// Bytes of a supported format → blocks (headings, text, pages). A file that cannot be read throws
// ParseFailure with a reason a user understands; the pipeline fails the document with it.
//
// The parsing libraries are loaded on first use of their format (several MiB each, and tens of ms at
// start): a process that never parses a PDF never loads pdf.js.
import type TurndownService from 'turndown';
import { markdownBlocks, textBlocks, type Block } from './blocks.js';
import { checkZip, ZipRefused } from './zip-guard.js';

export class ParseFailure extends Error {}

export interface ParseLimits {
  maxTextChars: number;
  maxUnzippedBytes: number;
}

export interface Parsed {
  blocks: Block[];
  title?: string;
}

const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';

function utf8(bytes: Buffer): string {
  return bytes.toString('utf8').replace(/^\uFEFF/, '');
}

async function turndown(): Promise<TurndownService> {
  const { default: TurndownService } = await import('turndown');
  const t = new TurndownService({ headingStyle: 'atx', codeBlockStyle: 'fenced', bulletListMarker: '-' });
  t.remove(['script', 'style', 'noscript', 'iframe', 'object', 'embed']);
  return t;
}

async function parseHtml(html: string): Promise<Parsed> {
  const [{ parseHTML }, { Readability }] = await Promise.all([import('linkedom'), import('@mozilla/readability')]);
  const { document } = parseHTML(html);
  // Readability mutates the DOM it reads: it gets its own copy, the fallback keeps the original body.
  const article = new Readability(parseHTML(html).document as unknown as ConstructorParameters<typeof Readability>[0], { charThreshold: 0 }).parse();
  const title = (article?.title ?? document.title ?? '').trim() || undefined;
  const body = article?.content ?? document.body?.innerHTML ?? '';
  const blocks = markdownBlocks((await turndown()).turndown(body));
  if (title && !(blocks[0]?.kind === 'heading' && blocks[0].text === title)) blocks.unshift({ kind: 'heading', level: 1, text: title });
  return { blocks, ...(title ? { title } : {}) };
}

async function parsePdf(bytes: Buffer): Promise<Parsed> {
  const { extractText, getDocumentProxy } = await import('unpdf');
  let pdf;
  try {
    pdf = await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0, isEvalSupported: false, stopAtErrors: true });
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'PasswordException') throw new ParseFailure('the PDF is encrypted (password-protected)');
    throw new ParseFailure(`not a readable PDF (${(err as Error).message || name})`);
  }
  try {
    const { text } = await extractText(pdf, { mergePages: false });
    const blocks: Block[] = [];
    (text as string[]).forEach((pageText, i) => blocks.push(...textBlocks(pageText, i + 1)));
    return { blocks };
  } catch (err) {
    throw new ParseFailure(`not a readable PDF (${(err as Error).message})`);
  } finally {
    await pdf.destroy().catch(() => undefined);
  }
}

async function parseDocx(bytes: Buffer, limits: ParseLimits): Promise<Parsed> {
  try {
    checkZip(bytes, limits.maxUnzippedBytes);
  } catch (err) {
    if (err instanceof ZipRefused) throw new ParseFailure(`the docx cannot be unpacked safely: ${err.message}`);
    throw err;
  }
  const { default: mammoth } = await import('mammoth');
  let html: string;
  try {
    html = (await mammoth.convertToHtml({ buffer: bytes })).value;
  } catch (err) {
    throw new ParseFailure(`not a readable docx (${(err as Error).message})`);
  }
  return { blocks: markdownBlocks((await turndown()).turndown(html)) };
}

async function parseCsv(text: string): Promise<Parsed> {
  const { default: Papa } = await import('papaparse');
  const result = Papa.parse<string[]>(text, { skipEmptyLines: 'greedy' });
  const rows = result.data;
  if (!rows.length) return { blocks: [] };
  const header = rows[0]!;
  // Each row reads on its own (a chunk may not include the header line): "column: value" pairs.
  const blocks: Block[] = rows.slice(1).map((row) => ({
    kind: 'text',
    text: row.map((v, i) => `${header[i] ?? `column ${i + 1}`}: ${v}`).join('; '),
  }));
  return { blocks: blocks.length ? blocks : [{ kind: 'text', text: header.join(', ') }] };
}

function jsonBlocks(value: unknown, path: string[], depth: number, out: Block[]): void {
  if (value !== null && typeof value === 'object' && depth < 3 && !(Array.isArray(value) && value.every((v) => typeof v !== 'object' || v === null))) {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
    for (const [k, v] of entries) {
      if (v !== null && typeof v === 'object') {
        out.push({ kind: 'heading', level: Math.min(6, depth + 1), text: [...path, k].join('.') });
        jsonBlocks(v, [...path, k], depth + 1, out);
      } else out.push({ kind: 'text', text: `${[...path, k].join('.')}: ${JSON.stringify(v)}` });
    }
    return;
  }
  out.push({ kind: 'text', text: `${path.length ? `${path.join('.')}: ` : ''}${JSON.stringify(value, null, 1)}` });
}

function parseJson(text: string): Parsed {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ParseFailure(`not valid JSON (${(err as Error).message})`);
  }
  const blocks: Block[] = [];
  jsonBlocks(value, [], 0, blocks);
  return { blocks };
}

export async function parseDocument(bytes: Buffer, mediaType: string, limits: ParseLimits): Promise<Parsed> {
  let parsed: Parsed;
  switch (mediaType) {
    case 'text/plain':
      parsed = { blocks: textBlocks(utf8(bytes)) };
      break;
    case 'text/markdown':
      parsed = { blocks: markdownBlocks(utf8(bytes)) };
      break;
    case 'text/html':
      parsed = await parseHtml(utf8(bytes));
      break;
    case 'text/csv':
      parsed = await parseCsv(utf8(bytes));
      break;
    case 'application/json':
      parsed = parseJson(utf8(bytes));
      break;
    case 'application/pdf':
      parsed = await parsePdf(bytes);
      break;
    case DOCX:
      parsed = await parseDocx(bytes, limits);
      break;
    default:
      throw new ParseFailure(`${mediaType} is not a supported format`);
  }
  const chars = parsed.blocks.reduce((n, b) => n + b.text.length, 0);
  if (chars > limits.maxTextChars) throw new ParseFailure(`the extracted text (${chars} characters) exceeds documents.maxTextChars (${limits.maxTextChars})`);
  if (!parsed.blocks.some((b) => b.kind === 'text')) throw new ParseFailure('no text found in the document');
  return parsed;
}
