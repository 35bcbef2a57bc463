// The event envelope: what a publisher writes to a stream and what every subscriber's handler gets.
// It is read back from Redis, possibly written by another process or an older version of the program,
// so it is parsed with a schema rather than trusted.
import { z } from 'zod';
import { actorSchema, type Actor } from '../context/request-context.js';

export interface EventEnvelope<P = unknown> {
  /** Unique per publish; a handler seeing the same id twice is seeing a redelivery. */
  id: string;
  /** `<module>.<entity>.<past-tense>`, for example `documents.document.ingested`. */
  type: string;
  /** Version of the payload's shape, so subscribers can tell old events from new ones. */
  version: number;
  /** ISO-8601 time of publishing. */
  occurredAt: string;
  /** The publishing module. */
  source: string;
  requestId?: string;
  actor?: Actor;
  payload: P;
}

export type EventHandler = (event: EventEnvelope) => Promise<void> | void;

/** Event types become stream key names: keep them to a safe alphabet. */
export const EVENT_TYPE_PATTERN = /^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)+$/i;

const envelopeSchema = z.object({
  id: z.string().min(1),
  type: z.string().regex(EVENT_TYPE_PATTERN),
  version: z.number().int().positive(),
  occurredAt: z.string(),
  source: z.string().min(1),
  requestId: z.string().optional(),
  actor: actorSchema.optional(),
  payload: z.unknown(),
});

export function encodeEnvelope(envelope: EventEnvelope): string {
  return JSON.stringify(envelope);
}

/** Throws with a readable message when the stored entry is not an envelope. */
export function decodeEnvelope(raw: string): EventEnvelope {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new Error('malformed event entry: not JSON');
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`malformed event entry: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`);
  }
  return parsed.data as EventEnvelope;
}

export function assertEventType(type: string): void {
  if (!EVENT_TYPE_PATTERN.test(type)) {
    throw new Error(`invalid event type "${type}": expected <module>.<entity>.<past-tense> (letters, digits, "-", "_")`);
  }
}
