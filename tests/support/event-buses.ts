// Event buses on one private Redis: each bus is one process instance, so several simulate several
// processes. Registers the suite's hooks: Redis before all; after each test the buses close and Redis
// is emptied; after all everything stops. `raw` is a plain client for looking at the streams.
import { afterAll, afterEach, beforeAll } from 'vitest';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { EventBus, type EventBusOptions } from '../../src/kernel/events/event-bus.js';
import { RedisConnections } from '../../src/kernel/redis/redis-connections.js';
import { startTestRedis, type TestRedis } from './redis.js';

export const eventLogger = pino({ level: process.env.TEST_LOG ?? 'silent' });

export interface EventBuses {
  /** A plain client of the suite's Redis (set once the suite started). */
  readonly raw: Redis;
  readonly connections: RedisConnections;
  /** A new bus (instance `instanceId`) with the suite's defaults, then `opts`; closed after the test. */
  bus(instanceId: string, opts?: Partial<EventBusOptions>): EventBus;
}

export function eventBuses(defaults: Partial<EventBusOptions>): EventBuses {
  let redis: TestRedis | undefined;
  let raw: Redis | undefined;
  let connections: RedisConnections | undefined;
  const buses: EventBus[] = [];
  beforeAll(async () => {
    redis = await startTestRedis();
    raw = new Redis({ path: redis.target.path! });
    connections = new RedisConnections(redis.target, eventLogger);
  });
  afterAll(async () => {
    await raw?.quit();
    await connections?.closeAll();
    await redis?.stop();
  });
  afterEach(async () => {
    await Promise.all(buses.splice(0).map((b) => b.close(1_000)));
    await raw?.flushall();
  });
  return {
    get raw() {
      return raw!;
    },
    get connections() {
      return connections!;
    },
    bus(instanceId, opts = {}) {
      const b = new EventBus({ connections: connections!, logger: eventLogger, instanceId, ...defaults, ...opts });
      buses.push(b);
      return b;
    },
  };
}
