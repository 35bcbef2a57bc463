// The process's one subscriber connection: Stop requests (`messages:stop`, every instance hosting
// messages hears them and aborts the generation it runs, if any) and the events of turns followed as
// server-sent events (`messages:turn:<id>`).
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ModuleLogger, ModuleRedis } from '../../kernel/module/tokens.js';
import { STOP_CHANNEL } from './turn-store.js';

@injectable()
export class TurnChannels {
  private sub: Redis | undefined;
  private readonly running = new Map<string, AbortController>();
  private readonly listeners = new Map<string, Set<(message: string) => void>>();

  constructor(
    @inject(ModuleRedis) private readonly redis: Redis,
    @inject(ModuleLogger) private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const sub = this.redis.duplicate({ lazyConnect: false, enableAutoPipelining: false, maxRetriesPerRequest: null });
    sub.on('error', (err: Error) => this.logger.warn({ err: err.message }, 'turn channel subscriber error'));
    sub.on('message', (channel: string, message: string) => {
      if (channel === STOP_CHANNEL) {
        this.running.get(message)?.abort(new Error('stopped'));
        return;
      }
      for (const fn of this.listeners.get(channel) ?? []) fn(message);
    });
    await sub.subscribe(STOP_CHANNEL);
    this.sub = sub;
  }

  stop(): void {
    for (const ac of this.running.values()) ac.abort(new Error('shutting down'));
    this.sub?.disconnect();
  }

  /** The generation of `turnId` runs here: a Stop heard on the channel aborts `ac`. */
  track(turnId: string, ac: AbortController): () => void {
    this.running.set(turnId, ac);
    return () => {
      if (this.running.get(turnId) === ac) this.running.delete(turnId);
    };
  }

  /** Listens to a turn's channel until the returned function is called. */
  async listen(channel: string, fn: (message: string) => void): Promise<() => Promise<void>> {
    if (!this.sub) throw new Error('turn channels not started');
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      await this.sub.subscribe(channel);
    }
    set.add(fn);
    return async () => {
      set.delete(fn);
      if (set.size === 0 && this.listeners.get(channel) === set) {
        this.listeners.delete(channel);
        await this.sub?.unsubscribe(channel).catch(() => undefined);
      }
    };
  }
}
