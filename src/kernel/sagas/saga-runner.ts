// Runs one saga from its journal: forward through the steps that have no outcome yet, and on a step's
// final failure backward through the compensations. Every decision is taken from the journal, never
// from memory, so the same code serves a fresh saga and one resumed after its process died:
// a completed step is not called again, a step with an intent but no outcome is called again with the
// same idempotency key (the operation applies its effect once).
// A step's outcome (or a `skipped` decision) is journaled together with the next write, the next
// step's intent or the saga's final status: nothing happens in between but pure mapping, so a crash
// there repeats the step under its key, as a crash just before its outcome write always could.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { runWithContext, type RequestContext } from '../context/request-context.js';
import { ContractError, toContractError } from '../contract/errors.js';
import { DEFAULT_STEP_RETRIES, type AnySagaDefinition, type SagaStep, type SagaStepCall } from './saga-definition.js';
import type { SagaJournal, SagaChange, SagaLease } from './saga-journal.js';
import { isTerminal, type SagaErrorInfo, type SagaRecord, type SagaStepRecord } from './saga-record.js';

/** Returns the module's port (local or HTTP binding): operation name → async (input) => output. */
export type PortResolver = (moduleId: string) => Record<string, unknown> | undefined;

/** `finished`: the saga reached a terminal status. `paused`: stopped between calls (shutdown); resume later. */
export type RunOutcome = 'finished' | 'paused';

export interface SagaRunnerDeps {
  journal: SagaJournal;
  definitionOf: (type: string) => AnySagaDefinition | undefined;
  resolvePort: PortResolver;
  logger: Logger;
  /** First delay before retrying a step after a retryable error; doubles per failure. */
  retryDelayMs: number;
}

const MAX_RETRY_DELAY_MS = 30_000;

export class UnknownSagaTypeError extends Error {
  constructor(type: string) {
    super(`no saga definition "${type}" is registered in this process`);
    this.name = 'UnknownSagaTypeError';
  }
}

/** `record`: the journal as the caller just wrote it (a saga started here), saving a read. */
export async function runSaga(deps: SagaRunnerDeps, id: string, lease: SagaLease | undefined, stop: AbortSignal, record?: SagaRecord): Promise<RunOutcome> {
  const rec = record ?? (await deps.journal.load(id));
  if (!rec) {
    deps.logger.warn({ sagaId: id }, 'saga job has no journal record; dropped');
    return 'finished';
  }
  if (isTerminal(rec.status)) return 'finished';
  const def = deps.definitionOf(rec.type);
  // Thrown, not journaled: during a rolling deploy an older process may see a newer saga type; the
  // job is retried later (possibly by a process that knows the type) instead of failing the saga.
  if (!def) throw new UnknownSagaTypeError(rec.type);
  return new SagaExecution(deps, rec, def, lease, stop).run();
}

function now(): string {
  return new Date().toISOString();
}

function errorInfo(err: ContractError): SagaErrorInfo {
  return err.details === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, details: err.details };
}

function withoutError<T extends { error?: SagaErrorInfo }>(value: T): T {
  const { error: _dropped, ...rest } = value;
  return rest as T;
}

type CallOutcome = 'completed' | 'failed' | 'paused';

class SagaExecution {
  private readonly log: Logger;
  private readonly results: Record<string, unknown> = {};
  /** Outcomes and decisions not written yet: they go with the next write. */
  private deferred: { steps: SagaStepRecord[]; currentStep?: string } = { steps: [] };

  constructor(
    private readonly deps: SagaRunnerDeps,
    private readonly rec: SagaRecord,
    private readonly def: AnySagaDefinition,
    private readonly lease: SagaLease | undefined,
    private readonly stop: AbortSignal,
  ) {
    this.log = deps.logger.child({ sagaId: rec.id, sagaType: rec.type, requestId: rec.requestId });
  }

  async run(): Promise<RunOutcome> {
    const expected = this.def.steps.map((s) => s.name);
    const journaled = this.rec.steps.map((s) => s.name);
    if (expected.join('\u0000') !== journaled.join('\u0000')) {
      // The journal was written by a different version of this saga type: resuming by position or
      // name could call the wrong operation, so stop and leave it to a human.
      const step = journaled.find((n, i) => n !== expected[i]) ?? journaled[0] ?? '';
      const message = `the steps of saga type "${this.rec.type}" changed since this saga started (${journaled.join(', ')} → ${expected.join(', ')})`;
      this.log.error({ journaled, expected }, 'saga definition changed under a running saga');
      await this.write({ status: { from: this.rec.status, to: 'failed' }, error: { code: 'internal', message, step, phase: 'step' } });
      return 'finished';
    }
    if (this.rec.status === 'running') {
      const forward = await this.forward();
      if (forward === 'paused') await this.flush();
      if (forward !== 'compensate') return forward;
    }
    const outcome = await this.compensate();
    if (outcome === 'paused') await this.flush();
    return outcome;
  }

  private async forward(): Promise<RunOutcome | 'compensate'> {
    for (const [i, step] of this.def.steps.entries()) {
      const rec = this.rec.steps[i]!;
      if (rec.status === 'completed') {
        this.results[step.name] = rec.result;
        continue;
      }
      if (rec.status === 'skipped') continue;
      // Only reachable if the status change that goes with a final failure were lost; it never is
      // (both are one atomic write), but compensating is the safe reading of such a journal.
      if (rec.status === 'failed') return 'compensate';
      if (this.stop.aborted) return 'paused';
      // Decided once, before any intent: a step with an intent was meant to run and runs again.
      if (step.when && rec.attempts === 0) {
        const runs = await this.decide(i, step);
        if (runs === 'failed') return 'compensate';
        if (!runs) continue;
      }
      const outcome = await this.callStep(i, step);
      if (outcome === 'paused') return 'paused';
      if (outcome === 'failed') return 'compensate';
    }
    await this.write({ status: { from: 'running', to: 'completed' } });
    this.log.info('saga completed');
    return 'finished';
  }

  /** Evaluates `when`; journals `skipped` when it does not hold. */
  private async decide(i: number, step: Readonly<SagaStep<unknown>>): Promise<boolean | 'failed'> {
    let runs: boolean;
    try {
      runs = step.when!(this.rec.input, { ...this.results }) === true;
    } catch (err) {
      const info = this.mapperError(step.name, 'when', err);
      await this.failForward(i, { ...this.rec.steps[i]!, status: 'failed', error: info, finishedAt: now() }, info);
      return 'failed';
    }
    if (runs) return true;
    const skipped: SagaStepRecord = { ...this.rec.steps[i]!, status: 'skipped', finishedAt: now() };
    this.defer(i, skipped, step.name);
    this.log.debug({ step: step.name }, 'saga step skipped');
    return false;
  }

  private async callStep(i: number, step: Readonly<SagaStep<unknown>>): Promise<CallOutcome> {
    const retries = step.retries ?? DEFAULT_STEP_RETRIES;
    let rec = this.rec.steps[i]!;
    // Counted per run: a call cut short by a crash is not a failure of the operation, so a resumed
    // saga always gets to repeat it.
    let failures = 0;
    for (;;) {
      let input: unknown;
      try {
        input = step.input(this.rec.input, { ...this.results }, this.callInfo(step.name));
      } catch (err) {
        // A mapper bug: the operation was never called, so there is nothing of this step to undo.
        const info = this.mapperError(step.name, 'input', err);
        rec = { ...rec, status: 'failed', error: info, finishedAt: now() };
        await this.failForward(i, rec, info);
        return 'failed';
      }

      rec = { ...rec, status: 'started', attempts: rec.attempts + 1, startedAt: now() };
      // The intent goes out before the call and is confirmed before anything else is written, but the
      // call does not wait for Redis to answer it: the call is made under its idempotency key, so if
      // this process dies before the intent landed, the resumed saga (finding the step pending) makes
      // the same call again, exactly as when it dies after. A lost lease surfaces here, after the call,
      // as it would at the outcome write.
      const intent = this.write({ steps: [rec], currentStep: step.name }, i, rec);
      intent.catch(() => undefined);

      let result: unknown;
      let failure: ContractError | undefined;
      try {
        result = await this.call(step.module, step.operation, input, rec.idempotencyKey, step.timeoutMs);
      } catch (err) {
        failure = this.contractError(err, step.name, 'step');
      }
      await intent;

      if (!failure) {
        const { finishedAt: _previous, ...started } = withoutError(rec);
        rec = { ...started, status: 'completed', finishedAt: now(), ...(result === undefined ? {} : { result }) };
        this.defer(i, rec);
        this.results[step.name] = result;
        return 'completed';
      }

      failures += 1;
      const info = errorInfo(failure);
      if (failure.retryable && failures <= retries) {
        // Still an intent without an outcome: if this process dies now, the resumed saga repeats it.
        rec = { ...rec, error: info };
        await this.write({ steps: [rec] }, i, rec);
        const delay = Math.min(this.deps.retryDelayMs * 2 ** (failures - 1), MAX_RETRY_DELAY_MS);
        this.log.warn({ step: step.name, attempt: rec.attempts, code: failure.code, retryInMs: delay }, 'saga step failed; retrying');
        if (!(await this.wait(delay))) return 'paused';
        continue;
      }
      rec = { ...rec, status: 'failed', error: info, finishedAt: now() };
      this.log.warn({ step: step.name, attempt: rec.attempts, code: failure.code, error: failure.message }, 'saga step failed; compensating');
      await this.failForward(i, rec, info);
      return 'failed';
    }
  }

  private async failForward(i: number, rec: SagaStepRecord, info: SagaErrorInfo): Promise<void> {
    await this.write(
      { steps: [rec], status: { from: 'running', to: 'compensating' }, error: { ...info, step: rec.name, phase: 'step' } },
      i,
      rec,
    );
  }

  private async compensate(): Promise<RunOutcome> {
    for (let i = this.def.steps.length - 1; i >= 0; i--) {
      const step = this.def.steps[i]!;
      const rec = this.rec.steps[i]!;
      // No intent, no effect: the step was never called. Compensated already: done before a crash.
      if (!step.compensate || rec.attempts === 0 || rec.status === 'compensated') continue;
      if (this.stop.aborted) return 'paused';
      const outcome = await this.callCompensation(i, step, step.compensate);
      if (outcome === 'paused') return 'paused';
      if (outcome === 'failed') return 'finished';
    }
    await this.write({ status: { from: 'compensating', to: 'compensated' } });
    this.log.info({ cause: this.rec.error }, 'saga compensated');
    return 'finished';
  }

  private async callCompensation(
    i: number,
    step: Readonly<SagaStep<unknown>>,
    compensate: NonNullable<SagaStep<unknown>['compensate']>,
  ): Promise<CallOutcome> {
    const retries = step.retries ?? DEFAULT_STEP_RETRIES;
    let rec = this.rec.steps[i]!;
    let comp = rec.compensation ?? { operation: compensate.operation, idempotencyKey: `${rec.idempotencyKey}:compensate`, attempts: 0 };
    let failures = 0;
    for (;;) {
      let input: unknown;
      try {
        input = compensate.input(this.rec.input, { ...this.results }, this.callInfo(step.name));
      } catch (err) {
        const info = this.mapperError(step.name, 'compensation input', err);
        rec = { ...rec, compensation: { ...comp, error: info } };
        await this.failCompensation(i, rec, info);
        return 'failed';
      }

      comp = { ...comp, attempts: comp.attempts + 1, startedAt: now() };
      rec = { ...rec, status: 'compensating', compensation: comp };
      await this.write({ steps: [rec], currentStep: step.name }, i, rec);

      let failure: ContractError | undefined;
      try {
        await this.call(step.module, compensate.operation, input, comp.idempotencyKey);
      } catch (err) {
        failure = this.contractError(err, step.name, 'compensate');
      }

      if (!failure) {
        comp = { ...withoutError(comp), finishedAt: now() };
        rec = { ...rec, status: 'compensated', compensation: comp };
        await this.write({ steps: [rec] }, i, rec);
        return 'completed';
      }

      failures += 1;
      const info = errorInfo(failure);
      comp = { ...comp, error: info };
      rec = { ...rec, compensation: comp };
      if (failure.retryable && failures <= retries) {
        await this.write({ steps: [rec] }, i, rec);
        const delay = Math.min(this.deps.retryDelayMs * 2 ** (failures - 1), MAX_RETRY_DELAY_MS);
        this.log.warn({ step: step.name, attempt: comp.attempts, code: failure.code, retryInMs: delay }, 'saga compensation failed; retrying');
        if (!(await this.wait(delay))) return 'paused';
        continue;
      }
      await this.failCompensation(i, rec, info);
      return 'failed';
    }
  }

  private async failCompensation(i: number, rec: SagaStepRecord, info: SagaErrorInfo): Promise<void> {
    // Compensating further steps after one could not be undone might act on a state nobody expects;
    // the saga stops here, `failed`, with the error in the journal for a human to resolve.
    this.log.error({ step: rec.name, code: info.code, error: info.message }, 'saga compensation failed; saga left failed');
    await this.write(
      { steps: [rec], status: { from: 'compensating', to: 'failed' }, error: { ...info, step: rec.name, phase: 'compensate' } },
      i,
      rec,
    );
  }

  private callInfo(step: string): SagaStepCall {
    return { sagaId: this.rec.id, step, stepKey: `${this.rec.id}:${step}` };
  }

  /** Calls a module operation in the saga's request context with the step's idempotency key. */
  private async call(moduleId: string, operation: string, input: unknown, idempotencyKey: string, timeoutMs?: number): Promise<unknown> {
    const port = this.deps.resolvePort(moduleId);
    if (!port) throw new ContractError('unavailable', `module "${moduleId}" is not reachable from this process`);
    const fn = port[operation];
    if (typeof fn !== 'function') throw new ContractError('internal', `module "${moduleId}" has no operation "${operation}"`);
    // No deadline inherited: the request that started the saga is long answered; each operation's
    // own timeout (applied by its binding) bounds the call, or the step's own for a long-running step.
    const ctx: RequestContext = {
      requestId: this.rec.requestId,
      idempotencyKey,
      ...(this.rec.actor ? { actor: this.rec.actor } : {}),
      ...(timeoutMs !== undefined ? { deadline: Date.now() + timeoutMs } : {}),
    };
    const out: unknown = await runWithContext(ctx, () => (fn as (input: unknown) => unknown)(input));
    if (out !== null && typeof out === 'object' && Symbol.asyncIterator in out) {
      throw new ContractError('internal', `${moduleId}.${operation} streams; a saga step must answer once`);
    }
    // The journal holds JSON; later mappers must see the same value whether or not the saga resumed.
    return out === undefined ? undefined : (JSON.parse(JSON.stringify(out)) as unknown);
  }

  private contractError(err: unknown, step: string, phase: 'step' | 'compensate'): ContractError {
    const ce = toContractError(err);
    if (ce !== err) this.log.error({ err, step, phase }, 'saga call failed with an unexpected error');
    return ce;
  }

  private mapperError(step: string, what: string, err: unknown): SagaErrorInfo {
    this.log.error({ err, step }, `saga ${what} mapper threw`);
    return { code: 'internal', message: `step "${step}": ${what} mapper threw: ${err instanceof Error ? err.message : String(err)}` };
  }

  /** Waits before a retry; false when the orchestrator is shutting down. */
  private async wait(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.stop });
      return true;
    } catch {
      return false;
    }
  }

  /** A step's outcome or decision, mirrored in memory now and journaled with the next write. */
  private defer(stepIndex: number, step: SagaStepRecord, currentStep?: string): void {
    this.rec.steps[stepIndex] = step;
    this.deferred.steps.push(step);
    if (currentStep !== undefined) this.deferred.currentStep = currentStep;
  }

  /** Writes what was deferred (before stopping between calls). */
  private async flush(): Promise<void> {
    if (this.deferred.steps.length) await this.write({});
  }

  /** Writes a change (with whatever was deferred) and, once it landed, mirrors it in memory. */
  private async write(change: SagaChange, stepIndex?: number, step?: SagaStepRecord): Promise<void> {
    const deferred = this.deferred;
    this.deferred = { steps: [] };
    if (deferred.steps.length) {
      const later = new Set((change.steps ?? []).map((s) => s.name));
      change = {
        ...change,
        steps: [...deferred.steps.filter((s) => !later.has(s.name)), ...(change.steps ?? [])],
        ...(change.currentStep === undefined && deferred.currentStep !== undefined ? { currentStep: deferred.currentStep } : {}),
      };
    }
    await this.deps.journal.write(this.rec.id, this.lease, change, now());
    if (stepIndex !== undefined && step) this.rec.steps[stepIndex] = step;
    if (change.status) this.rec.status = change.status.to;
    if (change.error) this.rec.error = change.error;
    if (change.currentStep !== undefined) this.rec.currentStep = change.currentStep;
  }
}
