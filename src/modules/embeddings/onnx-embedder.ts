// A local sentence-embedding model (e.g. all-MiniLM-L6-v2 exported to ONNX): `<data dir>/models/<dir>/`
// holds `model.onnx` and `tokenizer.json`. Texts are tokenised here (@huggingface/tokenizers), run
// through the accelerator port (which picks the execution provider), mean-pooled over the attention
// mask and L2-normalised, as sentence-transformers does.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { withContext } from '../../kernel/context/request-context.js';
import type { acceleratorContract } from '../accelerator/contract.js';
import { normalise, type Embedder } from './embedder.js';

interface Loaded {
  tokenizer: Tokenizer;
  padId: number;
  inputs: Set<string>;
  output: { name: string; pooled: boolean };
}

export function onnxModelId(dir: string): string {
  return `onnx/${dir}`;
}

export class OnnxEmbedder implements Embedder {
  readonly provider = 'onnx' as const;
  readonly model: string;
  private loading: Promise<Loaded> | undefined;

  constructor(
    private readonly accelerator: Port<typeof acceleratorContract>,
    private readonly modelsDir: string,
    private readonly dir: string,
    readonly dimensions: number,
    private readonly maxTokens: number,
  ) {
    this.model = onnxModelId(dir);
  }

  /** The accelerator is asked as this module, not as the user whose request led here. */
  private asService<T>(fn: () => Promise<T>): Promise<T> {
    return withContext({ actor: { type: 'service', name: 'embeddings' } }, fn);
  }

  private load(): Promise<Loaded> {
    this.loading ??= (async () => {
      const base = path.join(this.modelsDir, this.dir);
      let json: object;
      try {
        json = JSON.parse(await readFile(path.join(base, 'tokenizer.json'), 'utf8')) as object;
      } catch (err) {
        throw new ContractError('unavailable', `the ONNX embedding model ${this.dir} has no readable tokenizer.json in ${base}: ${(err as Error).message}`);
      }
      const config = JSON.parse(await readFile(path.join(base, 'tokenizer_config.json'), 'utf8').catch(() => '{}')) as object;
      const tokenizer = new Tokenizer(json, config);
      const described = await this.asService(() => this.accelerator.describeModel({ model: `${this.dir}/model` }));
      const inputs = new Set(described.inputs.map((i) => i.name));
      if (!inputs.has('input_ids')) throw new ContractError('unavailable', `${this.model}: the model has no input_ids input (it has ${[...inputs].join(', ')})`);
      const names = described.outputs.map((o) => o.name);
      // Token-level states are pooled here; an export that already pools is taken as it is.
      const name = ['last_hidden_state', 'token_embeddings', 'sentence_embedding', 'pooler_output'].find((n) => names.includes(n)) ?? names[0];
      if (!name) throw new ContractError('unavailable', `${this.model}: the model has no outputs`);
      const output = { name, pooled: name === 'sentence_embedding' || name === 'pooler_output' };
      return { tokenizer, padId: tokenizer.token_to_id('[PAD]') ?? 0, inputs, output };
    })();
    // A failed load (files not there yet) is tried again on the next call.
    this.loading.catch(() => (this.loading = undefined));
    return this.loading;
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    const { tokenizer, padId, inputs, output } = await this.load();
    const encoded: number[][] = texts.map((t) => {
      const ids: number[] = tokenizer.encode(t).ids;
      // Cut long texts but keep the closing special token the model was trained to see.
      return ids.length > this.maxTokens ? [...ids.slice(0, this.maxTokens - 1), ids[ids.length - 1]!] : ids;
    });
    const batch = texts.length;
    const seq = Math.max(1, ...encoded.map((e) => e.length));
    const ids: number[] = new Array(batch * seq).fill(padId);
    const mask: number[] = new Array(batch * seq).fill(0);
    encoded.forEach((e, b) => e.forEach((id, i) => ((ids[b * seq + i] = id), (mask[b * seq + i] = 1))));
    const feeds: Record<string, { type: 'int64'; dims: number[]; data: number[] }> = { input_ids: { type: 'int64', dims: [batch, seq], data: ids } };
    if (inputs.has('attention_mask')) feeds.attention_mask = { type: 'int64', dims: [batch, seq], data: mask };
    if (inputs.has('token_type_ids')) feeds.token_type_ids = { type: 'int64', dims: [batch, seq], data: new Array(batch * seq).fill(0) };
    const result = await this.asService(() => this.accelerator.infer({ model: `${this.dir}/model`, inputs: feeds, outputs: [output.name] }));
    const t = result.outputs[output.name];
    if (!t) throw new ContractError('unavailable', `${this.model}: the model did not answer ${output.name}`);
    const data = t.data as number[];
    const hidden = t.dims[t.dims.length - 1]!;
    if (hidden !== this.dimensions) throw new ContractError('conflict', `${this.model} produced ${hidden} dimensions where ${this.dimensions} are configured (embeddings.onnxDimensions)`);
    return encoded.map((_, b) => {
      const v = new Float32Array(hidden);
      if (output.pooled || t.dims.length === 2) {
        for (let h = 0; h < hidden; h++) v[h] = data[b * hidden + h]!;
        return normalise(v);
      }
      // Mean over the real tokens only: padding must not pull short texts towards each other.
      let n = 0;
      for (let s = 0; s < seq; s++) {
        if (mask[b * seq + s] === 0) continue;
        n++;
        const at = (b * seq + s) * hidden;
        for (let h = 0; h < hidden; h++) v[h]! += data[at + h]!;
      }
      if (n > 0) for (let h = 0; h < hidden; h++) v[h]! /= n;
      return normalise(v);
    });
  }

  async status() {
    try {
      await this.load();
      return { status: 'ready' as const };
    } catch (err) {
      return { status: 'unavailable' as const, detail: (err as Error).message };
    }
  }
}
