// The saga kit: what the runtime wires and what a module's saga declarations import.
export { defineSaga, DEFAULT_STEP_RETRIES } from './saga-definition.js';
export type { AnySagaDefinition, SagaDefinition, SagaInputMapper, SagaStep, SagaStepCall, SagaStepCondition } from './saga-definition.js';
export { SagaOrchestrator, SAGA_QUEUE_PREFIX, sagaQueueName } from './saga-orchestrator.js';
export type { ListSagasOptions, PortResolver, SagaOrchestratorOptions, StartSagaOptions } from './saga-orchestrator.js';
export { sagaStatuses } from './saga-record.js';
export type {
  SagaCompensationRecord,
  SagaErrorInfo,
  SagaFailure,
  SagaRecord,
  SagaStatus,
  SagaStepRecord,
  SagaStepStatus,
} from './saga-record.js';
