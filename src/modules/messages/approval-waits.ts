// A tool call waiting for a person's decision. The loop parks on the approval (terminal's record in
// Redis); `terminal.approval.decided`, heard by every instance of messages, wakes it at once, and a slow
// poll of the record covers anything missed (an event delivered while this process was starting, an
// expiry nobody announced). Expired approvals count as denied; a Stop withdraws the request.
import { inject, injectable } from 'tsyringe';
import type { Port } from '../../kernel/contract/define.js';
import { terminalContract } from '../terminal/contract.js';

/** The fallback poll: the event is the fast path. */
const POLL_MS = 3000;

export type ApprovalEnd = 'approved' | 'denied' | 'expired';

@injectable()
export class ApprovalWaits {
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(@inject(terminalContract.token) private readonly terminal: Port<typeof terminalContract>) {}

  /** Called for every `terminal.approval.decided`: wakes the loops waiting for it here, if any. */
  decided(approvalId: string): void {
    for (const wake of this.waiters.get(approvalId) ?? []) wake();
  }

  /** Resolves with how the approval ended; rejects with the signal's reason when it aborts first. */
  async wait(approvalId: string, signal: AbortSignal): Promise<ApprovalEnd> {
    let wake: (() => void) | undefined;
    // A decision heard while the record was being read is not lost: the next read follows at once.
    let woken = false;
    let set = this.waiters.get(approvalId);
    if (!set) this.waiters.set(approvalId, (set = new Set()));
    const onWake = () => {
      woken = true;
      wake?.();
    };
    set.add(onWake);
    try {
      for (;;) {
        if (signal.aborted) throw signal.reason;
        // Reading it also expires it once its deadline has passed.
        const a = await this.terminal.getApproval({ id: approvalId });
        if (a.status !== 'pending') return a.status;
        const untilExpiry = Date.parse(a.expiresAt) - Date.now() + 50;
        if (woken) {
          woken = false;
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.max(50, Math.min(POLL_MS, untilExpiry)));
          function done() {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            wake = undefined;
            woken = false;
            resolve();
          }
          wake = done;
          signal.addEventListener('abort', done, { once: true });
        });
      }
    } finally {
      set.delete(onWake);
      if (set.size === 0 && this.waiters.get(approvalId) === set) this.waiters.delete(approvalId);
    }
  }
}
