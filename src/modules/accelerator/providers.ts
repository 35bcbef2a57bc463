// Which execution providers this host really has. `listSupportedBackends` only says what this build of
// onnxruntime-node was compiled with (CUDA is listed even where no GPU or CUDA library exists), so each
// provider is probed by opening a session on a tiny model with that provider alone.
// onnxruntime-node is loaded on the first probe (its native library is several MiB): a process that
// never asks for capabilities or inference does not load it on the main thread.
import { cpus } from 'node:os';
import { PROVIDER_NAMES } from './contract.js';
import type { WorkerPool } from './worker-pool.js';

/**
 * `y = x * 2 + 1` over a float32 [n, 3] tensor: the smallest model that exercises a real kernel. The
 * bytes are what `affineModel({width: 3, scale: 2, bias: 1})` in tests/support/onnx-model.ts encodes
 * (a test checks it), kept here so production needs no protobuf library.
 */
export const PROBE_MODEL = Buffer.from(
  'CAcSDWF1dG9ib3QtdGVzdHM6jwEKGwoBeAoFc2NhbGUSBnNjYWxlZBoCbjAiA011bAoaCgZzY2FsZWQKBGJpYXMSAXkaAm4xIgNBZGQSAWcqEgoBARABIgQAAABAQgVzY2FsZSoRCgEBEAEiBAAAgD9CBGJpYXNaFAoBeBIPCg0IARIJCgMSAW4KAggDYhQKAXkSDwoNCAESCQoDEgFuCgIIA0ICEA0=',
  'base64',
);

export interface ProviderReport {
  name: string;
  compiled: boolean;
  available: boolean;
  detail?: string;
}

export async function compiledProviders(): Promise<Set<string>> {
  const ort = await import('onnxruntime-node');
  return new Set(ort.listSupportedBackends().map((b) => b.name));
}

export async function probeProviders(pool: WorkerPool): Promise<ProviderReport[]> {
  const compiled = await compiledProviders();
  const reports: ProviderReport[] = [];
  for (const name of PROVIDER_NAMES) {
    if (!compiled.has(name)) {
      reports.push({ name, compiled: false, available: false, detail: 'not in this onnxruntime-node build' });
      continue;
    }
    const outcome = await pool.probe(name, PROBE_MODEL);
    reports.push(outcome.ok ? { name, compiled: true, available: true } : { name, compiled: true, available: false, detail: outcome.error!.slice(0, 300) });
  }
  return reports;
}

export function cpuDevice(): { provider: string; name: string; count: number } {
  const list = cpus();
  return { provider: 'cpu', name: list[0]?.model.trim() ?? 'cpu', count: list.length };
}
