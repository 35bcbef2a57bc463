// The inference pool on its own: CPU fallback when a preferred provider cannot load a model, a bounded
// queue that refuses rather than grows, and the probe model's bytes matching the test builder.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/kernel/log/logger.js';
import { PROBE_MODEL } from '../../../src/modules/accelerator/providers.js';
import { WorkerPool } from '../../../src/modules/accelerator/worker-pool.js';
import { affineModel } from '../../support/onnx-model.js';

describe('inference worker pool', () => {
  let dir: string;
  let model: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'abn-'));
    model = path.join(dir, 'affine.onnx');
    writeFileSync(model, affineModel({ width: 3, scale: 2, bias: 1 }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const feeds = (n: number) => ({ x: { type: 'float32', dims: [n, 3], data: new Float32Array(n * 3).fill(1) } });

  it('embeds the probe model the test builder makes', () => {
    expect(Buffer.from(affineModel({ width: 3, scale: 2, bias: 1 })).equals(PROBE_MODEL)).toBe(true);
  });

  it('falls back to CPU when a preferred provider fails to load the model, and says which failed', async () => {
    const pool = new WorkerPool(createLogger('silent'), { maxConcurrent: 1, maxQueued: 4 });
    try {
      // This host has no CUDA library and no GPU adapter: both fail to open a session, CPU answers.
      const r = await pool.run({ path: model, mtimeMs: 1, providers: ['cuda', 'webgpu', 'cpu'], intraOpThreads: 1, feeds: feeds(1) });
      expect(r.provider).toBe('cpu');
      expect(r.failures.map((f) => f.provider)).toEqual(['cuda', 'webgpu']);
      expect(Array.from(r.outputs.y!.data as Float32Array)).toEqual([3, 3, 3]);
      // The session is cached: the next run neither retries the providers nor reports failures again.
      const again = await pool.run({ path: model, mtimeMs: 1, providers: ['cuda', 'webgpu', 'cpu'], intraOpThreads: 1, feeds: feeds(1) });
      expect(again.failures).toEqual([]);
      // With no provider able to load it, the model is unavailable, not a crash.
      await expect(pool.run({ path: model, mtimeMs: 2, providers: ['cuda'], intraOpThreads: 1, feeds: feeds(1) })).rejects.toMatchObject({ code: 'unavailable' });
    } finally {
      await pool.close();
    }
  });

  it('runs at most maxConcurrent at once, queues up to maxQueued and refuses beyond', async () => {
    const pool = new WorkerPool(createLogger('silent'), { maxConcurrent: 1, maxQueued: 1 });
    try {
      const req = () => pool.run({ path: model, mtimeMs: 1, providers: ['cpu'], intraOpThreads: 1, feeds: feeds(200_000) });
      const first = req();
      const second = req();
      const third = req();
      expect(pool.running).toBe(1);
      expect(pool.queueDepth).toBe(1);
      await expect(third).rejects.toMatchObject({ code: 'unavailable' });
      const [a, b] = await Promise.all([first, second]);
      expect((a.outputs.y!.data as Float32Array)[0]).toBe(3);
      expect((b.outputs.y!.data as Float32Array).length).toBe(600_000);
      expect(pool.queueDepth).toBe(0);
      expect(pool.running).toBe(0);
    } finally {
      await pool.close();
    }
  });

  it('drops a waiting inference whose deadline passes', async () => {
    const pool = new WorkerPool(createLogger('silent'), { maxConcurrent: 1, maxQueued: 8 });
    try {
      const busy = pool.run({ path: model, mtimeMs: 1, providers: ['cpu'], intraOpThreads: 1, feeds: feeds(200_000) });
      const ac = new AbortController();
      const waiting = pool.run({ path: model, mtimeMs: 1, providers: ['cpu'], intraOpThreads: 1, feeds: feeds(1) }, ac.signal);
      expect(pool.queueDepth).toBe(1);
      ac.abort();
      await expect(waiting).rejects.toMatchObject({ code: 'timeout' });
      expect(pool.queueDepth).toBe(0);
      await busy;
    } finally {
      await pool.close();
    }
  });
});
