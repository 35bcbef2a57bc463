// The RPC wire format shared by the HTTP binding (client) and the RPC server.
// POST /rpc/<module>/<operation>  body {"input": …}
//   unary  → 200 {"result": …} | <status> {"error": {code, message, details}}
//   stream → 200 application/x-ndjson: {"chunk": …}\n … then {"end": true} or {"error": {…}}
// The request context travels in headers.
import { createHash, timingSafeEqual } from 'node:crypto';
import { actorSchema, type Actor, type RequestContext } from '../context/request-context.js';

export const RPC_PREFIX = '/rpc';
export const HEALTH_OPERATION = '$health';

export const headers = {
  requestId: 'x-request-id',
  actor: 'x-autobot-actor',
  deadline: 'x-autobot-deadline',
  idempotencyKey: 'x-autobot-idempotency-key',
  clientAddress: 'x-autobot-client-address',
} as const;

export function encodeActor(actor: Actor): string {
  return Buffer.from(JSON.stringify(actor)).toString('base64url');
}

export function decodeActor(value: string | undefined): Actor | undefined {
  if (!value) return undefined;
  try {
    const parsed = actorSchema.safeParse(JSON.parse(Buffer.from(value, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function contextHeaders(ctx: RequestContext | undefined, deadline: number): Record<string, string> {
  const h: Record<string, string> = { [headers.deadline]: String(deadline) };
  if (ctx?.requestId) h[headers.requestId] = ctx.requestId;
  if (ctx?.actor) h[headers.actor] = encodeActor(ctx.actor);
  if (ctx?.idempotencyKey) h[headers.idempotencyKey] = ctx.idempotencyKey;
  if (ctx?.clientAddress) h[headers.clientAddress] = ctx.clientAddress;
  return h;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison of a presented bearer credential with the expected secret. */
export function bearerMatches(authorization: string | undefined, secret: string): boolean {
  if (!authorization?.startsWith('Bearer ')) return false;
  return timingSafeEqual(digest(authorization.slice(7)), digest(secret));
}
