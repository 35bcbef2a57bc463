// The built-in embedder: works offline with nothing to download. It hashes features of the text into
// 384 dimensions (the "hashing trick"): words, pairs of neighbouring words and character trigrams of
// each word, each with a hashed sign so collisions cancel rather than pile up, then L2-normalises.
// Texts that share wording land close together. It does NOT know meaning: "car" and "automobile" are
// unrelated to it, and a paraphrase with other words scores low. Use Ollama or an ONNX model for that.
import { BUILTIN_DIMENSIONS, BUILTIN_MODEL } from './contract.js';
import type { Embedder } from './embedder.js';

const WORD_WEIGHT = 1;
const PAIR_WEIGHT = 0.6;
const GRAM_WEIGHT = 0.35;
const WORD = /[\p{L}\p{N}]+/gu;

/** FNV-1a, 32 bits: fast, stable across processes and versions (unlike anything seeded). */
function fnv1a(s: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function add(vec: Float32Array, feature: string, weight: number): void {
  const h = fnv1a(feature);
  // The low bits choose the dimension, a high bit the sign.
  vec[h % vec.length]! += h & 0x80000000 ? -weight : weight;
}

export function builtinEmbed(text: string, dimensions = BUILTIN_DIMENSIONS): Float32Array {
  const vec = new Float32Array(dimensions);
  const words = text.normalize('NFKC').toLowerCase().match(WORD) ?? [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    add(vec, `w:${w}`, WORD_WEIGHT);
    if (i > 0) add(vec, `p:${words[i - 1]}_${w}`, PAIR_WEIGHT);
    const padded = `<${w}>`;
    if (padded.length > 3) for (let j = 0; j + 3 <= padded.length; j++) add(vec, `g:${padded.slice(j, j + 3)}`, GRAM_WEIGHT);
  }
  // Sub-linear: a word repeated fifty times must not drown every other feature.
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    const v = vec[i]!;
    const damped = Math.sign(v) * Math.log1p(Math.abs(v));
    vec[i] = damped;
    norm += damped * damped;
  }
  if (norm > 0) {
    const inv = 1 / Math.sqrt(norm);
    for (let i = 0; i < dimensions; i++) vec[i]! *= inv;
  }
  return vec;
}

export class BuiltinEmbedder implements Embedder {
  readonly provider = 'builtin' as const;
  readonly model = BUILTIN_MODEL;
  readonly dimensions = BUILTIN_DIMENSIONS;
  calls = 0;

  async embed(texts: string[]): Promise<Float32Array[]> {
    this.calls++;
    return texts.map((t) => builtinEmbed(t, this.dimensions));
  }

  async status() {
    return { status: 'ready' as const };
  }
}
