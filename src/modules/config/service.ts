import { inject, injectable } from 'tsyringe';
import type { Handlers } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { issuesOf, type FieldIssue } from '../../kernel/contract/validation.js';
import { ModuleEventsToken, SettingsCatalogToken, type ModuleEvents, type SettingsCatalog } from '../../kernel/module/tokens.js';
import { REDACTED, type configContract } from './contract.js';
import { NamespaceSchema } from './settings-schema.js';
import { SettingsStore, type Overrides } from './settings-store.js';

@injectable()
export class ConfigService implements Handlers<typeof configContract> {
  private readonly schemas: Map<string, NamespaceSchema>;

  constructor(
    @inject(SettingsCatalogToken) catalog: SettingsCatalog,
    @inject(SettingsStore) private readonly store: SettingsStore,
    @inject(ModuleEventsToken) private readonly events: ModuleEvents,
  ) {
    this.schemas = new Map(catalog.namespaces().map((ns) => [ns.module, new NamespaceSchema(ns)]));
  }

  /** Defaults filled in; a stored value the schema no longer accepts falls back to the default. */
  private effective(ns: NamespaceSchema, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const parsed = ns.ns.schema.safeParse(overrides);
    if (parsed.success) return parsed.data as Record<string, unknown>;
    const bad = new Set(parsed.error.issues.map((i) => String(i.path[0])));
    const kept = Object.fromEntries(Object.entries(overrides).filter(([k]) => !bad.has(k)));
    return ns.ns.schema.parse(kept) as Record<string, unknown>;
  }

  private view(version: number, overrides: Overrides) {
    const settings: Record<string, Record<string, unknown>> = {};
    for (const [name, ns] of this.schemas) settings[name] = ns.redact(this.effective(ns, overrides[name]));
    return { version, settings };
  }

  async getSettings() {
    const { version, overrides } = await this.store.read();
    return this.view(version, overrides);
  }

  async getModuleSettings({ module }: { module: string }) {
    const ns = this.schemas.get(module);
    if (!ns) throw new ContractError('not_found', `module "${module}" has no settings`);
    const { version, overrides } = await this.store.read();
    return { version, settings: this.effective(ns, overrides[module]) };
  }

  async updateSettings({ changes }: { changes: Record<string, Record<string, unknown>> }) {
    const problems: FieldIssue[] = [];
    for (const [name, fields] of Object.entries(changes)) {
      const ns = this.schemas.get(name);
      if (!ns) {
        problems.push({ path: name, message: `unknown settings namespace (known: ${[...this.schemas.keys()].join(', ')})` });
        continue;
      }
      for (const field of Object.keys(fields)) {
        if (!ns.fields.has(field)) problems.push({ path: `${name}.${field}`, message: 'unknown setting' });
      }
    }
    if (Object.keys(changes).length === 0) problems.push({ path: '', message: 'nothing to change' });
    if (problems.length) throw invalid(problems);

    const { version, overrides } = await this.store.update((current) => {
      const next: Overrides = {};
      const issues: FieldIssue[] = [];
      for (const [name, fields] of Object.entries(changes)) {
        const ns = this.schemas.get(name)!;
        const merged: Record<string, unknown> = { ...current[name] };
        for (const [field, value] of Object.entries(fields)) {
          if (value === null) delete merged[field];
          // The redacted placeholder sent back unchanged keeps the stored secret.
          else if (!(ns.secrets.has(field) && value === REDACTED)) merged[field] = value;
        }
        const parsed = ns.ns.schema.safeParse(merged);
        if (!parsed.success) issues.push(...issuesOf(parsed.error, name));
        next[name] = merged;
      }
      if (issues.length) throw invalid(issues);
      return next;
    });
    await this.events.publish('config.settings.changed', { namespaces: Object.keys(changes), version });
    return this.view(version, overrides);
  }

  async getSchema() {
    const namespaces: Record<string, Record<string, unknown>> = {};
    for (const [name, ns] of this.schemas) namespaces[name] = ns.jsonSchema;
    return { namespaces };
  }
}

function invalid(details: FieldIssue[]): ContractError {
  return new ContractError('invalid_input', `Invalid settings: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
}
