// A test AutoBot hosting only what `llm` needs (config, health, llm), pointed at fake Ollama hosts.
import type { TestApp } from '../../support/app.js';
import { startTestApp } from '../../support/app.js';
import { configModule } from '../../../src/modules/config/module.js';
import { healthModule } from '../../../src/modules/health/module.js';
import { llmModule } from '../../../src/modules/llm/module.js';

export const llmCatalogue = [configModule, healthModule, llmModule];

export function startLlmApp(redisUrl: string, ollamaUrls: string[], env: Record<string, string> = {}): Promise<TestApp> {
  return startTestApp({ redisUrl, catalogue: llmCatalogue, env: { OLLAMA_URL: ollamaUrls.join(','), ...env } });
}

/** The error a call fails with; fails the test when it succeeds. */
export async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string; details?: unknown }> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err: err as { code: string; message: string; details?: unknown } }),
  );
  if (outcome.ok) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value)}`);
  return outcome.err;
}

/** The text of a stream's delta chunks, one element per delta. */
export function deltas(chunks: readonly unknown[]): string[] {
  return chunks.flatMap((c) => ((c as { type?: string }).type === 'delta' ? [(c as { delta: string }).delta] : []));
}

/** Every chunk of a stream, and the error that ended it, if any. */
export async function drain<T>(stream: AsyncIterable<T>): Promise<{ chunks: T[]; error?: { code: string; message: string; details?: unknown } }> {
  const chunks: T[] = [];
  try {
    for await (const c of stream) chunks.push(c);
    return { chunks };
  } catch (err) {
    return { chunks, error: err as { code: string; message: string; details?: unknown } };
  }
}
