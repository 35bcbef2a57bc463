// Structure-aware chunking: a chunk never spans two sections (a heading starts a new one), paragraphs
// are kept whole when they fit, long ones are cut at sentence then word boundaries; consecutive chunks
// of one section overlap by about `overlap` characters. Each chunk keeps its heading path and page.
import type { Block } from './blocks.js';

export interface Chunk {
  seq: number;
  text: string;
  headingPath: string[];
  page: number | null;
}

export interface ChunkOptions {
  size: number;
  overlap: number;
}

/** Splits a paragraph longer than `size` at sentence ends, then at spaces, then hard. */
function pieces(text: string, size: number): string[] {
  if (text.length <= size) return [text];
  const sentences = text.match(/[^.!?\n]+(?:[.!?]+["')\]]*\s*|\n+|$)/g) ?? [text];
  const out: string[] = [];
  let cur = '';
  const push = (s: string) => {
    if (s.trim()) out.push(s.trim());
  };
  for (const sentence of sentences) {
    if (sentence.length > size) {
      push(cur);
      cur = '';
      const words = sentence.split(/(\s+)/);
      for (const w of words) {
        if (w.length > size) {
          push(cur);
          cur = '';
          for (let i = 0; i < w.length; i += size) push(w.slice(i, i + size));
        } else if (cur.length + w.length > size) {
          push(cur);
          cur = w;
        } else cur += w;
      }
    } else if (cur.length + sentence.length > size) {
      push(cur);
      cur = sentence;
    } else cur += sentence;
  }
  push(cur);
  return out;
}

/** The last `overlap` characters of `text`, starting at a word boundary. */
function tail(text: string, overlap: number): string {
  if (overlap <= 0 || !text) return '';
  if (text.length <= overlap) return text;
  const cut = text.slice(text.length - overlap);
  const space = cut.search(/\s/);
  return (space >= 0 ? cut.slice(space) : cut).trim();
}

export function chunkBlocks(blocks: Block[], opts: ChunkOptions): Chunk[] {
  const size = opts.size;
  const overlap = Math.min(opts.overlap, Math.floor(size / 2));
  const chunks: Chunk[] = [];
  const path: string[] = [];
  let parts: string[] = [];
  let length = 0;
  let page: number | null = null;
  let fresh = false; // the current chunk has content of its own (not only the overlap)

  const emit = (carry: boolean) => {
    if (fresh) {
      const text = parts.join('\n\n');
      chunks.push({ seq: chunks.length, text, headingPath: [...path], page });
      const rest = carry ? tail(text, overlap) : '';
      parts = rest ? [rest] : [];
      length = rest.length;
    } else if (!carry) {
      parts = [];
      length = 0;
    }
    fresh = false;
    page = null;
  };

  for (const block of blocks) {
    if (block.kind === 'heading') {
      emit(false);
      const level = Math.max(1, Math.min(6, block.level));
      path.length = Math.min(path.length, level - 1);
      path.push(block.text.slice(0, 200));
      continue;
    }
    // A new page starts a new chunk, so that every chunk's page is exact.
    if (fresh && block.page !== undefined && block.page !== page) emit(true);
    for (const piece of pieces(block.text, size - overlap > 0 ? size - overlap : size)) {
      if (fresh && length + piece.length + 2 > size) emit(true);
      parts.push(piece);
      length += piece.length + 2;
      if (!fresh) page = block.page ?? null;
      fresh = true;
    }
  }
  emit(false);
  return chunks;
}
