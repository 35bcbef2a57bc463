import { randomBytes } from 'node:crypto';

/** Time-ordered ids (creation order sorts), valid as saga ids and message ids. */
export function newId(prefix: string): string {
  return `${prefix}_${Date.now().toString(16).padStart(12, '0')}${randomBytes(8).toString('hex')}`;
}
