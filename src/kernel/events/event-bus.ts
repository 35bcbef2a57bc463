// The durable, cross-process event bus, on Redis Streams.
//
// One stream per event type (`kernel:events:<type>`), one consumer group per subscribing module, one
// consumer per process instance. A module's group is created when the program declares the
// subscription, so events published while the module is down, or before it ever ran, wait for it in
// its group. Delivery is AT LEAST ONCE: an entry is acknowledged only after the handler succeeded, so a
// crash, a timeout or a lost acknowledgement means a redelivery. Handlers must be idempotent (the
// envelope id identifies a redelivery); nothing here promises exactly once.
//
// Failures: an entry whose handler failed stays pending and is retried once it has been idle for
// `retryDelayMs`, by whichever instance of the module looks first (the one that failed, or any other,
// also for instances that died holding it). After `maxAttempts` deliveries it moves to the dead-letter
// stream `kernel:events:dead` and is acknowledged: no longer retried, still visible (deadLetters()).
//
// Consumers of processes that are gone: each process consumes under its own instance id, so every
// restart adds a consumer name to each group. A consumer that holds nothing, has had nothing delivered
// for `consumerIdleMs` and is not a live instance (by the instance registry) is removed from the group;
// what it held when its process died is first taken over by the retry loop, so nothing is lost. (Were
// a live consumer removed, it would hold nothing by then, and its next read would recreate it.)
//
// Fan-out types (contract `delivery: 'every-instance'`, e.g. `config.settings.changed`): a module's
// instances must each hear them, so each process reads them in a consumer group of its own,
// `<module>@<instanceId>`, created at the stream's end when the process declares or subscribes (an
// instance that was not running has nothing to catch up on: it reads its state when it starts). Within
// that group delivery, retries and dead letters work as above. The group is destroyed at graceful
// shutdown; the group of a process that died is destroyed by the sweep of a live instance of the same
// module once the registry does not know its instance and its consumer has read nothing for
// `consumerIdleMs` (what it held is dropped with it: no other instance needed it).
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import { currentContext, runWithContext, type RequestContext } from '../context/request-context.js';
import type { Metrics } from '../metrics/metrics.js';
import { quitWithin, type Redis, type RedisConnections } from '../redis/redis-connections.js';
import { settlesWithin } from '../time/settles-within.js';
import { sleep } from '../time/sleep.js';
import { assertEventType, decodeEnvelope, encodeEnvelope, type EventEnvelope, type EventHandler } from './envelope.js';
import { runScript } from '../redis/lua-script.js';

export type { EventEnvelope, EventHandler };

/**
 * The kernel connection's key prefix. The blocking connection used for XREADGROUP has no prefix, so it
 * names the same streams with this prefix spelled out.
 */
const KERNEL_KEY_PREFIX = 'kernel:';
/** Relative to the kernel prefix. Event types always contain a dot, so no type can be called `dead`. */
const DEAD_LETTER_KEY = 'events:dead';
const ENVELOPE_FIELD = 'envelope';
/** Entries read per XREADGROUP; small, as each is held (and kept alive) until its turn comes. */
const READ_BATCH = 10;
const RECLAIM_BATCH = 50;
const DEAD_LETTER_PAGE = 100;

// KEYS[1] stream. ARGV[1] group, ARGV[2] consumer. Removes the consumer only if it holds nothing at this
// very moment (in one step, so no delivery can slip in between the check and the removal).
const DELETE_IDLE_CONSUMER = `
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #row, 2 do info[row[i]] = row[i + 1] end
  if info['name'] == ARGV[2] then
    if info['pending'] ~= 0 then return -1 end
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  end
end
return -2`;

// KEYS[1] stream. ARGV[1] group, ARGV[2] idle ms. Destroys an instance's own group (fan-out) only if no
// consumer of it has read for ARGV[2] ms at this very moment, so a reader waking up just now keeps it.
const DESTROY_IDLE_GROUP = `
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #row, 2 do info[row[i]] = row[i + 1] end
  if tonumber(info['idle']) < tonumber(ARGV[2]) then return -1 end
end
return redis.call('XGROUP', 'DESTROY', KEYS[1], ARGV[1])`;

function streamKey(type: string): string {
  return `events:${type}`;
}

export interface EventBusOptions {
  connections: RedisConnections;
  logger: Logger;
  metrics?: Metrics;
  /** Unique per running process; stable across restarts lets a restarted process resume its own pending entries at once. */
  instanceId: string;
  /** Deliveries before an event goes to the dead letters (default 5). */
  maxAttempts?: number;
  /** How long an unacknowledged entry stays idle before it is delivered again (default 5000 ms). */
  retryDelayMs?: number;
  /** How long one XREADGROUP waits for new entries (default 2000 ms). */
  blockMs?: number;
  /** Approximate length each stream is trimmed to (default 100 000). Entries trimmed before a slow module read them are lost to it. */
  maxLen?: number;
  /** A handler running longer counts as failed and its event is retried (default 60 000 ms). */
  handlerTimeoutMs?: number;
  /** A consumer that has not read for this long, holds nothing and is not live is removed (default 10 min). */
  consumerIdleMs?: number;
  /** How often each subscribed group is checked for such consumers (default 60 000 ms). */
  consumerSweepMs?: number;
  /** Instance ids known to be running (the instance registry); their consumers are never removed. */
  liveInstances?: () => Iterable<string>;
  /** Event types delivered to every instance of each subscribing module (contract `delivery: 'every-instance'`). */
  everyInstance?: Iterable<string>;
}

export interface DeadLetter {
  /** The dead-letter stream entry id. */
  id: string;
  moduleId: string;
  type: string;
  attempts: number;
  error: string;
  event: EventEnvelope;
  failedAt: string;
}

export interface Declaration {
  moduleId: string;
  events: string[];
  /**
   * The module is hosted by this process: its fan-out groups are created now, before the module starts
   * and reads its state, so that nothing published in between is missed.
   */
  local?: boolean;
}

/** A stream entry as Redis returns it; fields are null when the entry was trimmed away. */
type RawEntry = [id: string, fields: string[] | null];
type ReadReply = Array<[key: string, entries: RawEntry[]]> | null;
type PendingRow = [id: string, consumer: string, idleMs: number, deliveries: number];

interface Subscription {
  readonly moduleId: string;
  /** The consumer group read: the module's own, or this instance's (`<module>@<instanceId>`) for fan-out types. */
  readonly group: string;
  readonly fanOut: boolean;
  readonly handlers: ReadonlyMap<string, EventHandler>;
  readonly types: readonly string[];
  /** Dedicated: XREADGROUP BLOCK holds its connection. */
  readonly reader: Redis;
  /** Entries delivered to this instance and not yet concluded, per type; the heartbeat keeps them claimed. */
  readonly inHand: Map<string, Set<string>>;
  readonly loops: Promise<void>[];
}

export class EventBus {
  private readonly connections: RedisConnections;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly instanceId: string;
  private readonly maxAttempts: number;
  private readonly retryDelayMs: number;
  private readonly blockMs: number;
  private readonly maxLen: number;
  private readonly handlerTimeoutMs: number;
  private readonly consumerIdleMs: number;
  private readonly consumerSweepMs: number;
  private readonly liveInstances: () => Iterable<string>;
  private readonly everyInstance: ReadonlySet<string>;
  /** This instance's fan-out groups (by `<type> <group>`), destroyed at close. */
  private readonly instanceGroups = new Map<string, { type: string; group: string }>();
  /** Publishing, acknowledging, claiming: short commands under the kernel prefix. */
  private readonly redis: Redis;
  private readonly declared = new Map<string, Set<string>>();
  /** Per module hosted here: one subscription per group read (shared types, fan-out types). */
  private readonly subscriptions = new Map<string, Subscription[]>();
  private readonly stopping = new AbortController();
  private heartbeat: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(opts: EventBusOptions) {
    if (!opts.instanceId) throw new Error('EventBus needs an instanceId');
    // Every subscription's loops sleep on this one signal (each removes its listener when it wakes): one
    // per subscription is expected, not a leak, and a process hosting every module has more than 10.
    setMaxListeners(0, this.stopping.signal);
    this.connections = opts.connections;
    this.logger = opts.logger.child({ component: 'events' });
    this.metrics = opts.metrics;
    this.instanceId = opts.instanceId;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.retryDelayMs = Math.max(1, opts.retryDelayMs ?? 5000);
    this.blockMs = Math.max(1, opts.blockMs ?? 2000);
    this.maxLen = Math.max(1, opts.maxLen ?? 100_000);
    this.handlerTimeoutMs = Math.max(1, opts.handlerTimeoutMs ?? 60_000);
    // Never shorter than a few reads: a live consumer reads at least every blockMs.
    this.consumerIdleMs = Math.max(opts.consumerIdleMs ?? 600_000, 3 * this.blockMs);
    this.consumerSweepMs = Math.max(10, opts.consumerSweepMs ?? 60_000);
    this.liveInstances = opts.liveInstances ?? (() => []);
    this.everyInstance = new Set(opts.everyInstance ?? []);
    this.redis = this.connections.kernel('events');
  }

  private get closed(): boolean {
    return this.stopping.signal.aborted;
  }

  /**
   * Creates the consumer group of every declared subscriber (all modules known to the program, hosted
   * here or not) with MKSTREAM, idempotently, so events published from now on wait for a module that is
   * down or has never run. Fan-out types have no module-wide group: only a hosted (`local`) module's
   * instance group is created here.
   */
  async declareSubscriptions(decls: Declaration[]): Promise<void> {
    for (const { moduleId, events, local } of decls) {
      assertModuleId(moduleId);
      events.forEach(assertEventType);
      for (const type of events) {
        if (!this.everyInstance.has(type)) await this.ensureGroup(type, moduleId);
        else if (local) await this.ensureGroup(type, this.groupOf(moduleId, type));
      }
      const known = this.declared.get(moduleId) ?? new Set<string>();
      events.forEach((t) => known.add(t));
      this.declared.set(moduleId, known);
    }
  }

  /** Publishes an event stamped with the current request context's id and actor; returns the envelope id. */
  async publish(type: string, payload: unknown, meta: { source: string; version?: number }): Promise<string> {
    if (this.closed) throw new Error('the event bus is closed');
    assertEventType(type);
    // Checked here, not when a subscriber reads it: a bad envelope would only show up as a dead letter.
    if (!meta.source) throw new Error('an event needs its source module');
    if (meta.version !== undefined && !(Number.isInteger(meta.version) && meta.version > 0)) throw new Error(`invalid event version ${meta.version}`);
    const ctx = currentContext();
    const envelope: EventEnvelope = {
      id: randomUUID(),
      type,
      version: meta.version ?? 1,
      occurredAt: new Date().toISOString(),
      source: meta.source,
      ...(ctx?.requestId ? { requestId: ctx.requestId } : {}),
      ...(ctx?.actor ? { actor: ctx.actor } : {}),
      payload,
    };
    await this.redis.xadd(streamKey(type), 'MAXLEN', '~', this.maxLen, '*', ENVELOPE_FIELD, encodeEnvelope(envelope));
    return envelope.id;
  }

  /**
   * Starts consuming for a module hosted here: first its own pending entries (what this instance held
   * when it stopped), then new ones, while a second loop retries entries left idle by any instance.
   * Each handler runs inside a request context carrying the event's requestId and actor. Returns once
   * the groups exist; consumption goes on in the background until close().
   */
  async subscribe(moduleId: string, handlers: Record<string, EventHandler>): Promise<void> {
    if (this.closed) throw new Error('the event bus is closed');
    assertModuleId(moduleId);
    if (this.subscriptions.has(moduleId)) throw new Error(`module "${moduleId}" is already subscribed on this instance`);
    const types = Object.keys(handlers);
    if (types.length === 0) throw new Error(`module "${moduleId}" subscribes to no event`);
    types.forEach(assertEventType);
    for (const type of types) await this.ensureGroup(type, this.groupOf(moduleId, type));
    const unhandled = [...(this.declared.get(moduleId) ?? [])].filter((t) => !types.includes(t));
    if (unhandled.length > 0) {
      this.logger.warn({ module: moduleId, events: unhandled }, 'declared events without a handler: they pile up in the module\'s consumer group');
    }

    // One XREADGROUP names one group: the shared types and the fan-out types are read by separate loops.
    const subs: Subscription[] = [];
    for (const fanOut of [false, true]) {
      const laneTypes = types.filter((t) => this.everyInstance.has(t) === fanOut);
      if (laneTypes.length === 0) continue;
      const group = fanOut ? this.instanceGroupOf(moduleId) : moduleId;
      subs.push({
        moduleId,
        group,
        fanOut,
        handlers: new Map(Object.entries(handlers).filter(([t]) => laneTypes.includes(t))),
        types: laneTypes,
        reader: this.connections.blocking(`events:${group}`),
        inHand: new Map(laneTypes.map((t) => [t, new Set<string>()])),
        loops: [],
      });
    }
    this.subscriptions.set(moduleId, subs);
    for (const sub of subs) {
      sub.loops.push(this.guard(sub, 'consume', () => this.consume(sub)), this.guard(sub, 'reclaim', () => this.reclaimLoop(sub)));
    }
    this.startHeartbeat();
  }

  /** Dead letters, newest first, optionally only one module's. */
  async deadLetters(opts: { moduleId?: string; limit?: number } = {}): Promise<DeadLetter[]> {
    const limit = Math.max(1, opts.limit ?? 100);
    const found: DeadLetter[] = [];
    let end = '+';
    while (found.length < limit) {
      const page = (await this.redis.xrevrange(DEAD_LETTER_KEY, end, '-', 'COUNT', DEAD_LETTER_PAGE)) as Array<[string, string[]]>;
      for (const [id, fields] of page) {
        const letter = parseDeadLetter(id, fields);
        if (!opts.moduleId || letter.moduleId === opts.moduleId) found.push(letter);
        if (found.length >= limit) break;
      }
      if (page.length < DEAD_LETTER_PAGE) break;
      end = `(${page[page.length - 1]![0]}`;
    }
    return found;
  }

  /** Pending (delivered, not yet acknowledged) counts per subscribed event for a module. */
  async pending(moduleId: string): Promise<Record<string, number>> {
    const types = new Set([...(this.declared.get(moduleId) ?? []), ...(this.subscriptions.get(moduleId) ?? []).flatMap((s) => s.types)]);
    const counts: Record<string, number> = {};
    for (const type of types) {
      try {
        // For a fan-out type: what this instance holds.
        const summary = await this.redis.xpending(streamKey(type), this.groupOf(moduleId, type));
        counts[type] = Number(summary[0] ?? 0);
      } catch (err) {
        if (!isNoGroup(err)) throw err;
        counts[type] = 0;
      }
    }
    return counts;
  }

  /**
   * Stops the loops: lets in-flight handlers finish up to the deadline; unacknowledged entries stay
   * pending for the next start (or for another instance, after `retryDelayMs`).
   */
  close(deadlineMs = 10_000): Promise<void> {
    this.closing ??= this.shutdown(deadlineMs);
    return this.closing;
  }

  private async shutdown(deadlineMs: number): Promise<void> {
    this.stopping.abort();
    const subs = [...this.subscriptions.values()].flat();
    // A blocked XREADGROUP only returns after blockMs; cutting its connection ends it now.
    for (const sub of subs) sub.reader.disconnect();
    const loops = subs.flatMap((s) => s.loops);
    if (!(await settlesWithin(Promise.all(loops), deadlineMs))) {
      const held = subs.flatMap((s) => [...s.inHand].flatMap(([type, ids]) => [...ids].map((id) => `${s.moduleId}/${type}/${id}`)));
      this.logger.warn({ deadlineMs, entries: held }, 'event handlers still running at the close deadline: their events stay pending and will be delivered again');
    }
    // The heartbeat runs until here so that slow handlers finishing within the deadline keep their entries.
    clearInterval(this.heartbeat);
    // This instance's fan-out groups go with it: nobody else reads them, and events would pile up in them.
    const destroyed = Promise.allSettled([...this.instanceGroups.values()].map(({ type, group }) => this.redis.xgroup('DESTROY', streamKey(type), group)));
    if (!(await settlesWithin(destroyed, 1000))) this.logger.warn('could not remove this instance\'s event groups: the sweep of another instance will');
    await quitWithin(this.redis, 1000);
  }

  /** The group a module reads a type in on this instance. */
  private groupOf(moduleId: string, type: string): string {
    return this.everyInstance.has(type) ? this.instanceGroupOf(moduleId) : moduleId;
  }

  /** `@` cannot occur in a module id, so the owner of such a group is never ambiguous. */
  private instanceGroupOf(moduleId: string): string {
    return `${moduleId}@${this.instanceId}`;
  }

  private async ensureGroup(type: string, group: string): Promise<void> {
    try {
      // `$`: a new group starts with the events published from now on, not with the stream's history.
      await this.redis.xgroup('CREATE', streamKey(type), group, '$', 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
    }
    if (group.includes('@')) {
      // Its consumer now, so the sweep of other instances sees it as just active rather than as an
      // empty group left behind.
      await this.redis.xgroup('CREATECONSUMER', streamKey(type), group, this.instanceId);
      this.instanceGroups.set(`${type} ${group}`, { type, group });
    }
  }

  /** Runs a loop, logging (instead of leaking as an unhandled rejection) anything it did not expect. */
  private async guard(sub: Subscription, loop: string, run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (err) {
      if (!this.closed) this.logger.error({ module: sub.moduleId, loop, err: errorMessage(err) }, 'event loop stopped unexpectedly');
    }
  }

  private async consume(sub: Subscription): Promise<void> {
    try {
      await this.recoverOwnPending(sub);
    } catch (err) {
      // Not fatal: whatever stays pending is retried by the reclaim loop once idle for retryDelayMs.
      if (this.closed) return;
      this.logger.warn({ module: sub.moduleId, err: errorMessage(err) }, 'could not resume this instance\'s pending events now: they will be retried later');
    }
    const keys = sub.types.map((t) => KERNEL_KEY_PREFIX + streamKey(t));
    const typeOfKey = new Map(sub.types.map((t, i) => [keys[i]!, t]));
    while (!this.closed) {
      let reply: ReadReply;
      try {
        reply = (await sub.reader.xreadgroup(
          'GROUP', sub.group, this.instanceId, 'COUNT', READ_BATCH, 'BLOCK', this.blockMs,
          'STREAMS', ...keys, ...keys.map(() => '>'),
        )) as ReadReply;
      } catch (err) {
        if (this.closed) return;
        await this.onReadError(sub, err);
        continue;
      }
      const batch = (reply ?? []).flatMap(([key, entries]) => entries.map((entry) => ({ type: typeOfKey.get(key)!, entry })));
      batch.forEach(({ type, entry }) => this.hold(sub, type, entry[0]));
      for (const { type, entry } of batch) {
        // Entries not started stay pending: another instance, or this one restarted, takes them.
        if (this.closed) break;
        await this.deliver(sub, type, entry[0], entry[1], 1);
      }
    }
  }

  /** What this consumer held when it last stopped (same instanceId): deliver it again before anything new. */
  private async recoverOwnPending(sub: Subscription): Promise<void> {
    for (const type of sub.types) {
      const key = KERNEL_KEY_PREFIX + streamKey(type);
      let cursor = '0';
      while (!this.closed) {
        const reply = (await sub.reader.xreadgroup('GROUP', sub.group, this.instanceId, 'COUNT', RECLAIM_BATCH, 'STREAMS', key, cursor)) as ReadReply;
        const entries = reply?.[0]?.[1] ?? [];
        if (entries.length === 0) break;
        cursor = entries[entries.length - 1]![0];
        // Reading the history counts as a delivery; the counter tells how many there were.
        const rows = (await this.redis.xpending(streamKey(type), sub.group, entries[0]![0], cursor, entries.length, this.instanceId)) as PendingRow[];
        const deliveries = new Map(rows.map((r) => [r[0], Number(r[3])]));
        entries.forEach(([id]) => this.hold(sub, type, id));
        for (const [id, fields] of entries) {
          if (this.closed) break;
          await this.deliver(sub, type, id, fields, deliveries.get(id) ?? 1);
        }
      }
    }
  }

  private async onReadError(sub: Subscription, err: unknown): Promise<void> {
    if (isNoGroup(err)) {
      // The stream or group vanished (a flushed or replaced Redis): recreate them and carry on.
      this.logger.warn({ module: sub.moduleId }, 'event consumer group missing: recreating it');
      for (const type of sub.types) await this.ensureGroup(type, sub.group).catch(() => undefined);
      return;
    }
    this.logger.warn({ module: sub.moduleId, err: errorMessage(err) }, 'reading events failed: retrying');
    await this.sleep(Math.min(1000, this.blockMs));
  }

  /** Retries entries idle for retryDelayMs, whoever holds them: failed ones, and those of dead instances. */
  private async reclaimLoop(sub: Subscription): Promise<void> {
    const interval = Math.max(10, Math.floor(this.retryDelayMs / 2));
    let lastSweep = Date.now();
    while (!this.closed) {
      await this.sleep(interval);
      const sweep = Date.now() - lastSweep >= this.consumerSweepMs;
      if (sweep) lastSweep = Date.now();
      for (const type of sub.types) {
        if (this.closed) return;
        try {
          await this.reclaim(sub, type);
          if (sweep) await (sub.fanOut ? this.removeGoneInstanceGroups(sub.moduleId, type) : this.removeGoneConsumers(sub.moduleId, type));
        } catch (err) {
          if (!this.closed && !isNoGroup(err)) this.logger.warn({ module: sub.moduleId, type, err: errorMessage(err) }, 'retrying idle events failed');
        }
      }
    }
  }

  /** Removes the group's consumers that hold nothing, read nothing for consumerIdleMs and are not live. */
  private async removeGoneConsumers(moduleId: string, type: string): Promise<void> {
    const key = streamKey(type);
    const live = new Set(this.liveInstances());
    const rows = (await this.redis.xinfo('CONSUMERS', key, moduleId)) as unknown[][];
    for (const row of rows) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < row.length; i += 2) info.set(String(row[i]), row[i + 1]);
      const name = String(info.get('name'));
      const pending = Number(info.get('pending'));
      const idle = Number(info.get('idle'));
      if (name === this.instanceId || live.has(name) || pending !== 0 || !(idle >= this.consumerIdleMs)) continue;
      if ((await runScript(this.redis, DELETE_IDLE_CONSUMER, 1, key, moduleId, name)) !== 0) continue;
      this.logger.info({ module: moduleId, type, consumer: name, idleMs: idle }, 'removed the event consumer of a process that is gone');
    }
  }

  /** Destroys the fan-out groups `<module>@<instance>` of instances that are gone (not live, read nothing for consumerIdleMs). */
  private async removeGoneInstanceGroups(moduleId: string, type: string): Promise<void> {
    const key = streamKey(type);
    const live = new Set(this.liveInstances());
    const prefix = `${moduleId}@`;
    const rows = (await this.redis.xinfo('GROUPS', key)) as unknown[][];
    for (const row of rows) {
      const name = String(fieldOf(row, 'name'));
      if (!name.startsWith(prefix)) continue;
      const instance = name.slice(prefix.length);
      if (instance === this.instanceId || live.has(instance)) continue;
      if ((await runScript(this.redis, DESTROY_IDLE_GROUP, 1, key, name, this.consumerIdleMs)) !== 1) continue;
      this.logger.info({ module: moduleId, type, group: name }, 'removed the event group of a process that is gone');
    }
  }

  private async reclaim(sub: Subscription, type: string): Promise<void> {
    const key = streamKey(type);
    const rows = (await this.redis.xpending(key, sub.group, 'IDLE', this.retryDelayMs, '-', '+', RECLAIM_BATCH)) as PendingRow[];
    for (const [id, , , deliveries] of rows) {
      if (this.closed) return;
      if (sub.inHand.get(type)?.has(id)) continue;
      // The same min-idle condition again: of several instances reclaiming at once, only one wins.
      const claimed = (await this.redis.xclaim(key, sub.group, this.instanceId, this.retryDelayMs, id)) as RawEntry[];
      const entry = claimed[0];
      // Empty: another instance took it first, or it was trimmed away (XCLAIM then drops it from the group).
      if (!entry) continue;
      this.hold(sub, type, id);
      await this.deliver(sub, type, id, entry[1], Number(deliveries) + 1);
    }
  }

  private hold(sub: Subscription, type: string, id: string): void {
    sub.inHand.get(type)?.add(id);
  }

  /** Delivers one entry (its `attempt`-th delivery) and concludes it: ack, retry later, or dead letter. */
  private async deliver(sub: Subscription, type: string, id: string, fields: string[] | null, attempt: number): Promise<void> {
    const key = streamKey(type);
    const log = this.logger.child({ module: sub.moduleId, type, entryId: id });
    try {
      if (!fields) {
        // Trimmed from the stream before this module handled it (maxLen): nothing left to deliver.
        log.warn('event trimmed from its stream before it was handled: skipping it');
        await this.redis.xack(key, sub.group, id);
        return;
      }
      const raw = fieldValue(fields, ENVELOPE_FIELD) ?? '';
      let event: EventEnvelope;
      try {
        event = decodeEnvelope(raw);
      } catch (err) {
        await this.deadLetter(sub, type, id, attempt, errorMessage(err), raw);
        return;
      }
      if (attempt > this.maxAttempts) {
        // Delivered maxAttempts times without a conclusion: the holders crashed or hung on it.
        await this.deadLetter(sub, type, id, attempt - 1, `not acknowledged after ${attempt - 1} deliveries (the handling process stopped or hung)`, raw, event.id);
        return;
      }
      const handler = sub.handlers.get(type);
      if (!handler) return; // unreachable: only streams with a handler are read
      const ctx: RequestContext = { requestId: event.requestId ?? event.id, ...(event.actor ? { actor: event.actor } : {}) };
      try {
        await withTimeout(
          runWithContext(ctx, async () => handler(event)),
          this.handlerTimeoutMs,
          `handler timed out after ${this.handlerTimeoutMs} ms`,
        );
      } catch (err) {
        if (attempt >= this.maxAttempts) {
          await this.deadLetter(sub, type, id, attempt, errorMessage(err), raw, event.id);
        } else {
          this.metrics?.eventDeliveries.labels(sub.moduleId, type, 'retry').inc();
          log.warn({ eventId: event.id, attempt, maxAttempts: this.maxAttempts, err: errorMessage(err) }, 'event handler failed: will retry');
          // Restart the idle clock, so the retry comes retryDelayMs after the failure rather than after the delivery.
          await this.touch(sub.group, type, [id]);
        }
        return;
      }
      await this.redis.xack(key, sub.group, id);
      this.metrics?.eventDeliveries.labels(sub.moduleId, type, 'ok').inc();
    } catch (err) {
      // Redis failed while concluding: the entry stays pending and comes back after retryDelayMs.
      if (!this.closed) log.warn({ attempt, err: errorMessage(err) }, 'could not conclude an event delivery: it will be delivered again');
    } finally {
      sub.inHand.get(type)?.delete(id);
    }
  }

  private async deadLetter(sub: Subscription, type: string, id: string, attempts: number, error: string, raw: string, eventId?: string): Promise<void> {
    await this.redis.xadd(
      DEAD_LETTER_KEY, 'MAXLEN', '~', this.maxLen, '*',
      'module', sub.moduleId, 'type', type, 'attempts', String(attempts), 'error', error,
      'event', raw, 'failedAt', new Date().toISOString(), 'streamId', id,
    );
    // Not atomic with the XADD (a cluster could not do both in one transaction): a crash in between
    // means one more delivery and possibly a second dead letter, never a lost event.
    await this.redis.xack(streamKey(type), sub.group, id);
    this.metrics?.eventDeliveries.labels(sub.moduleId, type, 'dead').inc();
    this.logger.error({ module: sub.moduleId, type, entryId: id, eventId, attempts, err: error }, 'event moved to the dead letters');
  }

  /** Resets the idle time of entries this instance holds, so no other instance retries them meanwhile. */
  private async touch(group: string, type: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.redis.xclaim(streamKey(type), group, this.instanceId, 0, ...ids, 'JUSTID');
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    const every = Math.max(10, Math.floor(this.retryDelayMs / 3));
    this.heartbeat = setInterval(() => {
      for (const sub of [...this.subscriptions.values()].flat()) {
        for (const [type, ids] of sub.inHand) {
          this.touch(sub.group, type, [...ids]).catch((err: unknown) => {
            this.logger.debug({ module: sub.moduleId, type, err: errorMessage(err) }, 'event heartbeat failed');
          });
        }
      }
    }, every);
    this.heartbeat.unref();
  }

  /** Sleeps, but wakes up at once when the bus closes. */
  private sleep(ms: number): Promise<void> {
    return this.closed ? Promise.resolve() : sleep(ms, this.stopping.signal);
  }
}

function assertModuleId(moduleId: string): void {
  if (!/^[a-z0-9][a-z0-9_-]*$/i.test(moduleId)) throw new Error(`invalid module id "${moduleId}"`);
}

/** A field of an XINFO reply row (name, value, name, value...). */
function fieldOf(row: unknown[], name: string): unknown {
  for (let i = 0; i + 1 < row.length; i += 2) if (String(row[i]) === name) return row[i + 1];
  return undefined;
}

function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function parseDeadLetter(id: string, fields: string[]): DeadLetter {
  const type = fieldValue(fields, 'type') ?? '';
  const raw = fieldValue(fields, 'event') ?? '';
  let event: EventEnvelope;
  try {
    event = decodeEnvelope(raw);
  } catch {
    // A malformed entry is dead-lettered as it was found; show its text as the payload.
    event = { id: '', type, version: 0, occurredAt: '', source: '', payload: raw };
  }
  return {
    id,
    moduleId: fieldValue(fields, 'module') ?? '',
    type,
    attempts: Number(fieldValue(fields, 'attempts') ?? 0),
    error: fieldValue(fields, 'error') ?? '',
    event,
    failedAt: fieldValue(fields, 'failedAt') ?? '',
  };
}

function isNoGroup(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOGROUP');
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    // A handler abandoned at close must not keep the process alive for the rest of its timeout.
    timer.unref();
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
