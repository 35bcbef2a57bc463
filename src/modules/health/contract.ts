// Liveness, readiness and the aggregated health of every module (hosted here or remote) and every
// dependency, for probes, load balancers and the admin console.
import { z } from 'zod';
import { defineContract, operation } from '../../kernel/contract/index.js';

const status = z.enum(['ok', 'degraded', 'down']);
const check = z.object({ status, detail: z.string().optional() });

export const healthSettings = z.object({
  checkTimeoutMs: z.number().int().min(50).max(30_000).default(1500).describe('Longest wait for one module or dependency check'),
});

export const healthContract = defineContract({
  id: 'health',
  summary: 'Liveness, readiness and aggregated health of modules and dependencies.',
  operations: {
    getHealth: operation({
      input: z.object({}),
      output: z.object({
        status,
        version: z.string(),
        uptimeS: z.number(),
        modules: z.record(
          z.string(),
          check.extend({
            where: z.enum(['local', 'remote']),
            url: z.string().optional(),
            breaker: z.enum(['closed', 'open', 'half-open']).optional(),
          }),
        ),
        dependencies: z.record(z.string(), check),
      }),
      idempotent: true,
      timeoutMs: 5000,
    }),
    getLive: operation({ input: z.object({}), output: z.object({ status: z.literal('ok') }), idempotent: true, timeoutMs: 1000 }),
    getReady: operation({
      input: z.object({}),
      output: z.object({ status: z.literal('ready'), dependencies: z.record(z.string(), check) }),
      idempotent: true,
      timeoutMs: 5000,
      summary: 'Answers 503 unavailable while starting or while a critical dependency is down',
    }),
  },
  errors: ['unavailable'],
  settings: healthSettings,
  routes: [
    { method: 'GET', path: '/health', operation: 'getHealth', auth: 'public', rateLimit: 'none' },
    { method: 'GET', path: '/health/live', operation: 'getLive', auth: 'public', rateLimit: 'none' },
    { method: 'GET', path: '/health/ready', operation: 'getReady', auth: 'public', rateLimit: 'none' },
  ],
});
