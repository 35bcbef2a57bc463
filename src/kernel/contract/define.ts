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

/**
 * The raw body of an upload operation, streamed and never buffered by the kernel: the gateway hands over
 * the request (after authentication), the HTTP binding streams it to the process hosting the module.
 */
export interface UploadBody {
  /** The bytes as they arrive (on the serving side, a Node Readable). */
  readonly stream: AsyncIterable<Uint8Array>;
  /** The body's media type as sent, with its parameters (`multipart/form-data; boundary=…`). */
  readonly contentType: string;
  /** The declared length, when the sender gave one. */
  readonly contentLength?: number;
}

/** A unary operation that also takes a streamed body (file uploads). Never retried: a stream cannot be replayed. */
export interface UploadOperation<I extends AnySchema = AnySchema, O extends AnySchema = AnySchema> {
  readonly kind: 'upload';
  readonly input: I;
  readonly output: O;
  readonly idempotent: false;
  readonly timeoutMs: number;
  /** Media types the body may have (`*\/*` for any); another one is `415 unsupported_media_type`. */
  readonly bodyTypes: readonly string[];
  /** Documentation only: the fields of a multipart form (z.file() for file parts). */
  readonly form?: AnySchema;
  readonly summary?: string;
}

/** What a download answers: bytes with a media type, for a client to save or show. */
export interface DownloadHead {
  readonly contentType: string;
  /** Bytes in the body, when known up front (sent as Content-Length). */
  readonly size?: number;
  /** Offered to the client in Content-Disposition (made safe by the edge). */
  readonly fileName?: string;
  readonly disposition: 'attachment' | 'inline';
}
export interface Download extends DownloadHead {
  readonly body: AsyncIterable<Uint8Array>;
}

/** An operation answering bytes (file contents, screenshots) rather than JSON. */
export interface DownloadOperation<I extends AnySchema = AnySchema> {
  readonly kind: 'download';
  readonly input: I;
  readonly idempotent: boolean;
  /** The deadline for the answer's head; the body then streams at the reader's pace. */
  readonly timeoutMs: number;
  /** Documentation only: the media types it may answer. */
  readonly mediaTypes?: readonly string[];
  readonly summary?: string;
}

export type Operation = UnaryOperation | StreamOperation | UploadOperation | DownloadOperation;
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

export function uploadOperation<I extends AnySchema, O extends AnySchema>(def: {
  input: I;
  output: O;
  bodyTypes: readonly string[];
  form?: AnySchema;
  timeoutMs?: number;
  summary?: string;
}): UploadOperation<I, O> {
  return {
    kind: 'upload',
    input: def.input,
    output: def.output,
    idempotent: false,
    timeoutMs: def.timeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS,
    bodyTypes: def.bodyTypes,
    ...(def.form ? { form: def.form } : {}),
    ...(def.summary ? { summary: def.summary } : {}),
  };
}

export function downloadOperation<I extends AnySchema>(def: {
  input: I;
  idempotent?: boolean;
  timeoutMs?: number;
  mediaTypes?: readonly string[];
  summary?: string;
}): DownloadOperation<I> {
  return {
    kind: 'download',
    input: def.input,
    idempotent: def.idempotent ?? true,
    timeoutMs: def.timeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS,
    ...(def.mediaTypes ? { mediaTypes: def.mediaTypes } : {}),
    ...(def.summary ? { summary: def.summary } : {}),
  };
}

/**
 * Who hears an event among the running instances of a subscribing module. `one-instance` (the default):
 * one of them, as for work to be done once (index a document). `every-instance`: each live instance,
 * as for news every copy must act on (settings changed); an instance that was not running gets nothing
 * to catch up on, so such an event suits state an instance also reads when it starts.
 */
export type EventDelivery = 'one-instance' | 'every-instance';

export interface EventDef<P extends AnySchema = AnySchema> {
  readonly version: number;
  readonly payload: P;
  readonly summary?: string;
  readonly delivery: EventDelivery;
}
export type Events = Record<string, EventDef>;

export function event<P extends AnySchema>(def: { version?: number; payload: P; summary?: string; delivery?: EventDelivery }): EventDef<P> {
  return { version: def.version ?? 1, payload: def.payload, ...(def.summary ? { summary: def.summary } : {}), delivery: def.delivery ?? 'one-instance' };
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
  /**
   * A stream operation whose chunks are `{event, data}`: when the request sends `Accept:
   * text/event-stream`, the gateway calls it with the same input instead and writes each chunk as a
   * server-sent event (`event:` the name, `data:` the JSON payload), e.g. a chat turn as it happens.
   */
  readonly sse?: OpName;
}

/** What a socket command learns about the socket it came from. */
export interface SocketInfo {
  readonly socketId: string;
}

/**
 * A socket.io command (client → server, with an acknowledgement) that calls an operation as the socket's
 * user. The gateway acks `{ok: true, data}` or `{ok: false, error: {code, message}}`. After a success,
 * `join`/`leave` name a room the socket enters or leaves (e.g. `chat:<id>` after `getChat` proved the
 * caller may see that chat): rooms are only ever entered through an operation that checked access.
 */
export interface SocketCommandDef<OpName extends string = string> {
  readonly event: string;
  readonly operation: OpName;
  readonly auth: 'user' | 'admin';
  /** Builds the operation's input from the payload; default: the payload itself. */
  readonly input?: (payload: unknown, socket: SocketInfo) => unknown;
  readonly join?: (input: unknown, result: unknown) => string;
  readonly leave?: (input: unknown, result: unknown) => string;
  /** Its rate-limit class; default: the class of the REST route calling the same operation, else `default`. */
  readonly rateLimit?: RateLimitClass;
  readonly summary?: string;
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
  /** socket.io commands mounted by the gateway. */
  readonly sockets?: readonly SocketCommandDef<Extract<keyof Ops, string>>[];
  /** A unary operation called with `{socketId}` (as the socket's user) when one of its sockets goes. */
  readonly socketDisconnect?: Extract<keyof Ops, string>;
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
  sockets?: readonly SocketCommandDef<Extract<keyof Ops, string>>[];
  socketDisconnect?: Extract<keyof Ops, string>;
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
    if (r.sse && def.operations[r.sse]?.kind !== 'stream') {
      throw new Error(`${def.id}: route ${r.method} ${r.path} names "${r.sse}" for server-sent events, which is not a stream operation`);
    }
  }
  for (const s of def.sockets ?? []) {
    if (!/^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*$/.test(s.event)) throw new Error(`${def.id}: socket event "${s.event}" must look like "chat:join"`);
    if (def.operations[s.operation]?.kind !== 'unary') {
      throw new Error(`${def.id}: socket event ${s.event} names "${s.operation}", which is not a unary operation`);
    }
  }
  if (def.socketDisconnect !== undefined && def.operations[def.socketDisconnect]?.kind !== 'unary') {
    throw new Error(`${def.id}: socketDisconnect names "${def.socketDisconnect}", which is not a unary operation`);
  }
  return {
    id: def.id,
    summary: def.summary,
    operations: def.operations,
    events: (def.events ?? {}) as Ev,
    routes: def.routes ?? [],
    errors: def.errors ?? [],
    ...(def.settings ? { settings: def.settings } : {}),
    ...(def.sockets?.length ? { sockets: def.sockets } : {}),
    ...(def.socketDisconnect ? { socketDisconnect: def.socketDisconnect } : {}),
    token: Symbol.for(`autobot.port.${def.id}`) as PortToken<PortOf<Ops>>,
  };
}

/** What a caller holds: one async function per operation, plus the module's health probe. */
export type PortOf<Ops extends Operations> = {
  readonly [K in keyof Ops]: Ops[K] extends UnaryOperation<infer I, infer O>
    ? (input: z.input<I>) => Promise<z.output<O>>
    : Ops[K] extends StreamOperation<infer I, infer Ch>
      ? (input: z.input<I>) => AsyncIterable<z.output<Ch>>
      : Ops[K] extends UploadOperation<infer I, infer O>
        ? (input: z.input<I>, body: UploadBody) => Promise<z.output<O>>
        : Ops[K] extends DownloadOperation<infer I>
          ? (input: z.input<I>) => Promise<Download>
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
      : C['operations'][K] extends UploadOperation<infer I, infer O>
        ? (input: z.output<I>, body: UploadBody, call: CallInfo) => Promise<z.input<O>>
        : C['operations'][K] extends DownloadOperation<infer I>
          ? (input: z.output<I>, call: CallInfo) => Promise<Download> | Download
          : (input: any, call: CallInfo) => any;
};

export type EventName<C extends AnyContract> = Extract<keyof C['events'], string>;
export type EventPayload<C extends AnyContract, N extends EventName<C>> = z.output<C['events'][N]['payload']>;
