// The runtime: everything one AutoBot process runs besides the HTTP edge. It brings up Redis (embedded or
// external), the kernel facilities, then the hosted modules in dependency order, each in its own
// container, and binds every other known module through HTTP. Stopping undoes it in reverse.
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { container as globalContainer, type DependencyContainer } from 'tsyringe';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import type { AnyContract, HealthReport, Port } from '../contract/define.js';
import { parseInput } from '../contract/validation.js';
import type { AppConfig } from '../config/app-config.js';
import { orderModules, type AnyModule } from '../module/define-module.js';
import {
  MetricsToken,
  ModuleEventsToken,
  ModuleJobsToken,
  ModuleLogger,
  ModuleRedis,
  ModuleSagasToken,
  ProcessConfigToken,
  RealtimeToken,
  SettingsCatalogToken,
  SystemInfoToken,
  type ModuleEvents,
  type ModuleStatus,
  type SettingsCatalog,
  type SystemInfo,
} from '../module/tokens.js';
import { Metrics } from '../metrics/metrics.js';
import { EmbeddedRedis, RedisServerMissingError } from '../redis/embedded-redis.js';
import { checkEvictionPolicy, isRedisUnavailable, redisTargetFromUrl, RedisConnections, type RedisTarget } from '../redis/redis-connections.js';
import { ContractError, isContractError } from '../contract/errors.js';
import { createLocalBinding } from '../transport/local-binding.js';
import { createHttpBinding } from '../transport/http-binding.js';
import type { HostedPort } from '../transport/rpc-server.js';
import { InstanceRegistry, type InstanceInfo } from '../registry/instance-registry.js';
import { EventBus } from '../events/event-bus.js';
import { Jobs } from '../jobs/jobs.js';
import { SagaOrchestrator } from '../sagas/saga-orchestrator.js';
import { Realtime } from '../realtime/realtime.js';
import type { BreakerState } from '../transport/http-binding.js';

function redisUnavailable(err: unknown): ContractError | undefined {
  return !isContractError(err) && isRedisUnavailable(err) ? new ContractError('unavailable', 'Redis is unavailable', undefined, { cause: err }) : undefined;
}

export interface RuntimeOptions {
  config: AppConfig;
  /** Every module this program knows; the process hosts those named by AUTOBOT_MODULES. */
  catalogue: readonly AnyModule[];
  logger: Logger;
  version: string;
  /** Test knobs for the saga worker's lease; production uses the defaults. */
  sagaLease?: { lockDurationMs?: number; stalledIntervalMs?: number };
  eventRetryDelayMs?: number;
}

interface HostedModule {
  def: AnyModule;
  container: DependencyContainer;
  port: Record<string, unknown>;
}

export class Runtime {
  readonly instanceId = `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  readonly metrics = new Metrics();
  readonly logger: Logger;
  readonly startedAt = Date.now();
  private embedded: EmbeddedRedis | undefined;
  private connections!: RedisConnections;
  private kernelRedis!: Redis;
  private ready = false;
  private readonly hostedModules = new Map<string, HostedModule>();
  private readonly ports = new Map<string, Record<string, unknown>>();
  private readonly startedOrder: HostedModule[] = [];
  events!: EventBus;
  realtime!: Realtime;
  jobs!: Jobs;
  sagas!: SagaOrchestrator;
  registry: InstanceRegistry | undefined;
  private redisTarget!: RedisTarget;

  constructor(private readonly opts: RuntimeOptions) {
    this.logger = opts.logger;
  }

  get config(): AppConfig {
    return this.opts.config;
  }

  get catalogue(): readonly AnyModule[] {
    return this.opts.catalogue;
  }

  /** The modules this process hosts, in start order. */
  hostedIds(): string[] {
    return this.startedOrder.map((m) => m.def.contract.id);
  }

  isReady(): boolean {
    return this.ready;
  }

  redis(): Redis {
    return this.kernelRedis;
  }

  redisConnections(): RedisConnections {
    return this.connections;
  }

  /** The port of any known module: its local binding when hosted here, its HTTP binding otherwise. */
  port<C extends AnyContract>(contract: C): Port<C> {
    const p = this.ports.get(contract.id);
    if (!p) throw new Error(`module "${contract.id}" is not known to this program`);
    return p as Port<C>;
  }

  portById(id: string): Record<string, unknown> | undefined {
    return this.ports.get(id);
  }

  hosted(id: string): HostedPort | undefined {
    const h = this.hostedModules.get(id);
    return h ? { contract: h.def.contract, port: h.port } : undefined;
  }

  contracts(): AnyContract[] {
    return this.opts.catalogue.map((m) => m.contract);
  }

  /** AUTOBOT_MODULES, where "all" means every module not named in AUTOBOT_REMOTE_MODULES. */
  private selectHosted(): AnyModule[] {
    const wanted = this.opts.config.AUTOBOT_MODULES;
    const remote = this.opts.config.AUTOBOT_REMOTE_MODULES;
    if (wanted === 'all') return this.opts.catalogue.filter((m) => !(m.contract.id in remote));
    const known = new Map(this.opts.catalogue.map((m) => [m.contract.id, m]));
    const unknown = wanted.filter((id) => !known.has(id));
    if (unknown.length) {
      throw new Error(`AUTOBOT_MODULES names unknown module(s): ${unknown.join(', ')} (known: ${[...known.keys()].join(', ')})`);
    }
    const both = wanted.filter((id) => id in remote);
    if (both.length) {
      throw new Error(`${both.join(', ')}: named in both AUTOBOT_MODULES and AUTOBOT_REMOTE_MODULES; a module is hosted here or reached remotely, not both`);
    }
    return wanted.map((id) => known.get(id)!);
  }

  async start(): Promise<void> {
    const config = this.opts.config;
    for (const id of Object.keys(config.AUTOBOT_REMOTE_MODULES)) {
      if (!this.opts.catalogue.some((m) => m.contract.id === id)) throw new Error(`AUTOBOT_REMOTE_MODULES names unknown module "${id}"`);
    }
    const hosted = orderModules(this.selectHosted(), this.opts.catalogue);

    await this.startRedis();
    this.connections = new RedisConnections(this.redisTarget, this.logger);
    this.kernelRedis = this.connections.kernel();
    await this.kernelRedis.ping();
    if (config.REDIS_URL) await checkEvictionPolicy(this.kernelRedis, this.logger);

    this.events = new EventBus({
      connections: this.connections,
      logger: this.logger,
      metrics: this.metrics,
      instanceId: this.instanceId,
      // The registry's view of who runs: their consumers stay, whatever their idle time.
      liveInstances: () => (this.registry?.instances() ?? []).map((i) => i.id),
      // Types whose contract asks for every instance of a subscriber to hear them (settings changes).
      everyInstance: this.opts.catalogue.flatMap((m) => Object.keys(m.contract.events).filter((type) => m.contract.events[type]?.delivery === 'every-instance')),
      ...(this.opts.eventRetryDelayMs ? { retryDelayMs: this.opts.eventRetryDelayMs } : {}),
    });
    await this.events.declareSubscriptions(
      this.opts.catalogue
        .filter((m) => m.subscribes.length)
        .map((m) => ({ moduleId: m.contract.id, events: [...m.subscribes], local: hosted.includes(m) })),
    );
    this.jobs = new Jobs({ connections: this.connections, logger: this.logger });
    this.sagas = new SagaOrchestrator({
      connections: this.connections,
      logger: this.logger,
      resolvePort: (id) => this.ports.get(id),
      retention: { completedMs: config.AUTOBOT_SAGA_RETENTION_DAYS * 86_400_000, failedMs: config.AUTOBOT_SAGA_FAILED_RETENTION_DAYS * 86_400_000 },
      ...this.opts.sagaLease,
    });
    for (const m of this.opts.catalogue) for (const saga of m.sagas) this.sagas.register(saga);
    this.realtime = new Realtime(this.connections.blocking('realtime'));

    this.registry = new InstanceRegistry(
      this.kernelRedis,
      this.logger,
      { id: this.instanceId, url: null, modules: hosted.map((m) => m.contract.id), version: this.opts.version, startedAt: new Date(this.startedAt).toISOString() },
      { heartbeatMs: config.AUTOBOT_HEARTBEAT_MS, overrides: config.AUTOBOT_REMOTE_MODULES },
    );

    const hostedIds = new Set(hosted.map((m) => m.contract.id));
    for (const m of this.opts.catalogue) {
      if (hostedIds.has(m.contract.id)) continue;
      const registry = this.registry;
      this.ports.set(
        m.contract.id,
        createHttpBinding(m.contract, {
          resolveUrl: () => registry.urlFor(m.contract.id),
          internalToken: config.AUTOBOT_INTERNAL_TOKEN ?? '',
          metrics: this.metrics,
        }),
      );
    }

    const root = globalContainer.createChildContainer();
    root.registerInstance(MetricsToken, this.metrics);
    root.registerInstance(SettingsCatalogToken, this.settingsCatalog());
    root.registerInstance(SystemInfoToken, this.systemInfo());
    root.registerInstance(ProcessConfigToken, config);

    for (const def of hosted) {
      const h = this.buildModule(def, root);
      this.hostedModules.set(def.contract.id, h);
      this.ports.set(def.contract.id, h.port);
    }
    for (const def of hosted) {
      const h = this.hostedModules.get(def.contract.id)!;
      await def.start?.(h.container);
      this.startedOrder.push(h);
      this.logger.debug({ module: def.contract.id }, 'module started');
    }
    // Saga workers only where the module declaring the saga is hosted: its steps are that module's operations.
    await this.sagas.startWorker(hosted.flatMap((m) => m.sagas.map((saga) => saga.type)));
    this.ready = true;
  }

  /** Called once the HTTP server listens: from then on other processes may route calls here. */
  async announce(url: string | null): Promise<void> {
    if (!this.registry) return;
    await this.registry.start(url);
  }

  private async startRedis(): Promise<void> {
    const url = this.opts.config.REDIS_URL;
    if (url) {
      this.redisTarget = redisTargetFromUrl(url);
      return;
    }
    if (!EmbeddedRedis.isInstalled()) throw new RedisServerMissingError('redis-server');
    this.embedded = new EmbeddedRedis({ dir: path.resolve(this.opts.config.AUTOBOT_DATA_DIR, 'redis') });
    await this.embedded.start();
    this.redisTarget = { path: this.embedded.socketPath };
    this.logger.info({ socket: this.embedded.socketPath }, 'embedded Redis started');
  }

  private buildModule(def: AnyModule, root: DependencyContainer): HostedModule {
    const id = def.contract.id;
    const c = root.createChildContainer();
    const logger = this.logger.child({ module: id });
    c.registerInstance(ModuleLogger, logger);
    c.registerInstance(ModuleRedis, this.connections.forModule(id, def.redisDb));
    c.registerInstance(ModuleEventsToken, this.moduleEvents(def));
    c.registerInstance(ModuleJobsToken, this.jobs.forModule(id));
    c.registerInstance(RealtimeToken, this.realtime);
    const own = new Set(def.sagas.map((saga) => saga.type));
    c.registerInstance(ModuleSagasToken, {
      start: (type, input, opts) => {
        if (!own.has(type)) throw new Error(`module "${id}" starts saga "${type}", which it does not declare`);
        return this.sagas.start(type, input, opts);
      },
      get: (sagaId) => this.sagas.get(sagaId),
    });
    for (const dep of def.dependencies) {
      const port = this.ports.get(dep.id);
      if (!port) throw new Error(`module "${id}" depends on "${dep.id}", which has no binding`);
      c.registerInstance(dep.token, port);
    }
    def.register(c);
    const handlers = c.resolve(def.implementation);
    const port = createLocalBinding(def.contract, handlers, {
      metrics: this.metrics,
      logger,
      classify: redisUnavailable,
      ...(def.health ? { health: () => def.health!(c) } : {}),
    }) as Record<string, unknown>;
    return { def, container: c, port };
  }

  private moduleEvents(def: AnyModule): ModuleEvents {
    const id = def.contract.id;
    return {
      publish: async (type, payload) => {
        const ev = def.contract.events[type];
        if (!ev) throw new Error(`module "${id}" publishes "${type}", which its contract does not declare`);
        return this.events.publish(type, parseInput(ev.payload, payload, type), { source: id, version: ev.version });
      },
      subscribe: async (handlers) => {
        const undeclared = Object.keys(handlers).filter((t) => !def.subscribes.includes(t));
        if (undeclared.length) throw new Error(`module "${id}" handles ${undeclared.join(', ')} without declaring it in "subscribes"`);
        await this.events.subscribe(id, handlers);
      },
    };
  }

  private settingsCatalog(): SettingsCatalog {
    const list = this.opts.catalogue
      .filter((m) => m.contract.settings)
      .map((m) => ({ module: m.contract.id, schema: m.contract.settings! }));
    return { namespaces: () => list };
  }

  systemInfo(): SystemInfo {
    return {
      version: this.opts.version,
      startedAt: this.startedAt,
      ready: () => this.ready,
      modules: () =>
        this.opts.catalogue.map((m): ModuleStatus => {
          const id = m.contract.id;
          const local = this.hostedModules.has(id);
          const port = this.ports.get(id) as { $health: () => Promise<HealthReport> } | undefined;
          const url = local ? undefined : this.registry?.urlFor(id);
          const breaker = local ? undefined : (port as { $breaker?: () => BreakerState } | undefined)?.$breaker?.().state;
          return {
            id,
            where: local ? 'local' : 'remote',
            ...(url ? { url } : {}),
            ...(breaker ? { breaker } : {}),
            health: port ? () => port.$health() : async () => ({ status: 'down', detail: 'not bound' }),
          };
        }),
      dependencies: () => ({
        redis: {
          critical: true,
          check: async (): Promise<HealthReport> => {
            const started = Date.now();
            await this.kernelRedis.ping();
            return { status: 'ok', detail: `${this.embedded ? 'embedded' : 'external'}, ping ${Date.now() - started} ms` };
          },
        },
      }),
    };
  }

  instances(): InstanceInfo[] {
    return this.registry?.instances() ?? [];
  }

  /**
   * Stops in reverse: modules, event consumers, saga worker, jobs, registry, Redis connections, embedded
   * Redis. Every step is bounded by the deadline, so a dead Redis cannot hold the process open.
   */
  async stop(deadlineMs = 10_000): Promise<void> {
    const until = Date.now() + deadlineMs;
    const left = () => Math.max(100, until - Date.now());
    const step = async (label: string, fn: () => Promise<unknown> | unknown) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(fn),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`did not finish within the shutdown deadline`)), left());
          }),
        ]);
      } catch (err) {
        this.logger.error({ err: (err as Error).message, step: label }, 'shutdown step failed');
      } finally {
        clearTimeout(timer);
      }
    };
    this.ready = false;
    for (const h of [...this.startedOrder].reverse()) await step(`stop ${h.def.contract.id}`, () => h.def.stop?.(h.container));
    if (this.events) await step('events', () => this.events.close(left()));
    if (this.sagas) await step('sagas', () => this.sagas.close(left()));
    if (this.jobs) await step('jobs', () => this.jobs.close(left()));
    if (this.registry) await step('registry', () => this.registry!.stop());
    if (this.connections) await step('redis connections', () => this.connections.closeAll());
    if (this.embedded) await step('embedded redis', () => this.embedded!.stop());
  }
}
