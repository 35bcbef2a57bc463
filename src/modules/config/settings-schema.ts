// What the config module knows about one namespace's schema: its fields, defaults and secret fields.
import { z } from 'zod';
import type { SettingsNamespace } from '../../kernel/module/tokens.js';
import { REDACTED } from './contract.js';

export class NamespaceSchema {
  readonly fields: Set<string>;
  readonly secrets: Set<string>;
  readonly jsonSchema: Record<string, unknown>;

  constructor(readonly ns: SettingsNamespace) {
    this.fields = new Set(Object.keys(ns.schema.shape));
    this.jsonSchema = z.toJSONSchema(ns.schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    delete this.jsonSchema.$schema;
    const props = (this.jsonSchema.properties ?? {}) as Record<string, { secret?: unknown }>;
    this.secrets = new Set(Object.entries(props).filter(([, p]) => p.secret === true).map(([k]) => k));
  }

  redact(values: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(values)) {
      out[k] = this.secrets.has(k) && v !== undefined && v !== null && v !== '' ? REDACTED : v;
    }
    return out;
  }
}
