// A saga is declared as data: each step names a module operation (never a closure over live objects),
// so that any process that has the definition registered can pick a half-finished saga up from its
// journal after the process that started it died.
import type { ZodType } from 'zod';

/** What a step's input mappers learn about the call besides the saga input and earlier results. */
export interface SagaStepCall {
  readonly sagaId: string;
  readonly step: string;
  /**
   * The forward call's idempotency key, `<sagaId>:<step>`. A compensation gets it too: when the step
   * failed or its outcome was never journaled there is no result to undo by, only the key under which
   * the operation recorded (or did not record) its effect.
   */
  readonly stepKey: string;
}

/**
 * Maps the saga input and the results of earlier steps (JSON as journaled, keyed by step name) to an
 * operation's input. Must be deterministic: a resumed saga maps again after a crash.
 */
export type SagaInputMapper<I> = (sagaInput: I, results: Record<string, unknown>, call: SagaStepCall) => unknown;

/**
 * Whether a step runs, from the saga input and the results of earlier steps only (never the clock, the
 * environment or another read): a resumed saga must decide the same. The decision is journaled.
 */
export type SagaStepCondition<I> = (sagaInput: I, results: Record<string, unknown>) => boolean;

export interface SagaStep<I = unknown> {
  /** Unique within the saga; part of the idempotency key, so never rename a step of a live saga type. */
  name: string;
  /** Module id whose port the orchestrator resolves. */
  module: string;
  operation: string;
  input: SagaInputMapper<I>;
  /**
   * Undoes the step. Called with idempotency key `<sagaId>:<step>:compensate` for every step whose
   * intent was journaled (also the failing one: its effect may have landed), so it must be idempotent
   * and answer success when there is nothing to undo.
   */
  compensate?: { operation: string; input: SagaInputMapper<I> };
  /** Extra attempts after a retryable error (contract errors with `retryable`), for the call and for its compensation. Default 2. */
  retries?: number;
  /**
   * Runs the step only when this holds; otherwise the step is journaled `skipped` (its result is
   * undefined for later mappers, and there is nothing to compensate). Deterministic, see SagaStepCondition.
   */
  when?: SagaStepCondition<I>;
  /**
   * A long-running step (a generation can take minutes): the call's deadline is now + timeoutMs, its own,
   * carried in the request context to the operation wherever it runs. Without it the operation's
   * default timeout bounds the call. The operation's declared timeout stays a ceiling for every caller,
   * so an operation meant for long steps declares a generous one.
   */
  timeoutMs?: number;
}

export interface SagaDefinition<I = unknown> {
  readonly type: string;
  readonly input: ZodType<I>;
  readonly steps: readonly Readonly<SagaStep<I>>[];
}

// Definitions of every input type sit side by side in one registry; a definition's own schema checks
// its input at `start`, so the registry need not know the type. `unknown` would not do: the mappers
// take the input as a parameter, and a mapper of `{ a: number }` is no mapper of `unknown`.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnySagaDefinition = SagaDefinition<any>;

export const DEFAULT_STEP_RETRIES = 2;

// Step names end up in idempotency keys `<sagaId>:<step>[:compensate]`; no colons keeps them unambiguous.
const STEP_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const SAGA_TYPE = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/;

export function defineSaga<I>(def: { type: string; input: ZodType<I>; steps: SagaStep<I>[] }): SagaDefinition<I> {
  if (!SAGA_TYPE.test(def.type)) throw new Error(`saga type "${def.type}" must be lower-kebab-case words separated by dots`);
  if (def.steps.length === 0) throw new Error(`saga ${def.type}: needs at least one step`);
  const seen = new Set<string>();
  for (const step of def.steps) {
    if (!STEP_NAME.test(step.name)) throw new Error(`saga ${def.type}: step name "${step.name}" must match ${STEP_NAME}`);
    if (seen.has(step.name)) throw new Error(`saga ${def.type}: duplicate step "${step.name}"`);
    seen.add(step.name);
    if (!step.module || !step.operation) throw new Error(`saga ${def.type}: step "${step.name}" must name a module and an operation`);
    if (step.retries !== undefined && (!Number.isInteger(step.retries) || step.retries < 0)) {
      throw new Error(`saga ${def.type}: step "${step.name}" retries must be a non-negative integer`);
    }
    if (step.timeoutMs !== undefined && (!Number.isInteger(step.timeoutMs) || step.timeoutMs <= 0)) {
      throw new Error(`saga ${def.type}: step "${step.name}" timeoutMs must be a positive integer`);
    }
    if (step.when !== undefined && typeof step.when !== 'function') {
      throw new Error(`saga ${def.type}: step "${step.name}" when must be a function`);
    }
  }
  return Object.freeze({
    type: def.type,
    input: def.input,
    steps: Object.freeze(def.steps.map((s) => Object.freeze({ ...s }))),
  });
}
