// The accelerator's operations: capabilities (probed providers, model files, loaded sessions), status
// (provider in use, queue, counters) and inference on the models of `<data dir>/models/`.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { CallInfo, Handlers, Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext } from '../../kernel/context/request-context.js';
import { ModuleLogger, ProcessConfigToken } from '../../kernel/module/tokens.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import type { AppConfig } from '../../kernel/config/app-config.js';
import { configContract } from '../config/contract.js';
import { acceleratorContract, acceleratorSettings, type TensorJson } from './contract.js';
import { cpuDevice, probeProviders, type ProviderReport } from './providers.js';
import { fromWire, toWire } from './tensors.js';
import { WorkerPool, type RunResult, type ValueInfo } from './worker-pool.js';

type InferInput = Parameters<Handlers<typeof acceleratorContract>['infer']>[0];

interface LoadedModel {
  name: string;
  provider: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

function requireAdminIfUser(): void {
  // Other modules (the onnx embedder) call as a service; a user reaching this port must be an admin,
  // whichever binding carried the call.
  const actor = currentContext()?.actor;
  if (actor?.type === 'user' && !actor.roles.includes('admin')) throw new ContractError('forbidden', 'inference needs the admin role');
}

@injectable()
export class AcceleratorService implements Handlers<typeof acceleratorContract> {
  readonly settings: SettingsHolder<typeof acceleratorSettings>;
  readonly pool: WorkerPool;
  private readonly modelsDir: string;
  private providers: Promise<ProviderReport[]> | undefined;
  private readonly loaded = new Map<string, LoadedModel>();
  private lastProvider = 'cpu';
  private inferences = 0;
  private failures = 0;
  private fallbacks = 0;
  private totalLatencyMs = 0;

  constructor(
    @inject(ModuleLogger) private readonly logger: Logger,
    @inject(ProcessConfigToken) config: AppConfig,
    @inject(configContract.token) configPort: Port<typeof configContract>,
  ) {
    this.settings = new SettingsHolder(acceleratorSettings, async () => (await configPort.getModuleSettings({ module: acceleratorContract.id })).settings, logger);
    this.modelsDir = path.resolve(config.AUTOBOT_DATA_DIR, 'models');
    const s = this.settings.current();
    this.pool = new WorkerPool(logger, { maxConcurrent: s.maxConcurrent, maxQueued: s.maxQueued });
  }

  applySettings(): void {
    const s = this.settings.current();
    this.pool.maxConcurrent = s.maxConcurrent;
    this.pool.maxQueued = s.maxQueued;
  }

  /** Probed once per process: a provider's presence does not change while it runs. */
  providerReports(): Promise<ProviderReport[]> {
    this.providers ??= probeProviders(this.pool).then((reports) => {
      this.logger.info({ available: reports.filter((r) => r.available).map((r) => r.name) }, 'execution providers probed');
      return reports;
    });
    return this.providers;
  }

  /** The preferred order, keeping only the providers this host has, and CPU always last. */
  private async providerOrder(): Promise<string[]> {
    const available = new Set((await this.providerReports()).filter((r) => r.available).map((r) => r.name));
    const order = this.settings.current().preferredProviders.filter((p) => p !== 'cpu' && available.has(p));
    return [...order, 'cpu'];
  }

  private async modelFile(name: string): Promise<{ file: string; mtimeMs: number }> {
    const file = path.resolve(this.modelsDir, `${name}.onnx`);
    if (!file.startsWith(this.modelsDir + path.sep)) throw new ContractError('invalid_input', 'the model name leaves the models directory', [{ path: 'model', message: 'bad name' }]);
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error('not a file');
      return { file, mtimeMs: st.mtimeMs };
    } catch {
      const known = (await this.modelFiles()).map((m) => m.name);
      throw new ContractError('not_found', `no model "${name}" in the models directory; models here: ${known.length ? known.join(', ') : 'none'}`);
    }
  }

  private async modelFiles(): Promise<{ name: string; size: number }[]> {
    const out: { name: string; size: number }[] = [];
    const walk = async (dir: string, prefix: string, depth: number) => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (e.isDirectory() && depth === 0) await walk(path.join(dir, e.name), `${e.name}/`, 1);
        else if (e.isFile() && e.name.endsWith('.onnx')) {
          const st = await stat(path.join(dir, e.name)).catch(() => undefined);
          if (st) out.push({ name: prefix + e.name.slice(0, -'.onnx'.length), size: st.size });
        }
      }
    };
    await walk(this.modelsDir, '', 0);
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async capabilities() {
    const providers = await this.providerReports();
    const devices = [cpuDevice(), ...providers.filter((p) => p.available && p.name !== 'cpu').map((p) => ({ provider: p.name, name: `${p.name} device` }))];
    return {
      providers,
      preferred: await this.providerOrder(),
      devices,
      models: await this.modelFiles(),
      loadedModels: [...this.loaded.values()],
      runtime: { onnxruntime: (await import('onnxruntime-node')).env.versions.node ?? 'unknown' },
    };
  }

  async status() {
    return {
      provider: this.lastProvider,
      queueDepth: this.pool.queueDepth,
      running: this.pool.running,
      maxConcurrent: this.pool.maxConcurrent,
      inferences: this.inferences,
      failures: this.failures,
      averageLatencyMs: this.inferences ? Math.round((this.totalLatencyMs / this.inferences) * 1000) / 1000 : 0,
      fallbacks: this.fallbacks,
    };
  }

  async describeModel(input: { model: string }, call: CallInfo) {
    requireAdminIfUser();
    const { file, mtimeMs } = await this.modelFile(input.model);
    const result = await this.pool.run(
      { path: file, mtimeMs, providers: await this.providerOrder(), intraOpThreads: this.settings.current().intraOpThreads, feeds: {} },
      call.signal,
      true,
    );
    this.note(input.model, result);
    return { model: input.model, provider: result.provider, inputs: result.inputs, outputs: result.outputsInfo };
  }

  private note(model: string, result: RunResult): void {
    if (result.failures.length > 0) {
      this.fallbacks++;
      this.logger.warn({ model, failures: result.failures, provider: result.provider }, 'a preferred execution provider could not load the model; fell back');
    }
    this.lastProvider = result.provider;
    this.loaded.set(model, { name: model, provider: result.provider, inputs: result.inputs, outputs: result.outputsInfo });
  }

  async infer(input: InferInput, call: CallInfo) {
    requireAdminIfUser();
    const { file, mtimeMs } = await this.modelFile(input.model);
    const feeds: Record<string, ReturnType<typeof toWire>> = {};
    for (const [name, t] of Object.entries(input.inputs)) feeds[name] = toWire(t as TensorJson, `inputs.${name}`);
    const started = performance.now();
    try {
      const result = await this.pool.run(
        { path: file, mtimeMs, providers: await this.providerOrder(), intraOpThreads: this.settings.current().intraOpThreads, feeds, ...(input.outputs ? { outputs: input.outputs } : {}) },
        call.signal,
      );
      this.note(input.model, result);
      this.inferences++;
      const latencyMs = performance.now() - started;
      this.totalLatencyMs += latencyMs;
      const outputs: Record<string, TensorJson> = {};
      for (const [name, t] of Object.entries(result.outputs)) outputs[name] = fromWire(t);
      return { model: input.model, provider: result.provider, latencyMs: Math.round(latencyMs * 1000) / 1000, outputs };
    } catch (err) {
      this.failures++;
      throw err;
    }
  }

  async stop(): Promise<void> {
    await this.pool.close();
  }
}
