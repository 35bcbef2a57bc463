// A small contract whose handlers misbehave on request (throw, stall, answer outside the schema) and
// record what they saw, so the transport tests can check what a caller notices on either binding.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { actorSchema, currentContext, type RequestContext } from '../../../src/kernel/context/request-context.js';
import { defineContract, operation, streamOperation, type Handlers } from '../../../src/kernel/contract/define.js';
import { ContractError } from '../../../src/kernel/contract/errors.js';

export const SLOW_TIMEOUT_MS = 300;
/**
 * Far above any gap between a live stream's chunks, even on 2 cores running the whole suite (400 ms once
 * let a 40 ms-gap stream time out in CI), and still short enough to wait for in the timeout tests.
 */
export const STREAM_IDLE_TIMEOUT_MS = 1000;

export const probeContract = defineContract({
  id: 'probe',
  summary: 'Transport test double.',
  errors: ['not_found', 'conflict', 'invalid_input', 'internal', 'timeout', 'unavailable'],
  operations: {
    echo: operation({
      input: z.object({ text: z.string().min(1), repeat: z.number().int().min(1).max(5).default(1) }),
      output: z.object({ text: z.string() }),
      idempotent: true,
    }),
    /** Has an effect (counts), so it must never be repeated behind the caller's back. */
    record: operation({
      input: z.object({ note: z.string() }),
      output: z.object({ recorded: z.number().int() }),
    }),
    find: operation({
      input: z.object({ id: z.string() }),
      output: z.object({ id: z.string() }),
      idempotent: true,
    }),
    crash: operation({ input: z.object({}), output: z.object({ ok: z.boolean() }) }),
    slow: operation({
      input: z.object({ ms: z.number().int().nonnegative() }),
      output: z.object({ done: z.boolean() }),
      idempotent: true,
      timeoutMs: SLOW_TIMEOUT_MS,
    }),
    broken: operation({ input: z.object({}), output: z.object({ count: z.number().int() }) }),
    whoami: operation({
      input: z.object({}),
      output: z.object({
        requestId: z.string(),
        actor: actorSchema.optional(),
        deadline: z.number().optional(),
        idempotencyKey: z.string().optional(),
      }),
      idempotent: true,
    }),
    count: streamOperation({
      input: z.object({
        n: z.number().int().nonnegative(),
        gapMs: z.number().int().nonnegative().default(0),
        /** Throw a contract error (conflict) before chunk `failAt`. */
        failAt: z.number().int().optional(),
        /** Throw a plain Error before chunk `crashAt`. */
        crashAt: z.number().int().optional(),
        /** Yield a chunk violating the chunk schema at `badAt`. */
        badAt: z.number().int().optional(),
        /** Stall (until aborted) before chunk `stallAt`. */
        stallAt: z.number().int().optional(),
      }),
      chunk: z.object({ i: z.number().int() }),
      timeoutMs: STREAM_IDLE_TIMEOUT_MS,
    }),
  },
});

export type ProbeContract = typeof probeContract;

/** What the handlers saw; one per test. */
export class ProbeRecorder {
  readonly calls: Record<string, number> = {};
  contexts: (RequestContext | undefined)[] = [];
  aborted = 0;
  produced = 0;
  /** How many producers ran their `finally` (closed by the consumer, a timeout or an error). */
  producersClosed = 0;

  hit(name: string): void {
    this.calls[name] = (this.calls[name] ?? 0) + 1;
  }
}

export function probeHandlers(rec: ProbeRecorder): Handlers<ProbeContract> {
  return {
    echo: ({ text, repeat }) => {
      rec.hit('echo');
      return { text: text.repeat(repeat) };
    },
    record: () => {
      rec.hit('record');
      return { recorded: rec.calls.record ?? 0 };
    },
    find: ({ id }) => {
      rec.hit('find');
      throw new ContractError('not_found', `no probe ${id}`);
    },
    crash: () => {
      rec.hit('crash');
      throw new Error('db password is hunter2');
    },
    slow: async ({ ms }, { signal }) => {
      rec.hit('slow');
      rec.contexts.push(currentContext());
      try {
        await sleep(ms, undefined, { signal });
        return { done: true };
      } catch {
        rec.aborted++;
        return { done: false };
      }
    },
    broken: () => {
      rec.hit('broken');
      // Deliberately outside the output schema: a bug in the module, not the caller's fault.
      return { count: 'many' } as unknown as { count: number };
    },
    whoami: () => {
      rec.hit('whoami');
      const ctx = currentContext();
      rec.contexts.push(ctx);
      return {
        requestId: ctx?.requestId ?? '',
        ...(ctx?.actor ? { actor: ctx.actor } : {}),
        ...(ctx?.deadline !== undefined ? { deadline: ctx.deadline } : {}),
        ...(ctx?.idempotencyKey ? { idempotencyKey: ctx.idempotencyKey } : {}),
      };
    },
    count: (input, { signal }) => {
      rec.hit('count');
      return (async function* produce() {
        try {
          for (let i = 0; i < input.n; i++) {
            if (input.gapMs) await sleep(input.gapMs);
            if (i === input.failAt) throw new ContractError('conflict', `conflict at ${i}`);
            if (i === input.crashAt) throw new Error('producer exploded');
            if (i === input.stallAt) {
              await new Promise<void>((resolve) => {
                if (signal.aborted) resolve();
                signal.addEventListener('abort', () => resolve(), { once: true });
              });
              rec.aborted++;
              return;
            }
            rec.produced++;
            yield (i === input.badAt ? { i: 'bad' } : { i }) as { i: number };
          }
        } finally {
          rec.producersClosed++;
        }
      })();
    },
  };
}
