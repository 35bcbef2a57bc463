// The accelerator's contract over both bindings, on ONNX models the test builds itself: providers
// probed honestly, inference with the numbers checked, sessions cached and reopened when the file
// changes, model names that cannot leave the models directory, admin-only inference, and the routes.
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import { acceleratorContract } from '../../../src/modules/accelerator/contract.js';
import { acceleratorModule } from '../../../src/modules/accelerator/module.js';
import { configModule } from '../../../src/modules/config/module.js';
import { healthModule } from '../../../src/modules/health/module.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { affineModel } from '../../support/onnx-model.js';
import { ADMIN_TOKEN, adminActor, bearer, USER_TOKEN, userActor } from '../../support/test-auth.js';

const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);

async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string; details?: unknown }> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err: err as { code: string; message: string; details?: unknown } }),
  );
  if (outcome.ok) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value).slice(0, 200)}`);
  return outcome.err;
}

describe.each(bindingKinds)('accelerator contract (%s binding)', (kind) => {
  let redis: TestRedis;
  let app: TestApp;
  let npu: Port<typeof acceleratorContract>;
  let modelsDir: string;

  beforeAll(async () => {
    redis = await startTestRedis();
    app = await startTestApp({ redisUrl: redis.url, catalogue: [configModule, healthModule, acceleratorModule] });
    npu = portFor(kind, app, acceleratorContract);
    modelsDir = path.join(app.dataDir, 'models');
    mkdirSync(path.join(modelsDir, 'nested'), { recursive: true });
    writeFileSync(path.join(modelsDir, 'affine.onnx'), affineModel({ width: 3, scale: 2, bias: 1 }));
    writeFileSync(path.join(modelsDir, 'nested', 'model.onnx'), affineModel({ width: 2, scale: -1, bias: 0 }));
  });
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  it('reports CPU available and every other provider as it really is here', async () => {
    const caps = await npu.capabilities({});
    const compiled = new Set(ort.listSupportedBackends().map((b) => b.name));
    const cpu = caps.providers.find((p) => p.name === 'cpu');
    expect(cpu).toEqual({ name: 'cpu', compiled: true, available: true });
    for (const p of caps.providers) {
      expect(p.compiled).toBe(compiled.has(p.name));
      // A provider this build lacks can never be available; one it has is available only if a session opened.
      if (!p.compiled) expect(p.available).toBe(false);
      if (!p.available) expect(p.detail).toBeTruthy();
    }
    for (const name of ['cuda', 'openvino', 'dml']) expect(caps.providers.map((p) => p.name)).toContain(name);
    // The order actually used: only available providers, CPU last.
    expect(caps.preferred.at(-1)).toBe('cpu');
    for (const p of caps.preferred) expect(caps.providers.find((x) => x.name === p)?.available).toBe(true);
    expect(caps.devices[0]).toMatchObject({ provider: 'cpu' });
    expect(caps.models.map((m) => m.name)).toEqual(['affine', 'nested/model']);
  });

  it('runs a model on the tensors given and answers tensors, counting it in the status', async () => {
    const before = await npu.status({});
    const out = await as(adminActor, () =>
      npu.infer({ model: 'affine', inputs: { x: { type: 'float32', dims: [2, 3], data: [1, 2, 3, 4, 5, 6] } } }),
    );
    expect(out.provider).toBe('cpu');
    expect(out.outputs.y).toEqual({ type: 'float32', dims: [2, 3], data: [3, 5, 7, 9, 11, 13] });
    const nested = await npu.infer({ model: 'nested/model', inputs: { x: { type: 'float32', dims: [1, 2], data: [4, -2] } } });
    expect(nested.outputs.y!.data).toEqual([-4, 2]);

    const after = await npu.status({});
    expect(after.inferences).toBe(before.inferences + 2);
    expect(after.provider).toBe('cpu');
    expect(after.averageLatencyMs).toBeGreaterThan(0);
    expect(after.queueDepth).toBe(0);
    const loaded = (await npu.capabilities({})).loadedModels.find((m) => m.name === 'affine');
    expect(loaded).toMatchObject({ provider: 'cpu', inputs: [{ name: 'x' }], outputs: [{ name: 'y' }] });
  });

  it('reopens the session when the model file changes', async () => {
    const run = () => npu.infer({ model: 'affine', inputs: { x: { type: 'float32', dims: [1, 3], data: [1, 1, 1] } } });
    expect((await run()).outputs.y!.data).toEqual([3, 3, 3]);
    const file = path.join(modelsDir, 'affine.onnx');
    writeFileSync(file, affineModel({ width: 3, scale: 10, bias: 0 }));
    const future = new Date(Date.now() + 5000);
    utimesSync(file, future, future);
    expect((await run()).outputs.y!.data).toEqual([10, 10, 10]);
    writeFileSync(file, affineModel({ width: 3, scale: 2, bias: 1 }));
    const later = new Date(Date.now() + 10_000);
    utimesSync(file, later, later);
  });

  it('answers not_found naming the models there are, and never leaves the models directory', async () => {
    const missing = await refusal(npu.infer({ model: 'nope', inputs: { x: { type: 'float32', dims: [1], data: [1] } } }));
    expect(missing.code).toBe('not_found');
    expect(missing.message).toContain('affine');
    for (const model of ['../secrets', 'a/../../b', '/etc/passwd', 'a/b/c']) {
      const bad = await refusal(npu.infer({ model, inputs: { x: { type: 'float32', dims: [1], data: [1] } } }));
      expect(bad.code).toBe('invalid_input');
    }
  });

  it('refuses tensors whose data does not fit their dims or type, naming the field', async () => {
    const short = await refusal(npu.infer({ model: 'affine', inputs: { x: { type: 'float32', dims: [2, 3], data: [1, 2, 3] } } }));
    expect(short.code).toBe('invalid_input');
    expect((short.details as { path: string }[]).map((d) => d.path)).toContain('inputs.x.data');
    const strings = await refusal(npu.infer({ model: 'affine', inputs: { x: { type: 'float32', dims: [1, 3], data: ['a', 'b', 'c'] } } }));
    expect(strings.code).toBe('invalid_input');
    // A wrong input name is the model's complaint, still a client mistake.
    const wrongName = await refusal(npu.infer({ model: 'affine', inputs: { nope: { type: 'float32', dims: [1, 3], data: [1, 2, 3] } } }));
    expect(wrongName.code).toBe('invalid_input');
    expect(wrongName.message).toMatch(/nope|input/i);
  });

  it('lets only admins (or other modules) run inference', async () => {
    const err = await refusal(as(userActor, () => npu.infer({ model: 'affine', inputs: { x: { type: 'float32', dims: [1, 3], data: [1, 2, 3] } } })));
    expect(err.code).toBe('forbidden');
    const asService = await as({ type: 'service', name: 'embeddings' }, () =>
      npu.infer({ model: 'affine', inputs: { x: { type: 'float32', dims: [1, 3], data: [0, 0, 0] } } }),
    );
    expect(asService.outputs.y!.data).toEqual([1, 1, 1]);
  });

  // The REST surface is the same whichever binding the test holds: checked once.
  if (kind === 'local') describe('routes', () => {
    const api = (p: string) => `${app.url}/api/v1${p}`;
    const post = (token: string, body: unknown) =>
      fetch(api('/npu/inference'), { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify(body) });

    it('serves capabilities and status to users, inference to admins only', async () => {
      const caps = await fetch(api('/npu/capabilities'), { headers: bearer(USER_TOKEN) });
      expect(caps.status).toBe(200);
      expect(((await caps.json()) as { providers: unknown[] }).providers.length).toBeGreaterThan(0);
      const status = await fetch(api('/npu/status'), { headers: bearer(USER_TOKEN) });
      expect(await status.json()).toMatchObject({ provider: expect.any(String), queueDepth: 0 });
      const body = { model: 'affine', inputs: { x: { type: 'float32', dims: [1, 3], data: [1, 2, 3] } } };
      expect((await post(USER_TOKEN, body)).status).toBe(403);
      const ok = await post(ADMIN_TOKEN, body);
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { outputs: { y: { data: number[] } } }).outputs.y.data).toEqual([3, 5, 7]);
      const bad = await post(ADMIN_TOKEN, { model: 'affine', inputs: { x: { type: 'float32', dims: [2, 3], data: [1] } } });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_input');
    });
  });
});
