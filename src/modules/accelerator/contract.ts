// Inference hardware behind one port: which onnxruntime execution providers this host really has (CPU
// everywhere; CUDA, OpenVINO, DirectML where present), ONNX models from `<data dir>/models/` run with a
// preferred provider order and CPU fallback, with bounded and queued concurrency.
import { z } from 'zod';
import { defineContract, operation } from '../../kernel/contract/index.js';

export const TENSOR_TYPES = ['float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'bool', 'string'] as const;
export const PROVIDER_NAMES = ['cuda', 'tensorrt', 'openvino', 'dml', 'coreml', 'webgpu', 'cpu'] as const;
export const MAX_TENSOR_ELEMENTS = 4_000_000;

/**
 * A model's name: `<name>` for `<data dir>/models/<name>.onnx`, or `<dir>/<name>` for a model kept in a
 * directory of its own (an embedding model's `model.onnx` beside its `tokenizer.json`). Never leaves
 * the models directory.
 */
export const modelName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/, 'a model name: letters, digits, dot, dash, underscore, at most one "/"')
  .refine((n) => !n.split('/').some((part) => part.includes('..')), 'no ".." in a model name');

export const tensor = z
  .object({
    type: z.enum(TENSOR_TYPES),
    dims: z.array(z.number().int().min(0).max(MAX_TENSOR_ELEMENTS)).max(8),
    data: z.union([z.array(z.number()), z.array(z.string()), z.array(z.boolean())]),
  })
  .superRefine((t, ctx) => {
    const size = t.dims.reduce((a, b) => a * b, 1);
    if (size > MAX_TENSOR_ELEMENTS) ctx.addIssue({ code: 'custom', path: ['dims'], message: `at most ${MAX_TENSOR_ELEMENTS} elements` });
    else if (t.data.length !== size) ctx.addIssue({ code: 'custom', path: ['data'], message: `dims [${t.dims.join(', ')}] need ${size} values, got ${t.data.length}` });
  });
export type TensorJson = z.output<typeof tensor>;

const valueInfo = z.object({ name: z.string(), type: z.string().optional(), dims: z.array(z.union([z.number(), z.string()])).optional() });

const providerView = z.object({
  name: z.string(),
  /** This build of onnxruntime-node carries it. */
  compiled: z.boolean(),
  /** A session really opened with it on this host (probed, not assumed). */
  available: z.boolean(),
  detail: z.string().optional(),
});

export const acceleratorSettings = z.object({
  preferredProviders: z
    .array(z.enum(PROVIDER_NAMES))
    .min(1)
    .default(['cuda', 'openvino', 'dml', 'cpu'])
    .describe('Execution providers tried in order when a model is loaded; CPU is always the last resort'),
  maxConcurrent: z.number().int().min(1).max(64).default(2).describe('Inferences running at once (each in a worker thread)'),
  maxQueued: z.number().int().min(0).max(100_000).default(256).describe('Inferences waiting for a slot; past it a call is refused (503)'),
  intraOpThreads: z.number().int().min(0).max(256).default(1).describe('Threads per inference inside onnxruntime (0: its default)'),
});
export type AcceleratorSettings = z.output<typeof acceleratorSettings>;

export const acceleratorContract = defineContract({
  id: 'accelerator',
  summary: 'ONNX inference over the execution providers this host has, with preferred order and CPU fallback.',
  operations: {
    capabilities: operation({
      input: z.object({}),
      output: z.object({
        providers: z.array(providerView),
        preferred: z.array(z.string()),
        devices: z.array(z.object({ provider: z.string(), name: z.string(), count: z.number().int().optional() })),
        models: z.array(z.object({ name: z.string(), size: z.number().int() })),
        loadedModels: z.array(z.object({ name: z.string(), provider: z.string(), inputs: z.array(valueInfo), outputs: z.array(valueInfo) })),
        runtime: z.object({ onnxruntime: z.string() }),
      }),
      idempotent: true,
      timeoutMs: 30_000,
    }),
    status: operation({
      input: z.object({}),
      output: z.object({
        /** The provider of the most recently loaded session (`cpu` before any). */
        provider: z.string(),
        queueDepth: z.number().int(),
        running: z.number().int(),
        maxConcurrent: z.number().int(),
        inferences: z.number().int(),
        failures: z.number().int(),
        averageLatencyMs: z.number(),
        fallbacks: z.number().int(),
      }),
      idempotent: true,
    }),
    describeModel: operation({
      input: z.object({ model: modelName }),
      output: z.object({ model: z.string(), provider: z.string(), inputs: z.array(valueInfo), outputs: z.array(valueInfo) }),
      idempotent: true,
      timeoutMs: 60_000,
      summary: "Loads a model (if not yet) and names its inputs and outputs",
    }),
    infer: operation({
      input: z.object({
        model: modelName,
        inputs: z.record(z.string().min(1).max(200), tensor),
        /** Only these outputs (default: all). */
        outputs: z.array(z.string().min(1).max(200)).max(64).optional(),
      }),
      output: z.object({ model: z.string(), provider: z.string(), latencyMs: z.number(), outputs: z.record(z.string(), tensor) }),
      idempotent: true,
      timeoutMs: 120_000,
      summary: 'Runs a model of <data dir>/models on named input tensors',
    }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'not_found', 'unavailable', 'timeout'],
  settings: acceleratorSettings,
  routes: [
    { method: 'GET', path: '/npu/capabilities', operation: 'capabilities', auth: 'user' },
    { method: 'GET', path: '/npu/status', operation: 'status', auth: 'user' },
    { method: 'POST', path: '/npu/inference', operation: 'infer', auth: 'admin', rateLimit: 'expensive' },
  ],
});
