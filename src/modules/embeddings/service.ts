// The embeddings module's operations: generation through the provider a collection is configured
// with (cached by model and content), and the collections' writes and searches. Each collection holds
// one model: a write with another refuses (409) until the collection is reset and reindexed, and a
// query vector of another dimension is a 409, never a silent mix.
import path from 'node:path';
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import type { CallInfo, Handlers, Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext } from '../../kernel/context/request-context.js';
import { ModuleLogger, ModuleRedis, ProcessConfigToken } from '../../kernel/module/tokens.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import type { AppConfig } from '../../kernel/config/app-config.js';
import { acceleratorContract } from '../accelerator/contract.js';
import { configContract } from '../config/contract.js';
import { llmContract } from '../llm/contract.js';
import { BuiltinEmbedder } from './builtin-embedder.js';
import { Collections } from './collections.js';
import { BUILTIN_MODEL, COLLECTIONS, embeddingsContract, embeddingsSettings, type EmbeddingsSettings } from './contract.js';
import { EmbeddingCache } from './embedding-cache.js';
import { normalise, type Embedder, type ProviderName } from './embedder.js';
import { OllamaEmbedder } from './ollama-embedder.js';
import { OnnxEmbedder, onnxModelId } from './onnx-embedder.js';
import type { SearchFilter, VectorMetadata } from './vector-index.js';
import { VectorStore, type Collection } from './vector-store.js';

type In<K extends keyof Handlers<typeof embeddingsContract>> = Parameters<Handlers<typeof embeddingsContract>[K]>[0];

@injectable()
export class EmbeddingsService implements Handlers<typeof embeddingsContract> {
  readonly settings: SettingsHolder<typeof embeddingsSettings>;
  readonly collections: Collections;
  readonly cache: EmbeddingCache;
  private readonly builtin = new BuiltinEmbedder();
  private readonly embedders = new Map<string, Embedder>();
  private readonly modelsDir: string;
  /** Texts sent to providers (not served from the cache), per model: what the cache saves is visible. */
  readonly providerTexts = new Map<string, number>();

  constructor(
    @inject(ModuleRedis) redis: Redis,
    @inject(ModuleLogger) private readonly logger: Logger,
    @inject(ProcessConfigToken) config: AppConfig,
    @inject(configContract.token) configPort: Port<typeof configContract>,
    @inject(llmContract.token) private readonly llm: Port<typeof llmContract>,
    @inject(acceleratorContract.token) private readonly accelerator: Port<typeof acceleratorContract>,
  ) {
    this.settings = new SettingsHolder(embeddingsSettings, async () => (await configPort.getModuleSettings({ module: embeddingsContract.id })).settings, logger);
    this.modelsDir = path.resolve(config.AUTOBOT_DATA_DIR, 'models');
    this.cache = new EmbeddingCache(redis);
    const store = new VectorStore(redis);
    this.collections = new Collections(
      redis,
      store,
      () => {
        const s = this.settings.current();
        return { exactBelow: s.exactSearchBelow, overFetch: s.searchOverFetch };
      },
      logger,
      path.resolve(config.AUTOBOT_DATA_DIR, 'embeddings', 'graphs'),
    );
  }

  private get s(): EmbeddingsSettings {
    return this.settings.current();
  }

  private get store(): VectorStore {
    return this.collections.store;
  }

  /** The embedder that makes `model`'s vectors (`dimensions` when the collection already knows them). */
  private embedderFor(model: string, dimensions?: number): Embedder {
    if (model === BUILTIN_MODEL) return this.builtin;
    const s = this.s;
    const key = `${model}|${dimensions ?? ''}|${s.onnxMaxTokens}`;
    let e = this.embedders.get(key);
    if (!e) {
      if (model.startsWith('onnx/')) {
        const dir = model.slice('onnx/'.length);
        e = new OnnxEmbedder(this.accelerator, this.modelsDir, dir, dimensions ?? s.onnxDimensions, s.onnxMaxTokens);
      } else {
        e = new OllamaEmbedder(this.llm, model, dimensions ?? s.ollamaDimensions);
      }
      this.embedders.set(key, e);
    }
    return e;
  }

  private modelOfProvider(provider: ProviderName): string {
    if (provider === 'builtin') return BUILTIN_MODEL;
    if (provider === 'ollama') return this.s.ollamaModel;
    return onnxModelId(this.s.onnxModel);
  }

  /** The model a collection is configured with (its vectors may still be of an older one). */
  configuredModel(c: Collection): string {
    return this.modelOfProvider(c === 'documents' ? this.s.documentsProvider : this.s.factsProvider);
  }

  /** Embeds with the cache in front and the provider called in batches of `batchSize`. */
  private async embedTexts(embedder: Embedder, texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const s = this.s;
    // The built-in embedder computes a vector faster than Redis hands a cached one back (hash, read,
    // write, memory): only the providers that cost something are cached.
    const useCache = s.cache && embedder.provider !== 'builtin';
    const cached = useCache ? await this.cache.getMany(embedder.model, texts, embedder.dimensions) : texts.map(() => undefined);
    const missing = [...new Set(texts.filter((_, i) => !cached[i]))];
    const made = new Map<string, Float32Array>();
    for (let i = 0; i < missing.length; i += s.batchSize) {
      if (signal?.aborted) throw new ContractError('timeout', 'the embedding call ran past its deadline');
      const batch = missing.slice(i, i + s.batchSize);
      const vectors = await embedder.embed(batch, signal);
      this.providerTexts.set(embedder.model, (this.providerTexts.get(embedder.model) ?? 0) + batch.length);
      batch.forEach((t, j) => made.set(t, normalise(vectors[j]!)));
      if (useCache) await this.cache.setMany(embedder.model, batch.map((text, j) => ({ text, vector: vectors[j]! })), s.cacheTtlDays * 86_400);
    }
    return texts.map((t, i) => cached[i] ?? made.get(t)!);
  }

  private knownModels(): Map<string, { provider: ProviderName; dimensions: number }> {
    const s = this.s;
    return new Map<string, { provider: ProviderName; dimensions: number }>([
      [BUILTIN_MODEL, { provider: 'builtin', dimensions: this.builtin.dimensions }],
      [s.ollamaModel, { provider: 'ollama', dimensions: s.ollamaDimensions }],
      [onnxModelId(s.onnxModel), { provider: 'onnx', dimensions: s.onnxDimensions }],
    ]);
  }

  async generate(input: In<'generate'>, call: CallInfo) {
    const model = input.model ?? this.configuredModel('documents');
    const known = this.knownModels();
    if (!known.has(model)) {
      throw new ContractError('invalid_input', `unknown embedding model "${model}"; models: ${[...known.keys()].join(', ')}`, [{ path: 'model', message: 'unknown model' }]);
    }
    const embedder = this.embedderFor(model, known.get(model)!.dimensions);
    const vectors = await this.embedTexts(embedder, input.texts, call.signal);
    return { model: embedder.model, dimensions: embedder.dimensions, embeddings: vectors.map((v) => Array.from(v)) };
  }

  async upsert(input: In<'upsert'>, call: CallInfo) {
    const c = input.collection;
    await this.collections.ensureLoaded(c);
    const model = this.configuredModel(c);
    const info = await this.store.info(c);
    // Refused before spending anything on embedding; the store checks again under WATCH.
    if (info && info.model !== model && (await this.store.count(c)) > 0) {
      throw new ContractError(
        'conflict',
        `the ${c} collection holds vectors of ${info.model}, but ${model} is configured: reset the collection (DELETE /embeddings/collections/${c}) and reindex`,
        { collection: c, model: info.model, configuredModel: model },
      );
    }
    const known = this.knownModels().get(model)!;
    const embedder = this.embedderFor(model, known.dimensions);
    // One id once: the last item with an id wins, as a replace would.
    const byId = new Map(input.items.map((i) => [i.id, i]));
    const items = [...byId.values()];
    const vectors = await this.embedTexts(embedder, items.map((i) => i.text), call.signal);
    const written = items.map((item, i) => ({ id: item.id, vector: vectors[i]!, metadata: item.metadata as VectorMetadata }));
    const streamId = await this.store.put(c, { model: embedder.model, dimensions: embedder.dimensions }, written);
    await this.collections.applyWritten(c, streamId, written);
    return { upserted: items.length, model: embedder.model, dimensions: embedder.dimensions };
  }

  async remove(input: In<'remove'>) {
    const c = input.collection;
    const ids = new Set(input.ids ?? []);
    if (input.documentId) for (const id of await this.store.idsOfDocument(c, input.documentId)) ids.add(id);
    const list = [...ids];
    const removed = await this.store.remove(c, list);
    await this.collections.apply(c, list);
    return { removed };
  }

  async setMetadata(input: In<'setMetadata'>) {
    const c = input.collection;
    const ids = await this.store.idsOfDocument(c, input.documentId);
    const { patch } = input;
    const updated = await this.store.patchMetadata(c, ids, (m) => {
      const next: VectorMetadata = { ...m };
      if (patch.shared !== undefined) next.shared = patch.shared;
      if (patch.categoryId !== undefined) next.categoryId = patch.categoryId;
      if (patch.tags !== undefined) next.tags = patch.tags;
      return next;
    });
    await this.collections.apply(c, ids);
    return { updated };
  }

  /** A signed-in user who is not an admin sees their own vectors and the shared ones, whatever the filter says. */
  private scopedFilter(filter: SearchFilter | undefined): SearchFilter | undefined {
    const actor = currentContext()?.actor;
    if (actor?.type !== 'user' || actor.roles.includes('admin')) return filter;
    return { ...filter, visibleTo: actor.id };
  }

  async search(input: In<'search'>, call: CallInfo) {
    const c = input.collection;
    await this.collections.ensureLoaded(c);
    const idx = this.collections.index(c);
    const model = idx?.model ?? this.configuredModel(c);
    const dimensions = idx?.dimensions ?? this.knownModels().get(model)?.dimensions ?? 0;
    let query: Float32Array;
    if (input.vector) {
      if (input.vector.length !== dimensions) {
        throw new ContractError('conflict', `the ${c} collection holds ${dimensions}-dimension vectors of ${model}; the query vector has ${input.vector.length}`, {
          collection: c,
          model,
          dimensions,
        });
      }
      query = normalise(Float32Array.from(input.vector));
    } else {
      // A query is embedded with the model the collection's vectors were made with, even if the
      // configuration already names the next one: results stay meaningful until the reindex.
      query = (await this.embedTexts(this.embedderFor(model, dimensions), [input.query!], call.signal))[0]!;
    }
    const hits = idx ? idx.search(query, input.topK, this.scopedFilter(input.filter)) : [];
    return { items: hits.map((h) => ({ id: h.id, score: Math.round(h.score * 1e6) / 1e6, metadata: h.metadata })), model, dimensions };
  }

  async listModels() {
    const byModel = new Map<string, Collection[]>();
    for (const c of COLLECTIONS) byModel.set(this.configuredModel(c), [...(byModel.get(this.configuredModel(c)) ?? []), c]);
    const items = await Promise.all(
      [...this.knownModels()].map(async ([id, m]) => {
        const status = await this.embedderFor(id, m.dimensions).status();
        const collections = byModel.get(id) ?? [];
        return { id, provider: m.provider, dimensions: m.dimensions, default: collections.length > 0, status: status.status, collections, ...(status.detail ? { detail: status.detail } : {}) };
      }),
    );
    return { items };
  }

  async listCollections() {
    const items = await Promise.all(
      COLLECTIONS.map(async (c) => {
        await this.collections.ensureLoaded(c);
        const [info, vectors] = await Promise.all([this.store.info(c), this.store.count(c)]);
        const idx = this.collections.index(c);
        const configuredModel = this.configuredModel(c);
        const index: 'empty' | 'exact' | 'building' | 'hnsw' = !idx || idx.size === 0 ? 'empty' : idx.graphReady ? 'hnsw' : idx.size >= this.s.exactSearchBelow ? 'building' : 'exact';
        return {
          collection: c,
          model: vectors > 0 ? (info?.model ?? null) : null,
          dimensions: vectors > 0 ? (info?.dimensions ?? null) : null,
          vectors,
          configuredModel,
          needsReindex: vectors > 0 && !!info && info.model !== configuredModel,
          index,
          graphFromSnapshot: idx?.graphFromSnapshot ?? false,
        };
      }),
    );
    return { items };
  }

  async resetCollection(input: In<'resetCollection'>) {
    const actor = currentContext()?.actor;
    if (actor?.type === 'user' && !actor.roles.includes('admin')) throw new ContractError('forbidden', 'resetting a collection needs the admin role');
    const removed = await this.store.reset(input.collection);
    this.collections.dropLocal(input.collection);
    this.logger.info({ collection: input.collection, removed }, 'vector collection reset');
    return { removed };
  }

  async start(): Promise<void> {
    await this.settings.reload();
    await this.collections.start();
  }

  async stop(): Promise<void> {
    await this.collections.stop();
    await this.store.close();
  }
}
