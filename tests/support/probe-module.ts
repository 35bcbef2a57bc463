// A small module used only by tests: settings with a secret, a slow operation with a route deadline, a
// stream, and a subscription to config changes, so the kernel and gateway can be tested through the
// same door every real module uses.
import { z } from 'zod';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { defineContract, operation, streamOperation, type Handlers, type CallInfo } from '../../src/kernel/contract/index.js';
import { currentContext } from '../../src/kernel/context/request-context.js';
import { defineModule } from '../../src/kernel/module/define-module.js';
import { ModuleEventsToken, ModuleRedis } from '../../src/kernel/module/tokens.js';

export const probeContract = defineContract({
  id: 'probe',
  summary: 'Test-only module.',
  operations: {
    echo: operation({
      input: z.object({ text: z.string().min(1).max(100) }),
      output: z.object({ text: z.string(), actor: z.string().nullable(), requestId: z.string() }),
      idempotent: true,
    }),
    slow: operation({
      input: z.object({ ms: z.coerce.number().int().min(0).max(60_000) }),
      output: z.object({ waited: z.number(), aborted: z.boolean() }),
    }),
    count: streamOperation({ input: z.object({ to: z.coerce.number().int().min(1).max(1000) }), chunk: z.object({ n: z.number() }) }),
    seenEvents: operation({ input: z.object({}), output: z.object({ items: z.array(z.string()) }), idempotent: true }),
  },
  settings: z.object({
    greeting: z.string().min(1).default('hello'),
    apiKey: z.string().meta({ secret: true }).optional(),
    limit: z.number().int().min(1).max(10).default(5),
  }),
  routes: [
    { method: 'POST', path: '/probe/echo', operation: 'echo', auth: 'user' },
    { method: 'POST', path: '/probe/slow', operation: 'slow', auth: 'public', timeoutMs: 200 },
    { method: 'GET', path: '/probe/count', operation: 'count', auth: 'public' },
    { method: 'GET', path: '/probe/admin-echo', operation: 'seenEvents', auth: 'admin' },
  ],
});

@injectable()
export class ProbeService implements Handlers<typeof probeContract> {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  echo({ text }: { text: string }) {
    const ctx = currentContext();
    return { text, actor: ctx?.actor?.type === 'user' ? ctx.actor.id : null, requestId: ctx?.requestId ?? '' };
  }

  async slow({ ms }: { ms: number }, call: CallInfo) {
    const start = Date.now();
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      call.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });
    return { waited: Date.now() - start, aborted: call.signal.aborted };
  }

  async *count({ to }: { to: number }) {
    for (let n = 1; n <= to; n++) yield { n };
  }

  async seenEvents() {
    return { items: await this.redis.lrange('events', 0, -1) };
  }

  /** Fails while the `fail-events` key is set, so tests can watch retries and dead letters. */
  async record(type: string, payload: unknown) {
    if (await this.redis.exists('fail-events')) throw new Error('probe refuses events (fail-events is set)');
    await this.redis.rpush('events', `${type}:${JSON.stringify(payload)}`);
  }
}

export const probeModule = defineModule({
  contract: probeContract,
  redisDb: 12,
  subscribes: ['config.settings.changed'],
  register(c) {
    c.registerSingleton(ProbeService);
  },
  implementation: ProbeService,
  // Answers its health check after `health-delay` ms (a Redis key), so tests can make it slow.
  async health(c) {
    const delay = Number((await c.resolve<Redis>(ModuleRedis).get('health-delay')) ?? 0);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    return { status: 'ok' };
  },
  async start(c) {
    const service = c.resolve(ProbeService);
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': (e) => service.record(e.type, e.payload),
    });
  },
});
