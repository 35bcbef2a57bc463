// Runtime settings of every module, stored in Redis, each module's namespace validated by the schema
// its contract declares; a change is announced with `config.settings.changed` so modules reload.
// Secrets (fields marked `.meta({ secret: true })`) never leave through the admin surface.
import { z } from 'zod';
import { defineContract, event, operation } from '../../kernel/contract/index.js';

export const REDACTED = '********';

const namespaces = z.record(z.string(), z.record(z.string(), z.unknown()));

export const configContract = defineContract({
  id: 'config',
  summary: 'Runtime settings per module namespace: read, validated change, JSON Schema; secrets redacted.',
  operations: {
    getSettings: operation({
      input: z.object({}),
      output: z.object({ version: z.number().int(), settings: namespaces }),
      idempotent: true,
      summary: 'Effective settings of every namespace (defaults filled in, secrets redacted)',
    }),
    getModuleSettings: operation({
      input: z.object({ module: z.string().min(1) }),
      output: z.object({ version: z.number().int(), settings: z.record(z.string(), z.unknown()) }),
      idempotent: true,
      summary: 'One namespace with its secrets, for the module that owns it',
    }),
    updateSettings: operation({
      input: z.object({ changes: namespaces }),
      output: z.object({ version: z.number().int(), settings: namespaces }),
      summary: 'Changes some fields of some namespaces; null resets a field to its default',
    }),
    getSchema: operation({
      input: z.object({}),
      output: z.object({ namespaces: z.record(z.string(), z.record(z.string(), z.unknown())) }),
      idempotent: true,
      summary: 'JSON Schema of every namespace',
    }),
  },
  events: {
    'config.settings.changed': event({
      version: 1,
      payload: z.object({ namespaces: z.array(z.string()), version: z.number().int() }),
      delivery: 'every-instance',
    }),
  },
  errors: ['invalid_input', 'not_found', 'conflict'],
  routes: [
    { method: 'GET', path: '/config', operation: 'getSettings', auth: 'admin' },
    { method: 'PATCH', path: '/config', operation: 'updateSettings', auth: 'admin', input: (req) => ({ changes: req.body }) },
    { method: 'GET', path: '/config/schema', operation: 'getSchema', auth: 'admin' },
  ],
});
