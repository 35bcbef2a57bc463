// Ollama embeddings (e.g. nomic-embed-text, 768 dimensions) through the llm module's `embed`, which
// routes over the Ollama hosts like chat does. Vectors match meaning, not just wording.
import type { Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import type { llmContract } from '../llm/contract.js';
import { normalise, type Embedder } from './embedder.js';

export class OllamaEmbedder implements Embedder {
  readonly provider = 'ollama' as const;

  constructor(
    private readonly llm: Port<typeof llmContract>,
    readonly model: string,
    readonly dimensions: number,
  ) {}

  async embed(texts: string[]): Promise<Float32Array[]> {
    const out = await this.llm.embed({ input: texts, model: this.model });
    if (out.embeddings.length !== texts.length) throw new ContractError('unavailable', `Ollama answered ${out.embeddings.length} embeddings for ${texts.length} texts`);
    return out.embeddings.map((e) => {
      if (e.length !== this.dimensions) {
        throw new ContractError('conflict', `${this.model} produced ${e.length} dimensions where ${this.dimensions} are configured (embeddings.ollamaDimensions)`);
      }
      return normalise(Float32Array.from(e));
    });
  }

  async status() {
    try {
      const { items } = await this.llm.listModels({});
      const present = items.some((m) => m.id === this.model || m.id === `${this.model}:latest` || m.id.split(':')[0] === this.model);
      return present ? { status: 'ready' as const } : { status: 'unavailable' as const, detail: `no Ollama host has ${this.model} (ollama pull ${this.model})` };
    } catch (err) {
      return { status: 'unavailable' as const, detail: (err as Error).message };
    }
  }
}
