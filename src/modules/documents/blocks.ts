// The structure every parser hands the chunker: headings and text blocks (with their page, for PDFs).
// Markdown is the pivot format: HTML and docx become Markdown first, then blocks.
export type Block = { kind: 'heading'; level: number; text: string } | { kind: 'text'; text: string; page?: number };

const FENCE = /^\s{0,3}(`{3,}|~{3,})/;
const ATX = /^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const SETEXT = /^\s{0,3}(=+|-+)\s*$/;

/** Markdown → blocks: ATX and setext headings, paragraphs split by blank lines, fenced code kept whole. */
export function markdownBlocks(markdown: string, page?: number): Block[] {
  const lines = markdown.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let para: string[] = [];
  const flush = () => {
    const text = para.join('\n').trim();
    if (text) blocks.push(page === undefined ? { kind: 'text', text } : { kind: 'text', text, page });
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const marker = fence[1]!;
      const code = [line];
      for (i++; i < lines.length; i++) {
        code.push(lines[i]!);
        if (lines[i]!.trim().startsWith(marker)) break;
      }
      para = code;
      flush();
      continue;
    }
    const atx = ATX.exec(line);
    if (atx) {
      flush();
      const text = atx[2]!.trim();
      if (text) blocks.push({ kind: 'heading', level: atx[1]!.length, text });
      continue;
    }
    // A setext underline turns the single line of text above it into a heading.
    if (para.length === 1 && SETEXT.test(line) && !/^\s*[-*+]\s/.test(para[0]!)) {
      const text = para[0]!.trim();
      para = [];
      blocks.push({ kind: 'heading', level: line.trim().startsWith('=') ? 1 : 2, text });
      continue;
    }
    if (!line.trim()) flush();
    else para.push(line);
  }
  flush();
  return blocks;
}

/** Plain text → paragraph blocks. */
export function textBlocks(text: string, page?: number): Block[] {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => (page === undefined ? { kind: 'text' as const, text: p } : { kind: 'text' as const, text: p, page }));
}

/** Blocks back to Markdown: the extracted text a user reads with GET /documents/:id/content. */
export function blocksToMarkdown(blocks: Block[]): string {
  const out: string[] = [];
  let page: number | undefined;
  for (const b of blocks) {
    if (b.kind === 'heading') out.push(`${'#'.repeat(Math.min(6, Math.max(1, b.level)))} ${b.text}`);
    else {
      if (b.page !== undefined && b.page !== page) {
        page = b.page;
        out.push(`<!-- page ${page} -->`);
      }
      out.push(b.text);
    }
  }
  return out.join('\n\n');
}
