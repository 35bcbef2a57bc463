// What every embedding provider offers the module: a model id, its dimension, and texts to vectors.
export type ProviderName = 'builtin' | 'ollama' | 'onnx';

export interface Embedder {
  readonly provider: ProviderName;
  /** Recorded with every vector it makes. */
  readonly model: string;
  readonly dimensions: number;
  /** One provider call for the whole list (the module batches before calling). */
  embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]>;
  status(): Promise<{ status: 'ready' | 'unavailable'; detail?: string }>;
}

/** Unit length, in place; a zero vector (an empty text) stays zero. */
export function normalise(v: Float32Array): Float32Array {
  let norm = 0;
  for (let i = 0; i < v.length; i++) norm += v[i]! * v[i]!;
  if (norm > 0 && Math.abs(norm - 1) > 1e-6) {
    const inv = 1 / Math.sqrt(norm);
    for (let i = 0; i < v.length; i++) v[i]! *= inv;
  }
  return v;
}
