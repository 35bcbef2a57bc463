// The contract kit: a module describes its public door as data (operations, events, routes, settings,
// errors), and the kernel derives from it the port type, both bindings, the REST routes and OpenAPI.
import type { z } from 'zod';
import type { ErrorCode } from './errors.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- `any` here only widens generic bounds */
type AnySchema = z.ZodType<any, any>;

export interface UnaryOperation<I extends AnySchema = AnySchema, O extends AnySchema = AnySchema> {
  readonly kind: 'unary';
  readonly input: I;
  readonly output: O;
  /** Safe to repeat: the HTTP binding retries only these. */
  readonly idempotent: boolean;
  /** Default deadline of one call. */
  readonly timeoutMs: number;
  readonly summary?: string;
}

export interface StreamOperation<I extends AnySchema = AnySchema, C extends AnySchema = AnySchema> {
  readonly kind: 'stream';
  readonly input: I;
  readonly chunk: C;
  readonly idempotent: boolean;
  /** For a stream: the longest wait for the first and for every next chunk. */
  readonly timeoutMs: number;
  readonly summary?: string;
}

export type Operation = UnaryOperation | StreamOperation;
export type Operations = Record<string, Operation>;

export const DEFAULT_OPERATION_TIMEOUT_MS = 10_000;

export function operation<I extends AnySchema, O extends AnySchema>(def: {
  input: I;
  output: O;
  idempotent?: boolean;
  timeoutMs?: number;
  summary?: string;
}): UnaryOperation<I, O> {
  return {
    kind: 'unary',
    input: def.input,
    output: def.output,
    idempotent: def.idempotent ?? false,
    timeoutMs: def.timeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS,
    ...(def.summary ? { summary: def.summary } : {}),
  };
}

export function streamOperation<I extends AnySchema, C extends AnySchema>(def: {
  input: I;
  chunk: C;
  idempotent?: boolean;
  timeoutMs?: number;
  summary?: string;
}): StreamOperation<I, C> {
  return {
    kind: 'stream',
    input: def.input,
    chunk: def.chunk,
    idempotent: def.idempotent ?? false,
    timeoutMs: def.timeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS,
    ...(def.summary ? { summary: def.summary } : {}),
  };
}

export interface EventDef<P extends AnySchema = AnySchema> {
  readonly version: number;
  readonly payload: P;
  readonly summary?: string;
}
export type Events = Record<string, EventDef>;

export function event<P extends AnySchema>(def: { version?: number; payload: P; summary?: string }): EventDef<P> {
  return { version: def.version ?? 1, payload: def.payload, ...(def.summary ? { summary: def.summary } : {}) };
}

export type AuthLevel = 'public' | 'user' | 'admin' | 'internal';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
/** Named rate-limit classes; the gateway's configuration gives each its budget. `none` is unlimited. */
export type RateLimitClass = 'none' | 'default' | 'auth' | 'expensive';

export interface RouteRequest {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
}

export interface RouteDef<OpName extends string = string> {
  readonly method: HttpMethod;
  /** Relative to /api/v1, express syntax (`/chats/:id`). */
  readonly path: string;
  readonly operation: OpName;
  readonly auth: AuthLevel;
  readonly rateLimit?: RateLimitClass;
  /** Status of a success; 204 sends no body. Default 200. */
  readonly status?: number;
  /** Overrides the operation's deadline for calls through this route. */
  readonly timeoutMs?: number;
  readonly summary?: string;
  /** How the operation's input is built from the request; default: query, then body, then path params merged. */
  readonly input?: (req: RouteRequest) => unknown;
  /**
   * A stream operation that answers the same route as NDJSON when `when` holds (e.g. `stream: true` in
   * the body): one path, JSON or a stream, as Ollama's and OpenAI's completion APIs do.
   */
  readonly stream?: { readonly operation: OpName; readonly when: (req: RouteRequest) => boolean };
}

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  detail?: string;
}

/** A DI token that remembers the type it resolves to. */
export type PortToken<T> = symbol & { readonly __port?: () => T };

export interface Contract<
  Id extends string = string,
  Ops extends Operations = Operations,
  Ev extends Events = Events,
> {
  readonly id: Id;
  readonly summary: string;
  readonly operations: Ops;
  readonly events: Ev;
  readonly routes: readonly RouteDef<Extract<keyof Ops, string>>[];
  /** Error codes its operations may answer (documentation; the set itself is closed). */
  readonly errors: readonly ErrorCode[];
  /** Runtime settings of this module's namespace, validated by the config module. */
  readonly settings?: z.ZodObject;
  readonly token: PortToken<PortOf<Ops>>;
}

// `any`: a specific contract's operation types sit in conditional (invariant) positions, so only `any`
// lets every contract be handled generically by the kernel.
export type AnyContract = Contract<string, any, any>;

export function defineContract<Id extends string, Ops extends Operations, Ev extends Events = Record<never, never>>(def: {
  id: Id;
  summary: string;
  operations: Ops;
  events?: Ev;
  routes?: readonly RouteDef<Extract<keyof Ops, string>>[];
  errors?: readonly ErrorCode[];
  settings?: z.ZodObject;
}): Contract<Id, Ops, Ev> {
  if (!/^[a-z][a-z0-9-]*$/.test(def.id)) throw new Error(`contract id "${def.id}" must be lower-kebab-case`);
  for (const name of Object.keys(def.operations)) {
    if (!/^[a-z][A-Za-z0-9]*$/.test(name)) throw new Error(`${def.id}: operation "${name}" must be camelCase`);
  }
  for (const name of Object.keys(def.events ?? {})) {
    if (!name.startsWith(`${def.id}.`)) throw new Error(`${def.id}: event "${name}" must start with "${def.id}."`);
  }
  for (const r of def.routes ?? []) {
    if (!(r.operation in def.operations)) {
      throw new Error(`${def.id}: route ${r.method} ${r.path} names unknown operation "${r.operation}"`);
    }
    if (r.stream && def.operations[r.stream.operation]?.kind !== 'stream') {
      throw new Error(`${def.id}: route ${r.method} ${r.path} streams with "${r.stream.operation}", which is not a stream operation`);
    }
  }
  return {
    id: def.id,
    summary: def.summary,
    operations: def.operations,
    events: (def.events ?? {}) as Ev,
    routes: def.routes ?? [],
    errors: def.errors ?? [],
    ...(def.settings ? { settings: def.settings } : {}),
    token: Symbol.for(`autobot.port.${def.id}`) as PortToken<PortOf<Ops>>,
  };
}

/** What a caller holds: one async function per operation, plus the module's health probe. */
export type PortOf<Ops extends Operations> = {
  readonly [K in keyof Ops]: Ops[K] extends UnaryOperation<infer I, infer O>
    ? (input: z.input<I>) => Promise<z.output<O>>
    : Ops[K] extends StreamOperation<infer I, infer Ch>
      ? (input: z.input<I>) => AsyncIterable<z.output<Ch>>
      : // Only reached for the general `Operation` (AnyContract): some operation, unknown which.
        (input: any) => any;
} & { readonly $health: () => Promise<HealthReport> };

export type Port<C extends AnyContract> = PortOf<C['operations']>;

/** Per call: the deadline's signal, so a handler can stop work nobody waits for any more. */
export interface CallInfo {
  readonly signal: AbortSignal;
}

/** What a module implements: one handler per operation, receiving parsed input. */
export type Handlers<C extends AnyContract> = {
  [K in keyof C['operations']]: C['operations'][K] extends UnaryOperation<infer I, infer O>
    ? (input: z.output<I>, call: CallInfo) => Promise<z.input<O>> | z.input<O>
    : C['operations'][K] extends StreamOperation<infer I, infer Ch>
      ? (input: z.output<I>, call: CallInfo) => AsyncIterable<z.input<Ch>>
      : (input: any, call: CallInfo) => any;
};

export type EventName<C extends AnyContract> = Extract<keyof C['events'], string>;
export type EventPayload<C extends AnyContract, N extends EventName<C>> = z.output<C['events'][N]['payload']>;
