import { defineModule } from '../../kernel/module/define-module.js';
import { ModuleEventsToken, ModuleJobsToken } from '../../kernel/module/tokens.js';
import { configContract } from '../config/contract.js';
import { ApprovalStore } from './approval-store.js';
import { AuditLog } from './audit-log.js';
import { terminalContract } from './contract.js';
import { ExecutionStore } from './execution-store.js';
import { EXPIRY_QUEUE, TerminalService } from './service.js';

export const terminalModule = defineModule({
  contract: terminalContract,
  dependencies: [configContract],
  // auth.session.revoked: a logout closes the interactive sessions its sign-in opened.
  subscribes: ['config.settings.changed', 'auth.session.revoked'],
  redisDb: 9,
  register(c) {
    c.registerSingleton(ExecutionStore);
    c.registerSingleton(ApprovalStore);
    c.registerSingleton(AuditLog);
    c.registerSingleton(TerminalService);
  },
  implementation: TerminalService,
  async start(c) {
    const service = c.resolve(TerminalService);
    await service.settings.reload();
    // Undecided approvals expire at their deadline even when nobody looks at them (reads also expire late ones).
    c.resolve(ModuleJobsToken).worker<{ approvalId: string }>(EXPIRY_QUEUE, async (job) => service.expire(job.data.approvalId), { concurrency: 4 });
    await c.resolve(ModuleEventsToken).subscribe({
      'config.settings.changed': async (event) => {
        const { namespaces } = event.payload as { namespaces: string[] };
        if (namespaces.includes(terminalContract.id)) await service.settings.reload();
      },
      'auth.session.revoked': (event) => {
        const { userId, sessionId, reason } = event.payload as { userId: string; sessionId: string | null; reason: string };
        // A logout ends what that sign-in opened; a password change, disabling or deletion ends everything.
        service.sessions.closeForAuthSession(userId, reason === 'logout' || reason === 'reuse' ? sessionId : null);
      },
    });
  },
  async stop(c) {
    await c.resolve(TerminalService).stop(5000);
  },
  health(c) {
    const s = c.resolve(TerminalService);
    return { status: 'ok', detail: `${s.sessions.count()} interactive session(s)` };
  },
});
