// The instance registry: each process announces the modules it hosts (URL, version) with a heartbeat;
// an instance whose heartbeats stop drops out when its entry expires. Discovery reads a snapshot that is
// refreshed on every heartbeat, so locating a module on the call path costs no Redis round trip.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface InstanceInfo {
  id: string;
  url: string | null;
  modules: string[];
  version: string;
  startedAt: string;
  lastHeartbeat: string;
}

const INDEX = 'registry:instances';
const entryKey = (id: string) => `registry:instance:${id}`;

export class InstanceRegistry {
  private timer: NodeJS.Timeout | undefined;
  private snapshot: InstanceInfo[] = [];
  private readonly cursor = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
    private self: Omit<InstanceInfo, 'lastHeartbeat'>,
    private readonly opts: { heartbeatMs: number; overrides: Record<string, string> },
  ) {}

  private get ttlMs(): number {
    return this.opts.heartbeatMs * 3;
  }

  /** Starts heartbeats, announcing the URL other processes reach this one at. */
  async start(url: string | null): Promise<void> {
    this.self = { ...this.self, url };
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.opts.heartbeatMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    try {
      if (this.self.modules.length > 0) {
        const now = Date.now();
        const info: InstanceInfo = { ...this.self, lastHeartbeat: new Date(now).toISOString() };
        await this.redis
          .multi()
          .set(entryKey(this.self.id), JSON.stringify(info), 'PX', this.ttlMs)
          .zadd(INDEX, String(now + this.ttlMs), this.self.id)
          .exec();
      }
      await this.refresh();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'instance registry heartbeat failed');
    }
  }

  /** Reads the healthy instances; expired ones are pruned from the index on the way. */
  async refresh(): Promise<InstanceInfo[]> {
    const now = Date.now();
    await this.redis.zremrangebyscore(INDEX, '-inf', String(now));
    const ids = await this.redis.zrange(INDEX, '0', '-1');
    const raw = ids.length ? await this.redis.mget(ids.map(entryKey)) : [];
    this.snapshot = raw.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as InstanceInfo);
    return this.snapshot;
  }

  instances(): InstanceInfo[] {
    return this.snapshot;
  }

  /** The URL to reach a module at: configuration overrides the registry; among instances, round robin. */
  urlFor(moduleId: string): string | undefined {
    const fixed = this.opts.overrides[moduleId];
    if (fixed) return fixed;
    const candidates = this.snapshot.filter((i) => i.id !== this.self.id && i.url && i.modules.includes(moduleId));
    if (candidates.length === 0) return undefined;
    const n = (this.cursor.get(moduleId) ?? 0) % candidates.length;
    this.cursor.set(moduleId, n + 1);
    return candidates[n]?.url ?? undefined;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // Unreachable Redis: the entry expires by itself; waiting for a reconnect would only delay shutdown.
    if (this.redis.status !== 'ready') return;
    try {
      await this.redis.multi().del(entryKey(this.self.id)).zrem(INDEX, this.self.id).exec();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not deregister from the instance registry');
    }
  }
}
