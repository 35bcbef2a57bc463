import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { Handlers, HealthReport, Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { withContext } from '../../kernel/context/request-context.js';
import { ModuleLogger, SystemInfoToken, type SystemInfo } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { healthContract } from './contract.js';

type Settings = { checkTimeoutMs: number };
const DEFAULTS: Settings = { checkTimeoutMs: 1500 };

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
  private settings: Settings = DEFAULTS;

  constructor(
    @inject(SystemInfoToken) private readonly system: SystemInfo,
    @inject(configContract.token) private readonly config: Port<typeof configContract>,
    @inject(ModuleLogger) private readonly logger: Logger,
  ) {}

  /** Reads this module's settings; when config cannot be reached the last known (or default) values stay. */
  async reloadSettings(): Promise<void> {
    try {
      // Bounded: at start, a remote config that is down must not hold this module back.
      const { settings } = await withContext({ deadline: Date.now() + 2000 }, () =>
        this.config.getModuleSettings({ module: healthContract.id }),
      );
      this.settings = healthContract.settings!.parse(settings) as Settings;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'health settings not loaded; keeping the current ones');
    }
  }

  currentSettings(): Settings {
    return this.settings;
  }

  getLive() {
    return { status: 'ok' as const };
  }

  private async dependencies(onlyCritical: boolean) {
    const deps = Object.entries(this.system.dependencies()).filter(([, d]) => !onlyCritical || d.critical);
    const results = await Promise.all(deps.map(async ([name, d]) => [name, await bounded(d.check, this.settings.checkTimeoutMs), d.critical] as const));
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
          const r = m.id === healthContract.id ? { status: 'ok' as const } : await bounded(m.health, this.settings.checkTimeoutMs);
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
