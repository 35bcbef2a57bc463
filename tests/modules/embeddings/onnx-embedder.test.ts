// The onnx provider end to end on a model directory the test builds (model.onnx + tokenizer.json in
// all-MiniLM-L6-v2's shape): tokenised with the WordPiece tokenizer, run through the accelerator,
// mean-pooled over the attention mask (padding does not count) and normalised. The same model also
// answers POST /npu/inference.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { acceleratorContract } from '../../../src/modules/accelerator/contract.js';
import { embeddingsContract } from '../../../src/modules/embeddings/contract.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import type { TestApp } from '../../support/app.js';
import { startFakeOllama, type FakeOllama } from '../../support/fake-ollama.js';
import { tokenEmbeddingModel, wordPieceTokenizer } from '../../support/onnx-model.js';
import { ADMIN_TOKEN, bearer } from '../../support/test-auth.js';
import { setEmbeddingsSettings, startEmbeddingsApp } from './embeddings-app.js';

const WORDS = ['apple', 'banana', 'cherry', 'river', 'stone', '##s'];
const HIDDEN = 4;

/** A distinct, fixed row per token id. */
const table = (size: number) => Array.from({ length: size }, (_, id) => Array.from({ length: HIDDEN }, (_, h) => Math.sin(id * 1.7 + h * 0.9) + (h === id % HIDDEN ? 1 : 0)));

function expected(ids: number[], rows: number[][]): number[] {
  const mean = new Array<number>(HIDDEN).fill(0);
  for (const id of ids) rows[id]!.forEach((v, h) => (mean[h]! += v / ids.length));
  const norm = Math.hypot(...mean);
  return mean.map((v) => v / norm);
}

describe('onnx embedding provider', () => {
  let redis: TestRedis;
  let ollama: FakeOllama;
  let app: TestApp;
  let emb: Port<typeof embeddingsContract>;
  let vocab: Record<string, number>;
  let rows: number[][];

  beforeAll(async () => {
    redis = await startTestRedis();
    ollama = await startFakeOllama();
    app = await startEmbeddingsApp(redis.url, ollama.url);
    emb = app.runtime.port(embeddingsContract) as Port<typeof embeddingsContract>;
    const tok = wordPieceTokenizer(WORDS);
    vocab = tok.vocab;
    rows = table(Object.keys(vocab).length);
    const dir = path.join(app.dataDir, 'models', 'mini');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.json));
    writeFileSync(path.join(dir, 'model.onnx'), tokenEmbeddingModel(rows));
    await setEmbeddingsSettings(app, { documentsProvider: 'onnx', onnxModel: 'mini', onnxDimensions: HIDDEN });
  });
  afterAll(async () => {
    await app?.stop();
    await ollama?.close();
    await redis?.stop();
  });

  it('tokenises, runs the model through the accelerator, mean-pools over real tokens and normalises', async () => {
    const npu = app.runtime.port(acceleratorContract) as Port<typeof acceleratorContract>;
    const before = (await npu.status({})).inferences;
    const out = await emb.generate({ texts: ['Apple banana', 'river stones cherry apple banana', 'apple'] });
    expect(out).toMatchObject({ model: 'onnx/mini', dimensions: HIDDEN });
    const v = (...tokens: string[]) => expected(['[CLS]', ...tokens, '[SEP]'].map((t) => vocab[t]!), rows);
    // Lower-cased by the BERT normaliser; "stones" split by WordPiece into stone + ##s.
    const [a, b, c] = out.embeddings as [number[], number[], number[]];
    a.forEach((x, i) => expect(x).toBeCloseTo(v('apple', 'banana')[i]!, 5));
    b.forEach((x, i) => expect(x).toBeCloseTo(v('river', 'stone', '##s', 'cherry', 'apple', 'banana')[i]!, 5));
    // The shortest text of the batch was padded; the padding did not move its vector.
    c.forEach((x, i) => expect(x).toBeCloseTo(v('apple')[i]!, 5));
    // One batch, one inference on the accelerator.
    expect((await npu.status({})).inferences).toBe(before + 1);
    const caps = await npu.capabilities({});
    expect(caps.loadedModels.find((m) => m.name === 'mini/model')).toMatchObject({ provider: 'cpu' });
  });

  it('fills the documents collection with ONNX vectors and searches them', async () => {
    const up = await emb.upsert({
      collection: 'documents',
      items: [
        { id: 'o:1', text: 'apple banana cherry', metadata: { ownerId: 'u-o' } },
        { id: 'o:2', text: 'river stone', metadata: { ownerId: 'u-o' } },
      ],
    });
    expect(up).toEqual({ upserted: 2, model: 'onnx/mini', dimensions: HIDDEN });
    const res = await emb.search({ collection: 'documents', query: 'stones by the river', topK: 2, filter: { ownerId: 'u-o' } });
    expect(res.items[0]!.id).toBe('o:2');
    expect((await emb.listModels({})).items.find((m) => m.id === 'onnx/mini')).toMatchObject({ provider: 'onnx', status: 'ready', default: true });
  });

  it('runs the same model through POST /npu/inference, tensors as {type, dims, data}', async () => {
    const ids = [vocab['[CLS]']!, vocab.apple!, vocab['[SEP]']!];
    const res = await fetch(`${app.url}/api/v1/npu/inference`, {
      method: 'POST',
      headers: { ...bearer(ADMIN_TOKEN), 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'mini/model',
        inputs: { input_ids: { type: 'int64', dims: [1, 3], data: ids }, attention_mask: { type: 'int64', dims: [1, 3], data: [1, 1, 1] } },
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { provider: string; outputs: Record<string, { type: string; dims: number[]; data: number[] }> };
    expect(body.provider).toBe('cpu');
    expect(body.outputs.last_hidden_state!.type).toBe('float32');
    expect(body.outputs.last_hidden_state!.dims).toEqual([1, 3, HIDDEN]);
    const flat = ids.flatMap((id) => rows[id]!);
    body.outputs.last_hidden_state!.data.forEach((x, i) => expect(x).toBeCloseTo(flat[i]!, 5));
  });
});
