import type { z } from 'zod';
import { ContractError } from './errors.js';

export interface FieldIssue {
  path: string;
  message: string;
}

export function issuesOf(error: z.ZodError, prefix?: string): FieldIssue[] {
  return error.issues.map((i) => ({
    path: [prefix, ...i.path.map(String)].filter((p) => p !== undefined && p !== '').join('.'),
    message: i.message,
  }));
}

/** Parses or throws `invalid_input` whose message and details name the failing fields. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, prefix?: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const details = issuesOf(r.error, prefix);
  const summary = details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ');
  throw new ContractError('invalid_input', `Invalid input: ${summary}`, details);
}
