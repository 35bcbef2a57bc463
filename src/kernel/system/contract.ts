// The kernel's own admin surface: the instance registry and the saga journal. Not a module (the kernel
// hosts it in every process), but declared like one so the gateway mounts and documents it the same way.
import { z } from 'zod';
import { defineContract, operation } from '../contract/define.js';

const instance = z.object({
  id: z.string(),
  url: z.string().nullable(),
  modules: z.array(z.string()),
  version: z.string(),
  startedAt: z.string(),
  lastHeartbeat: z.string(),
});

const moduleInstance = z.object({
  module: z.string(),
  where: z.enum(['local', 'remote']),
  url: z.string().nullable(),
  version: z.string().nullable(),
  health: z.enum(['ok', 'degraded', 'down']),
  detail: z.string().optional(),
  lastHeartbeat: z.string().nullable(),
});

const sagaStep = z.object({
  name: z.string(),
  module: z.string(),
  operation: z.string(),
  status: z.string(),
  attempts: z.number(),
  idempotencyKey: z.string(),
  result: z.unknown().optional(),
  error: z.unknown().optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
});

const saga = z.object({
  id: z.string(),
  type: z.string(),
  status: z.string(),
  input: z.unknown(),
  currentStep: z.union([z.number(), z.string()]).nullable().optional(),
  error: z.unknown().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  steps: z.array(sagaStep),
});

const deadLetter = z.object({
  id: z.string(),
  moduleId: z.string(),
  type: z.string(),
  attempts: z.number().int(),
  error: z.string(),
  failedAt: z.string(),
  event: z.object({
    id: z.string(),
    type: z.string(),
    version: z.number(),
    occurredAt: z.string(),
    source: z.string(),
    requestId: z.string().optional(),
    actor: z.unknown().optional(),
    payload: z.unknown(),
  }),
});

export const systemContract = defineContract({
  id: 'system',
  summary: 'Module instances (local and remote), the saga journal and dead-lettered events.',
  operations: {
    listServices: operation({
      input: z.object({}),
      output: z.object({ items: z.array(moduleInstance), instances: z.array(instance) }),
      idempotent: true,
      summary: 'Every module: where it runs, its URL, version, health and last heartbeat',
    }),
    listSagas: operation({
      input: z.object({
        status: z.string().optional(),
        limit: z.coerce.number().int().min(1).max(100).default(20),
        cursor: z.string().optional(),
      }),
      output: z.object({ items: z.array(saga), nextCursor: z.string().nullable() }),
      idempotent: true,
    }),
    getSaga: operation({ input: z.object({ id: z.string().min(1) }), output: saga, idempotent: true }),
    listDeadEvents: operation({
      input: z.object({
        module: z.string().optional(),
        limit: z.coerce.number().int().min(1).max(100).default(20),
      }),
      output: z.object({ items: z.array(deadLetter) }),
      idempotent: true,
      summary: 'Event deliveries that failed every attempt, newest first',
    }),
  },
  errors: ['not_found'],
  routes: [
    { method: 'GET', path: '/services', operation: 'listServices', auth: 'admin' },
    { method: 'GET', path: '/sagas', operation: 'listSagas', auth: 'admin' },
    { method: 'GET', path: '/sagas/:id', operation: 'getSaga', auth: 'admin' },
    { method: 'GET', path: '/events/dead', operation: 'listDeadEvents', auth: 'admin' },
  ],
});
