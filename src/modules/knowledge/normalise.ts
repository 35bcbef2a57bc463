// What makes two facts "the same": the content compared without case, runs of whitespace, Unicode
// compatibility forms (NFKC: full-width letters, ligatures, non-breaking spaces) or trailing
// sentence punctuation. "The sky is blue." and "the  SKY is blue" are one fact. Only sentence marks are
// stripped, not every punctuation character: "I use C#" and "I use C" stay different facts.
import { createHash } from 'node:crypto';

const TRAILING_PUNCTUATION = /[\s.,;:!?…。，；：！？、]+$/u;

export function normaliseContent(content: string): string {
  return content.normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ').trim().replace(TRAILING_PUNCTUATION, '');
}

/** The key of the per-owner dedupe index: a fixed-length digest, whatever the fact's length. */
export function contentKey(content: string): string {
  return createHash('sha256').update(normaliseContent(content)).digest('base64url');
}

/** Lower-cased words of a `q` filter, matched against the normalised content. */
export function queryTerms(q: string): string[] {
  return normaliseContent(q).split(' ').filter(Boolean);
}
