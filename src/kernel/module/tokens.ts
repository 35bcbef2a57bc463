// DI tokens of what the kernel puts into every module's container. Module ports come from contracts
// (`contract.token`); these are the ambient facilities.
import type { InjectionToken } from 'tsyringe';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AnyContract, HealthReport } from '../contract/define.js';
import type { Metrics } from '../metrics/metrics.js';
import type { AppConfig } from '../config/app-config.js';
import type { ModuleJobs } from '../jobs/jobs.js';
import type { Realtime } from '../realtime/realtime.js';
import type { SagaRecord } from '../sagas/saga-record.js';

/** The module's own Redis connection: its database, its `<module>:` key prefix. */
export const ModuleRedis: InjectionToken<Redis> = Symbol.for('autobot.kernel.redis');
export const ModuleLogger: InjectionToken<Logger> = Symbol.for('autobot.kernel.logger');
export const MetricsToken: InjectionToken<Metrics> = Symbol.for('autobot.kernel.metrics');
export const ModuleEventsToken: InjectionToken<ModuleEvents> = Symbol.for('autobot.kernel.events');
/** BullMQ queues and workers under the module's own prefix. */
export const ModuleJobsToken: InjectionToken<ModuleJobs> = Symbol.for('autobot.kernel.jobs');
/** Pushes to browsers (a user, a chat room) from any process. */
export const RealtimeToken: InjectionToken<Realtime> = Symbol.for('autobot.kernel.realtime');
/** Starts and reads the sagas a module declared. */
export const ModuleSagasToken: InjectionToken<ModuleSagas> = Symbol.for('autobot.kernel.sagas');
export const SettingsCatalogToken: InjectionToken<SettingsCatalog> = Symbol.for('autobot.kernel.settings-catalog');
export const SystemInfoToken: InjectionToken<SystemInfo> = Symbol.for('autobot.kernel.system-info');
/** The process configuration (environment), for the few modules that read a variable of their own. */
export const ProcessConfigToken: InjectionToken<AppConfig> = Symbol.for('autobot.kernel.process-config');

export interface PublishedEvent {
  id: string;
}

/** A module publishes only the events its contract declares (payload validated) and handles those it subscribed to. */
export interface ModuleEvents {
  publish(type: string, payload: unknown): Promise<string>;
  subscribe(handlers: Record<string, (event: { id: string; type: string; payload: unknown; occurredAt: string }) => Promise<void> | void>): Promise<void>;
}

export interface ModuleSagas {
  start<I>(type: string, input: I, opts?: { id?: string }): Promise<string>;
  get(id: string): Promise<SagaRecord | undefined>;
}

export interface SettingsNamespace {
  module: string;
  schema: NonNullable<AnyContract['settings']>;
}

/** Every known module's runtime-settings schema, hosted here or not. */
export interface SettingsCatalog {
  namespaces(): SettingsNamespace[];
}

export interface ModuleStatus {
  id: string;
  where: 'local' | 'remote';
  url?: string;
  /** For a remote module: the state of the circuit breaker guarding calls to it. */
  breaker?: 'closed' | 'open' | 'half-open';
  health: () => Promise<HealthReport>;
}

/** What the health module aggregates: this process, the modules it knows and the dependencies it uses. */
export interface SystemInfo {
  version: string;
  startedAt: number;
  ready(): boolean;
  modules(): ModuleStatus[];
  dependencies(): Record<string, { critical: boolean; check: () => Promise<HealthReport> }>;
}
