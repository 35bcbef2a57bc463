import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { Handlers, HealthReport, Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import { ModuleLogger, SystemInfoToken, type SystemInfo } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { healthContract, healthSettings } from './contract.js';


async function bounded(check: () => Promise<HealthReport>, timeoutMs: number): Promise<HealthReport> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      check(),
      new Promise<HealthReport>((resolve) => {
        timer = setTimeout(() => resolve({ status: 'down', detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
      }),
    ]);
  } catch (err) {
    return { status: 'down', detail: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

@injectable()
export class HealthService implements Handlers<typeof healthContract> {
  readonly settings: SettingsHolder<typeof healthSettings>;

  constructor(
    @inject(SystemInfoToken) private readonly system: SystemInfo,
    @inject(configContract.token) config: Port<typeof configContract>,
    @inject(ModuleLogger) logger: Logger,
  ) {
    this.settings = new SettingsHolder(
      healthSettings,
      async () => (await config.getModuleSettings({ module: healthContract.id })).settings,
      logger,
    );
  }

  private get checkTimeoutMs(): number {
    return this.settings.current().checkTimeoutMs;
  }

  getLive() {
    return { status: 'ok' as const };
  }

  private async dependencies(onlyCritical: boolean) {
    const deps = Object.entries(this.system.dependencies()).filter(([, d]) => !onlyCritical || d.critical);
    const results = await Promise.all(deps.map(async ([name, d]) => [name, await bounded(d.check, this.checkTimeoutMs), d.critical] as const));
    return results;
  }

  async getReady() {
    if (!this.system.ready()) throw new ContractError('unavailable', 'starting');
    const results = await this.dependencies(true);
    const down = results.filter(([, r]) => r.status === 'down').map(([n, r]) => ({ dependency: n, detail: r.detail }));
    if (down.length) throw new ContractError('unavailable', `not ready: ${down.map((d) => d.dependency).join(', ')} down`, down);
    return { status: 'ready' as const, dependencies: Object.fromEntries(results.map(([n, r]) => [n, r])) };
  }

  async getHealth() {
    const [deps, modules] = await Promise.all([
      this.dependencies(false),
      Promise.all(
        this.system.modules().map(async (m) => {
          const r = m.id === healthContract.id ? { status: 'ok' as const } : await bounded(m.health, this.checkTimeoutMs);
          return [m.id, { ...r, where: m.where, ...(m.url ? { url: m.url } : {}), ...(m.breaker ? { breaker: m.breaker } : {}) }] as const;
        }),
      ),
    ]);
    const criticalDown = deps.some(([, r, critical]) => critical && r.status === 'down');
    const anyNotOk = deps.some(([, r]) => r.status !== 'ok') || modules.some(([, r]) => r.status !== 'ok');
    return {
      status: criticalDown || !this.system.ready() ? ('down' as const) : anyNotOk ? ('degraded' as const) : ('ok' as const),
      version: this.system.version,
      uptimeS: Math.round((Date.now() - this.system.startedAt) / 1000),
      modules: Object.fromEntries(modules),
      dependencies: Object.fromEntries(deps.map(([n, r]) => [n, r])),
    };
  }
}
