import { randomBytes } from 'node:crypto';

/** Time-ordered ids: they sort by creation, which pages lists without a separate index order. */
export function newId(prefix: string): string {
  return `${prefix}_${Date.now().toString(16).padStart(12, '0')}${randomBytes(8).toString('hex')}`;
}
