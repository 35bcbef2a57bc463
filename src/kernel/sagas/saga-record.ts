// The shape of a saga's journal as callers read it (`get`, `list`). Plain JSON: it is what an admin
// endpoint would answer, and what a resumed saga is rebuilt from.
import type { Actor } from '../context/request-context.js';
import type { ErrorCode } from '../contract/errors.js';

export const sagaStatuses = ['running', 'completed', 'compensating', 'compensated', 'failed'] as const;
export type SagaStatus = (typeof sagaStatuses)[number];

export const terminalSagaStatuses: readonly SagaStatus[] = ['completed', 'compensated', 'failed'];

/** `skipped`: the step's `when` did not hold; decided once and journaled, so a resumed saga agrees. */
export type SagaStepStatus = 'pending' | 'started' | 'completed' | 'skipped' | 'failed' | 'compensating' | 'compensated';

export interface SagaErrorInfo {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

export interface SagaFailure extends SagaErrorInfo {
  /** The step whose call (or whose compensation) failed. */
  step: string;
  phase: 'step' | 'compensate';
}

export interface SagaCompensationRecord {
  operation: string;
  /** `<sagaId>:<step>:compensate` */
  idempotencyKey: string;
  attempts: number;
  /** Intent: written before each compensation call. */
  startedAt?: string;
  /** Outcome: written after the compensation answered success. */
  finishedAt?: string;
  error?: SagaErrorInfo;
}

export interface SagaStepRecord {
  name: string;
  module: string;
  operation: string;
  status: SagaStepStatus;
  /** Number of intents written (calls begun), including a call cut short by a crash. */
  attempts: number;
  /** `<sagaId>:<step>` */
  idempotencyKey: string;
  /** The operation's output as JSON; later steps' input mappers read it. */
  result?: unknown;
  /** The last error of the forward call; cleared when a retry succeeds. */
  error?: SagaErrorInfo;
  /** Intent: written before each call. */
  startedAt?: string;
  /** Outcome: written after the call answered (success or final failure). */
  finishedAt?: string;
  /** Present when the step declares a compensation. */
  compensation?: SagaCompensationRecord;
}

export interface SagaRecord {
  id: string;
  type: string;
  status: SagaStatus;
  input: unknown;
  /** The step most recently begun (forward or compensation); null before the first. */
  currentStep: string | null;
  /** Why the saga compensated, or why it ended `failed`. */
  error?: SagaFailure;
  /** The request that started the saga; every step call carries it. */
  requestId: string;
  actor?: Actor;
  createdAt: string;
  updatedAt: string;
  steps: SagaStepRecord[];
}

export function isTerminal(status: SagaStatus): boolean {
  return terminalSagaStatuses.includes(status);
}
