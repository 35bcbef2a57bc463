import { randomBytes } from 'node:crypto';

let lastMs = 0;
let seq = 0;

/**
 * Time-ordered ids: they sort by creation, which lets lists page by id without a separate order index.
 * A per-process sequence keeps ids made within the same millisecond in creation order too.
 */
export function newId(prefix: string): string {
  const now = Date.now();
  if (now > lastMs) {
    lastMs = now;
    seq = 0;
  } else {
    seq++;
    // The clock stood still (or went back) for 65 536 ids: borrow the next millisecond.
    if (seq > 0xffff) {
      lastMs++;
      seq = 0;
    }
  }
  return `${prefix}_${lastMs.toString(16).padStart(12, '0')}${seq.toString(16).padStart(4, '0')}${randomBytes(6).toString('hex')}`;
}
