// The context that crosses every call: request id, actor and deadline travel with the async flow,
// through the local binding unchanged and through the HTTP binding as headers.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';

export const actorSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('user'),
    id: z.string().min(1),
    username: z.string().optional(),
    roles: z.array(z.string()),
    sessionId: z.string().optional(),
    /** Set when the credential was an API key rather than a session's access token. */
    apiKeyId: z.string().optional(),
  }),
  z.object({ type: z.literal('service'), name: z.string().min(1) }),
]);
export type Actor = z.infer<typeof actorSchema>;

export interface RequestContext {
  readonly requestId: string;
  readonly actor?: Actor;
  /** Epoch milliseconds after which nobody waits for the answer. */
  readonly deadline?: number;
  /** Set by the saga orchestrator: `<sagaId>:<step>`; operations with effects use it to apply them once. */
  readonly idempotencyKey?: string;
  /** The end user's network address as the gateway saw it (after trusted proxies), for abuse limits. */
  readonly clientAddress?: string;
  /**
   * Aborted when nobody waits for the answer any more: the caller stopped a stream, its connection
   * closed, or its own signal aborted. Bindings link it to each handler's `call.signal`, so a stop
   * travels down every call made on the caller's behalf, across processes too.
   */
  readonly signal?: AbortSignal;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function currentContext(): RequestContext | undefined {
  return storage.getStore();
}

export function runWithContext<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** Runs `fn` in the current context with some fields replaced (a new one when there is none). */
export function withContext<T>(patch: Partial<RequestContext>, fn: () => T): T {
  const base = storage.getStore();
  return storage.run({ requestId: base?.requestId ?? newRequestId(), ...base, ...patch }, fn);
}

export function newRequestId(): string {
  return randomUUID();
}

/** The tighter of the context's deadline and `now + timeoutMs`. */
export function effectiveDeadline(timeoutMs: number, now = Date.now()): number {
  const own = now + timeoutMs;
  const inherited = storage.getStore()?.deadline;
  return inherited !== undefined && inherited < own ? inherited : own;
}
