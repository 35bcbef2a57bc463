// Bounded, queued inference: at most `maxConcurrent` inferences run at once, each in its own worker
// thread with its own session cache; the rest wait in a FIFO of at most `maxQueued`. A call whose
// deadline passes while it waits leaves the queue; one already running cannot be interrupted (the
// native run does not stop), so its answer is dropped.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { ContractError } from '../../kernel/contract/errors.js';
import { inferenceWorkerSource } from './inference-worker-source.js';

const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');

export type WireData = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array | string[] | boolean[];
export interface WireTensor {
  type: string;
  dims: number[];
  data: WireData;
}
export interface ValueInfo {
  name: string;
  type?: string;
  dims?: (number | string)[];
}

export interface RunRequest {
  path: string;
  mtimeMs: number;
  providers: string[];
  intraOpThreads: number;
  feeds: Record<string, WireTensor>;
  outputs?: string[];
}

export interface RunResult {
  provider: string;
  failures: { provider: string; error: string }[];
  inputs: ValueInfo[];
  outputsInfo: ValueInfo[];
  outputs: Record<string, WireTensor>;
  latencyMs: number;
}

interface Reply {
  id: number;
  ok: boolean;
  error?: string;
  loadFailure?: boolean;
}

interface Slot {
  worker: Worker;
  busy: boolean;
  pending: Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>;
}

interface Waiter {
  start: (slot: Slot) => void;
  abandon: () => void;
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Waiter[] = [];
  private nextId = 1;
  private closed = false;
  maxConcurrent: number;
  maxQueued: number;

  constructor(
    private readonly logger: Logger,
    limits: { maxConcurrent: number; maxQueued: number },
  ) {
    this.maxConcurrent = limits.maxConcurrent;
    this.maxQueued = limits.maxQueued;
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  get running(): number {
    return this.slots.filter((s) => s.busy).length;
  }

  private spawn(): Slot {
    const worker = new Worker(inferenceWorkerSource, { eval: true, workerData: { ortPath } });
    worker.unref();
    const slot: Slot = { worker, busy: false, pending: new Map() };
    worker.on('message', (reply: Reply) => {
      const p = slot.pending.get(reply.id);
      slot.pending.delete(reply.id);
      p?.resolve(reply);
    });
    const fail = (err: Error) => {
      this.logger.error({ err: err.message }, 'inference worker died');
      for (const p of slot.pending.values()) p.reject(new ContractError('unavailable', `inference worker failed: ${err.message}`));
      slot.pending.clear();
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      this.pump();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed && slot.pending.size > 0) fail(new Error(`exited with code ${code}`));
      else {
        const i = this.slots.indexOf(slot);
        if (i >= 0) this.slots.splice(i, 1);
      }
    });
    this.slots.push(slot);
    return slot;
  }

  private send(slot: Slot, message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ ...message, id }, transfer);
    });
  }

  private idleSlot(): Slot | undefined {
    const idle = this.slots.find((s) => !s.busy);
    if (idle) return idle;
    if (this.slots.length < this.maxConcurrent) return this.spawn();
    return undefined;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const slot = this.idleSlot();
      if (!slot) return;
      const waiter = this.queue.shift()!;
      waiter.start(slot);
    }
  }

  /** Waits for a free worker (bounded queue), runs `fn` on it, frees it. */
  private async withSlot<T>(signal: AbortSignal | undefined, fn: (slot: Slot) => Promise<T>): Promise<T> {
    if (this.closed) throw new ContractError('unavailable', 'the accelerator is stopping');
    const immediate = this.queue.length === 0 ? this.idleSlot() : undefined;
    const slot =
      immediate ??
      (await new Promise<Slot>((resolve, reject) => {
        if (this.queue.length >= this.maxQueued) {
          reject(new ContractError('unavailable', `the accelerator is busy: ${this.queue.length} inferences already waiting`));
          return;
        }
        const onAbort = () => waiter.abandon();
        const waiter: Waiter = {
          start: (s) => {
            signal?.removeEventListener('abort', onAbort);
            resolve(s);
          },
          abandon: () => {
            const i = this.queue.indexOf(waiter);
            if (i >= 0) this.queue.splice(i, 1);
            reject(new ContractError('timeout', 'the inference waited past its deadline for a free slot'));
          },
        };
        this.queue.push(waiter);
        signal?.addEventListener('abort', onAbort, { once: true });
      }));
    slot.busy = true;
    try {
      return await fn(slot);
    } finally {
      slot.busy = false;
      this.pump();
    }
  }

  /** Runs the model on `feeds`; with `describe`, only opens it and names its inputs and outputs. */
  async run(req: RunRequest, signal?: AbortSignal, describe = false): Promise<RunResult> {
    const transfer = new Set<ArrayBuffer>();
    for (const t of Object.values(req.feeds)) if (!Array.isArray(t.data) && t.data.buffer instanceof ArrayBuffer) transfer.add(t.data.buffer);
    const reply = await this.withSlot(signal, (slot) => this.send(slot, { kind: describe ? 'describe' : 'run', ...req }, [...transfer]));
    if (!reply.ok) {
      if (reply.loadFailure) throw new ContractError('unavailable', reply.error ?? 'the model could not be loaded');
      throw new ContractError('invalid_input', `inference failed: ${reply.error ?? 'unknown error'}`);
    }
    return reply as unknown as RunResult;
  }

  /** Opens a session on `bytes` with only `provider`: the honest test of whether this host has it. */
  async probe(provider: string, bytes: Uint8Array): Promise<{ ok: boolean; error?: string }> {
    const reply = await this.withSlot(undefined, (slot) => this.send(slot, { kind: 'probe', provider, bytes }));
    return reply.ok ? { ok: true } : { ok: false, error: reply.error ?? 'unknown' };
  }

  /** Drops a model's cached sessions in every worker (its file changed or went away). */
  async evict(path: string): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.send(slot, { kind: 'evict', path }).catch(() => undefined)));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.queue.splice(0)) w.abandon();
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }
}
