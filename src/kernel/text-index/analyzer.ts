// How text becomes search terms, one way for the whole project: Unicode words, lower-cased, English
// stems (Porter, the `stemmer` package). Queries understand plain words (all must match), "quoted
// phrases" (their words must appear in that order) and prefix* terms (not stemmed: "comput*" must find
// "computer"). The snippet marker shows the words that matched.
import { stemmer } from 'stemmer';

const WORD = /[\p{L}\p{N}][\p{L}\p{N}_'’-]*/gu;
const MAX_TERM = 64;

/** Words of `text` with their offsets, for highlighting. */
export function words(text: string): { word: string; start: number; end: number }[] {
  const out: { word: string; start: number; end: number }[] = [];
  for (const m of text.matchAll(WORD)) out.push({ word: m[0], start: m.index, end: m.index + m[0].length });
  return out;
}

export function tokenize(text: string): string[] {
  return text.match(WORD) ?? [];
}

/** Index and query term: lower case, apostrophes dropped, stemmed; over-long tokens are not words. */
export function stemTerm(token: string): string | null {
  const t = token.toLowerCase().replace(/['’]/g, '');
  if (!t || t.length > MAX_TERM) return null;
  return /^[a-z]+$/.test(t) ? stemmer(t) : t;
}

export function normalizePhrase(text: string): string {
  return tokenize(text)
    .map((w) => w.toLowerCase().replace(/['’]/g, ''))
    .join(' ');
}

// Function words: they carry no topic, so when a query falls back to "some of the words" they must not
// be the words a result is found by ("where to park my car" would otherwise rank anything with "to").
const STOP_WORDS = ('a about an and are as at be but by can do does for from had has have how i if in into is it its me my no not ' +
  'of on or our so than that the their them then there these they this to was we were what when where which who why will with you your')
  .split(' ');
export const STOP_TERMS: ReadonlySet<string> = new Set(STOP_WORDS.map((w) => stemTerm(w)!));

export interface ParsedQuery {
  /** Stemmed terms every result must contain. */
  terms: string[];
  /** Lower-cased prefixes every result must contain a word starting with. */
  prefixes: string[];
  /** Normalised phrases the text must contain word for word. */
  phrases: string[];
}

export function parseQuery(q: string): ParsedQuery {
  const terms: string[] = [];
  const prefixes: string[] = [];
  const phrases: string[] = [];
  const rest = q.replace(/"([^"]*)"/g, (_m, phrase: string) => {
    const normal = normalizePhrase(phrase);
    if (normal) {
      phrases.push(normal);
      for (const w of tokenize(phrase)) {
        const s = stemTerm(w);
        if (s) terms.push(s);
      }
    }
    return ' ';
  });
  for (const m of rest.matchAll(/([\p{L}\p{N}][\p{L}\p{N}_'’-]*)(\*)?/gu)) {
    if (m[2]) {
      const p = m[1]!.toLowerCase().replace(/['’]/g, '');
      if (p) prefixes.push(p);
    } else {
      const s = stemTerm(m[1]!);
      if (s) terms.push(s);
    }
  }
  return { terms: [...new Set(terms)], prefixes: [...new Set(prefixes)], phrases };
}

/** Whether the text contains the phrase word for word (both normalised). */
export function containsPhrase(normalizedText: string, phrase: string): boolean {
  const at = ` ${normalizedText} `;
  return at.includes(` ${phrase} `);
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * A window of `text` around the first matching word, HTML-escaped, matches wrapped in <mark>…</mark>,
 * `…` where it was cut. Safe to insert as HTML.
 */
export function highlight(text: string, query: ParsedQuery, width = 160): string {
  const stems = new Set(query.terms);
  const all = words(text);
  const hit = (w: string) => {
    const lower = w.toLowerCase().replace(/['’]/g, '');
    const s = stemTerm(w);
    return (s !== null && stems.has(s)) || query.prefixes.some((p) => lower.startsWith(p));
  };
  const marks = all.filter((w) => hit(w.word));
  const first = marks[0]?.start ?? 0;
  let from = Math.max(0, first - Math.floor(width / 3));
  // Start at a word boundary.
  if (from > 0) {
    const next = all.find((w) => w.start >= from);
    from = next ? next.start : from;
  }
  const to = Math.min(text.length, from + width);
  let out = from > 0 ? '…' : '';
  let pos = from;
  for (const m of marks) {
    if (m.start < from || m.end > to) continue;
    out += escapeHtml(text.slice(pos, m.start)) + '<mark>' + escapeHtml(text.slice(m.start, m.end)) + '</mark>';
    pos = m.end;
  }
  out += escapeHtml(text.slice(pos, to));
  if (to < text.length) out += '…';
  return out.replace(/\s+/g, ' ').trim();
}
