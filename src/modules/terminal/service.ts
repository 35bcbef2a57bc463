// The terminal module's operations: classify, apply the approval policy, run, record, audit, push.
// Every operation checks its caller itself: other modules (the chat tool loop) and remote callers
// reach these without the gateway.
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { CallInfo, Handlers, Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext, type Actor } from '../../kernel/context/request-context.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import {
  ModuleEventsToken,
  ModuleJobsToken,
  ModuleLogger,
  ProcessConfigToken,
  RealtimeToken,
  type ModuleEvents,
} from '../../kernel/module/tokens.js';
import type { ModuleJobs } from '../../kernel/jobs/jobs.js';
import type { AppConfig } from '../../kernel/config/app-config.js';
import type { Realtime } from '../../kernel/realtime/realtime.js';
import { settlesWithin } from '../../kernel/time/settles-within.js';
import { configContract } from '../config/contract.js';
import { terminalContract, terminalSettings, type RiskClass } from './contract.js';
import { CommandRefused } from './command-parser.js';
import { atMost, classifyCommand, locateProgram, type Classification } from './risk-rules.js';
import { runPipeline } from './runner.js';
import { Workspaces } from './workspace.js';
import { ExecutionStore, newExecutionId, type StoredExecution } from './execution-store.js';
import { ApprovalStore, commandFingerprint, newApprovalId, type StoredApproval } from './approval-store.js';
import { AuditLog, type AuditRecord } from './audit-log.js';
import { PtySessions } from './pty-sessions.js';

type UserActor = Extract<Actor, { type: 'user' }>;
type Decision = 'allowed' | 'remembered' | 'pending' | 'refused';

export const EXPIRY_QUEUE = 'approval-expiry';
/** Tries of a write that follows an answer (see TerminalService.trail). */
const TRAIL_ATTEMPTS = 4;

function signedIn(): UserActor {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  return actor;
}

const isAdmin = (a: UserActor) => a.roles.includes('admin');

function admin(): UserActor {
  const actor = signedIn();
  if (!isAdmin(actor)) throw new ContractError('forbidden', 'this needs the admin role');
  return actor;
}

function executionView(e: StoredExecution) {
  return {
    id: e.id,
    command: e.command,
    cwd: e.cwd,
    risk: e.risk,
    reason: e.reason,
    status: e.status,
    ...(e.exitCode !== undefined ? { exitCode: e.exitCode } : {}),
    ...(e.signal !== undefined ? { signal: e.signal } : {}),
    ...(e.stdout !== undefined ? { stdout: e.stdout } : {}),
    ...(e.stderr !== undefined ? { stderr: e.stderr } : {}),
    ...(e.truncated !== undefined ? { truncated: e.truncated } : {}),
    ...(e.durationMs !== undefined ? { durationMs: e.durationMs } : {}),
    ...(e.approvalId ? { approvalId: e.approvalId } : {}),
    createdAt: e.createdAt,
    ...(e.finishedAt ? { finishedAt: e.finishedAt } : {}),
  };
}

function approvalView(a: StoredApproval) {
  return {
    id: a.id,
    ownerId: a.ownerId,
    ...(a.ownerName ? { ownerName: a.ownerName } : {}),
    command: a.command,
    risk: a.risk,
    reason: a.reason,
    status: a.status,
    needsAdmin: a.needsAdmin,
    ...(a.executionId ? { executionId: a.executionId } : {}),
    createdAt: a.createdAt,
    expiresAt: a.expiresAt,
    ...(a.decidedBy ? { decidedBy: a.decidedBy } : {}),
    ...(a.decidedAt ? { decidedAt: a.decidedAt } : {}),
    ...(a.remember !== undefined ? { remember: a.remember } : {}),
    ...(a.usedAt ? { usedAt: a.usedAt } : {}),
  };
}

interface Prepared {
  workspace: string;
  cwd: string;
  cwdRel: string;
  classification: Classification;
  fingerprint: string;
}

@injectable()
export class TerminalService implements Handlers<typeof terminalContract> {
  readonly settings: SettingsHolder<typeof terminalSettings>;
  readonly workspaces: Workspaces;
  readonly sessions: PtySessions;
  /** Executions running in this process, so a shutdown can stop them and record it. */
  private readonly running = new Map<string, { abort: AbortController; done: Promise<unknown> }>();
  /** Writes following answers already given (audit lines, events): see trail(). */
  private readonly trailing = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    @inject(ExecutionStore) private readonly executions: ExecutionStore,
    @inject(ApprovalStore) private readonly approvals: ApprovalStore,
    @inject(AuditLog) private readonly audit: AuditLog,
    @inject(ModuleEventsToken) private readonly events: ModuleEvents,
    @inject(ModuleJobsToken) private readonly jobs: ModuleJobs,
    @inject(RealtimeToken) private readonly realtime: Realtime,
    @inject(ModuleLogger) private readonly logger: Logger,
    @inject(ProcessConfigToken) config: AppConfig,
    @inject(configContract.token) configPort: Port<typeof configContract>,
  ) {
    this.settings = new SettingsHolder(terminalSettings, async () => (await configPort.getModuleSettings({ module: terminalContract.id })).settings, logger);
    this.workspaces = new Workspaces(config.AUTOBOT_DATA_DIR);
    this.sessions = new PtySessions(realtime, (s) => {
      void this.record({ kind: 'session', actorId: s.ownerId, ownerId: s.ownerId, command: 'interactive session', decision: `closed (${s.reason})`, exitCode: s.exitCode, sessionId: s.id });
    });
  }

  // ---- classification and policy -------------------------------------------------------------

  private prepare(actor: UserActor, command: string, cwd: string | undefined): Prepared {
    const workspace = this.workspaces.forUser(actor.id);
    const dir = this.workspaces.resolveCwd(workspace, cwd);
    let classification: Classification;
    try {
      classification = classifyCommand(command, { workspace, cwd: dir.abs });
    } catch (err) {
      if (err instanceof CommandRefused) throw new ContractError('invalid_input', `command: ${err.message}`, [{ path: 'command', message: err.message }]);
      throw err;
    }
    return { workspace, cwd: dir.abs, cwdRel: dir.rel, classification, fingerprint: commandFingerprint(classification.pipeline, dir.rel) };
  }

  private async decide(actor: UserActor, risk: RiskClass, fingerprint: string | undefined): Promise<Decision> {
    if (risk === 'forbidden') return 'refused';
    const policy = this.settings.current().policy[isAdmin(actor) ? 'admin' : 'user'];
    if (atMost(risk, policy)) return 'allowed';
    if (fingerprint) {
      const remembered = await this.approvals.remembered(actor.id, fingerprint);
      if (remembered && atMost(risk, remembered)) return 'remembered';
    }
    return 'pending';
  }

  private retentionS(): number {
    return this.settings.current().executionRetentionDays * 86_400;
  }

  /**
   * A write that follows an answer: retried with backoff (0.2, 0.8, 3.2 s) until written, else logged
   * loudly; stop() waits for the ones still going.
   */
  private trail(what: string, write: () => Promise<unknown>): void {
    const job = (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await write();
          return;
        } catch (err) {
          if (attempt >= TRAIL_ATTEMPTS) {
            this.logger.error({ err: (err as Error).message, what }, 'a write after an answer failed for good');
            return;
          }
          await new Promise((r) => setTimeout(r, 50 * 4 ** attempt));
        }
      }
    })();
    this.trailing.add(job);
    void job.finally(() => this.trailing.delete(job));
  }

  private async record(entry: AuditRecord): Promise<void> {
    try {
      await this.audit.append(entry, this.settings.current().auditMaxEntries);
    } catch (err) {
      // The action has happened; a lost audit line is logged loudly rather than undoing it.
      this.logger.error({ err: (err as Error).message, entry }, 'audit entry not written');
    }
  }

  // ---- operations ----------------------------------------------------------------------------

  async classify({ command, cwd }: { command: string; cwd?: string }) {
    const actor = signedIn();
    const p = this.prepare(actor, command, cwd);
    const decision = await this.decide(actor, p.classification.risk, p.fingerprint);
    return { ...p.classification, needsApproval: decision === 'pending' || decision === 'refused' };
  }

  async execute(input: { command: string; cwd?: string; timeoutMs?: number; approvalId?: string }, call: CallInfo) {
    const actor = signedIn();
    const s = this.settings.current();
    const timeoutMs = input.timeoutMs ?? s.defaultTimeoutMs;
    if (timeoutMs > s.maxTimeoutMs) {
      throw new ContractError('invalid_input', `timeoutMs: at most ${s.maxTimeoutMs}`, [{ path: 'timeoutMs', message: `at most ${s.maxTimeoutMs}` }]);
    }
    const p = this.prepare(actor, input.command, input.cwd);
    const { risk, reason } = p.classification;
    const key = currentContext()?.idempotencyKey;
    // A repeated call (a resumed chat tool loop) answers what the first one started, even though the
    // approval it carried is spent by now.
    const bound = key ? await this.executions.boundTo(key) : undefined;
    if (bound) return this.getExecution({ id: bound });
    // An approval given must fit before anything is claimed or recorded.
    const approval = input.approvalId && risk !== 'forbidden' ? await this.checkApproval(actor, input.approvalId, p.fingerprint) : undefined;
    const id = newExecutionId();
    if (key) {
      const existing = await this.executions.claimKey(key, id, this.retentionS());
      if (existing) return this.getExecution({ id: existing });
    }
    const exec: StoredExecution = {
      id,
      ownerId: actor.id,
      command: input.command,
      cwd: p.cwdRel,
      risk,
      reason,
      status: 'running',
      createdAt: new Date().toISOString(),
      pipeline: p.classification.pipeline,
      timeoutMs,
      ...(approval ? { approvalId: approval.id } : {}),
    };

    const missing = p.classification.pipeline.map((argv) => argv[0]!).find((program) => !locateProgram(program, p.cwd));
    if (missing) {
      const note = /^(cd|export|alias|source|set|unset|ulimit|umask)$/.test(missing)
        ? ' (a shell builtin: commands run without a shell; use the cwd field to choose the directory)'
        : '';
      return this.finishWithout(exec, 'failed', `${missing}: command not found${note}\n`, actor.id, 'not_run');
    }

    let decision: Decision;
    if (input.approvalId) {
      decision = risk === 'forbidden' ? 'refused' : 'allowed';
      if (approval && !(await this.approvals.markUsed(approval.id))) {
        if (key) await this.executions.releaseKey(key, id);
        throw new ContractError('conflict', 'the approval has been used already');
      }
    } else {
      decision = await this.decide(actor, risk, p.fingerprint);
    }
    const approver = approval ? (approval.decidedBy ?? approval.ownerId) : undefined;

    if (decision === 'refused') return this.finishWithout(exec, 'denied', undefined, actor.id, 'refused');
    if (decision === 'pending') return this.hold(actor, exec, p);
    const done = await this.run(exec, p.workspace, p.cwd, { actorId: actor.id, decision: approver ? 'approved' : decision, approver }, {
      signal: call.signal,
      // Only a caller holding the id before the end (a retried idempotency key) can ask while it runs.
      recordRunning: key !== undefined,
    });
    return executionView(done);
  }

  /** An execution that ends without running: refused (forbidden) or a program that does not exist. */
  private async finishWithout(exec: StoredExecution, status: 'failed' | 'denied', stderr: string | undefined, actorId: string, decision: string) {
    const done: StoredExecution = {
      ...exec,
      status,
      ...(stderr !== undefined ? { exitCode: 127, stderr, stdout: '' } : {}),
      finishedAt: new Date().toISOString(),
    };
    await this.executions.save(done, this.retentionS());
    await this.record({ kind: 'execution', actorId, ownerId: exec.ownerId, command: exec.command, risk: exec.risk, decision, status, ...(stderr !== undefined ? { exitCode: 127 } : {}), executionId: exec.id });
    return executionView(done);
  }

  /** Above the policy: the execution waits for a decision, its owner is asked on their sockets. */
  private async hold(actor: UserActor, exec: StoredExecution, p: Prepared) {
    const approval = await this.createApproval(actor, {
      command: exec.command,
      pipeline: p.classification.pipeline,
      cwd: p.cwdRel,
      risk: exec.risk,
      reason: exec.reason,
      executionId: exec.id,
    });
    const held: StoredExecution = { ...exec, status: 'pending_approval', approvalId: approval.id };
    await this.executions.save(held, this.retentionS());
    await this.record({
      kind: 'execution',
      actorId: actor.id,
      ownerId: actor.id,
      command: exec.command,
      risk: exec.risk,
      decision: 'pending_approval',
      status: 'pending_approval',
      executionId: exec.id,
      approvalId: approval.id,
    });
    return executionView(held);
  }

  private async createApproval(
    actor: UserActor,
    what: { command: string; pipeline?: string[][]; cwd?: string; risk: RiskClass; reason: string; executionId?: string },
    id = newApprovalId(),
  ): Promise<StoredApproval> {
    const now = Date.now();
    const ttlS = this.settings.current().approvalTtlS;
    const approval = await this.approvals.create(
      {
        id,
        ownerId: actor.id,
        ...(actor.username ? { ownerName: actor.username } : {}),
        command: what.command,
        ...(what.pipeline ? { pipeline: what.pipeline } : {}),
        ...(what.cwd ? { cwd: what.cwd } : {}),
        risk: what.risk,
        reason: what.reason,
        // An admin's own critical command is decided by that admin; anyone else's by an admin.
        needsAdmin: what.risk === 'critical',
        ...(what.executionId ? { executionId: what.executionId } : {}),
        createdAt: new Date(now).toISOString(),
        expiresAt: new Date(now + ttlS * 1000).toISOString(),
      },
      this.retentionS(),
    );
    await this.jobs.queue(EXPIRY_QUEUE).add('expire', { approvalId: approval.id }, { jobId: approval.id, delay: ttlS * 1000 });
    const announced = {
      approvalId: approval.id,
      command: approval.command,
      risk: approval.risk,
      reason: approval.reason,
      needsAdmin: approval.needsAdmin,
      expiresAt: approval.expiresAt,
      ...(approval.executionId ? { executionId: approval.executionId } : {}),
    };
    this.realtime.toUser(actor.id, 'approval:requested', announced);
    // Only an admin can give it: every admin's open tab hears of it (the owner's name says whose it is);
    // an admin asking for their own needs no second copy.
    if (approval.needsAdmin && !actor.roles.includes('admin')) {
      this.realtime.toRole('admin', 'approval:requested', { ...announced, ownerId: approval.ownerId, ...(approval.ownerName ? { ownerName: approval.ownerName } : {}) });
    }
    return approval;
  }

  /** Checks that an approval lets the caller run this command now (spending it is the caller's next step). */
  private async checkApproval(actor: UserActor, approvalId: string, fingerprint: string): Promise<StoredApproval> {
    const a = await this.visibleApproval(actor, approvalId, true);
    if (a.status !== 'approved') throw new ContractError('conflict', `the approval is ${a.status}`);
    if (a.executionId) throw new ContractError('conflict', 'this approval belongs to a held execution, which runs on its own once approved');
    if (!a.pipeline || commandFingerprint(a.pipeline, a.cwd ?? '.') !== fingerprint) {
      throw new ContractError('conflict', 'the approval was given for another command (or another working directory)');
    }
    if (a.usedAt) throw new ContractError('conflict', 'the approval has been used already');
    return a;
  }

  /** Runs a stored execution to its end, records the result, audits it and tells its owner. */
  private async run(
    exec: StoredExecution,
    workspace: string,
    cwd: string,
    who: { actorId: string; decision: string; approver: string | undefined },
    opts: { signal?: AbortSignal; recordRunning: boolean },
  ): Promise<StoredExecution> {
    const { signal } = opts;
    const abort = new AbortController();
    const onCallerGone = () => abort.abort();
    signal?.addEventListener('abort', onCallerGone, { once: true });
    const running: StoredExecution = { ...exec, status: 'running', staleAfter: Date.now() + exec.timeoutMs + 60_000 };
    const work = (async () => {
      // Recorded before it runs whenever someone may read it meanwhile (a held execution's owner, a
      // retried idempotency key); a plain call learns the id only with the result.
      if (opts.recordRunning) await this.executions.save(running, this.retentionS());
      const r = await runPipeline({
        pipeline: exec.pipeline,
        cwd,
        workspace,
        timeoutMs: exec.timeoutMs,
        maxOutputBytes: this.settings.current().maxOutputBytes,
        signal: abort.signal,
      });
      const interrupted = this.stopping && r.timedOut;
      const done: StoredExecution = {
        ...exec,
        status: interrupted ? 'failed' : r.timedOut ? 'timed_out' : r.exitCode === 0 ? 'completed' : 'failed',
        exitCode: r.exitCode,
        signal: r.signal,
        stdout: r.stdout,
        stderr: interrupted ? `${r.stderr}\n[interrupted: AutoBot stopped]\n` : r.stderr,
        truncated: r.truncated,
        durationMs: r.durationMs,
        finishedAt: new Date().toISOString(),
      };
      // The answer waits for the record only (a GET of the execution right after must find it). Its audit
      // line and the event follow off the critical path, durably: sent in the same tick (the audit line
      // rides the record's pipeline), retried until written, and awaited by stop().
      const saved = this.executions.save(done, this.retentionS());
      this.trail(`audit of ${exec.id}`, () =>
        this.audit.append({
          kind: 'execution',
          actorId: who.actorId,
          ownerId: exec.ownerId,
          command: exec.command,
          risk: exec.risk,
          decision: who.decision,
          ...(who.approver ? { approver: who.approver } : {}),
          status: done.status,
          exitCode: r.exitCode,
          durationMs: r.durationMs,
          executionId: exec.id,
          ...(exec.approvalId ? { approvalId: exec.approvalId } : {}),
        }, this.settings.current().auditMaxEntries),
      );
      this.trail(`finished event of ${exec.id}`, () => this.finished(done));
      await saved;
      return done;
    })();
    this.running.set(exec.id, { abort, done: work.catch(() => undefined) });
    try {
      return await work;
    } finally {
      this.running.delete(exec.id);
      signal?.removeEventListener('abort', onCallerGone);
    }
  }

  private async finished(e: StoredExecution): Promise<void> {
    // Only executions that waited for a decision are pushed: the caller of any other one has the answer.
    if (e.approvalId) this.realtime.toUser(e.ownerId, 'terminal:execution', { execution: executionView(e) });
    await this.events.publish('terminal.execution.finished', { executionId: e.id, ownerId: e.ownerId, status: e.status, exitCode: e.exitCode ?? null });
  }

  async getExecution({ id }: { id: string }) {
    const actor = signedIn();
    let e = await this.executions.get(id);
    if (!e || e.ownerId !== actor.id) throw new ContractError('not_found', 'no such execution');
    if (e.status === 'running' && e.staleAfter !== undefined && e.staleAfter < Date.now() && !this.running.has(e.id)) {
      // Its process died before recording an end.
      e = { ...e, status: 'failed', stderr: `${e.stderr ?? ''}[interrupted: the process running it stopped]\n`, finishedAt: new Date().toISOString() };
      await this.executions.save(e, this.retentionS());
    }
    if (e.status === 'pending_approval' && e.approvalId) {
      const a = await this.approvals.get(e.approvalId);
      if (a && a.status === 'pending' && Date.parse(a.expiresAt) <= Date.now()) {
        await this.expire(a.id);
        e = (await this.executions.get(id)) ?? e;
      }
    }
    return executionView(e);
  }

  // ---- workspace files -----------------------------------------------------------------------

  async readWorkspaceFile({ path: file, maxBytes }: { path: string; maxBytes?: number }) {
    const actor = signedIn();
    const workspace = this.workspaces.forUser(actor.id);
    const target = this.workspaces.resolveFile(workspace, file);
    const cap = Math.min(maxBytes ?? Number.MAX_SAFE_INTEGER, this.settings.current().maxOutputBytes);
    // O_NOFOLLOW: the checked real path cannot have become a symlink in between.
    const fh = await open(target.abs, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    let size: number;
    let buf: Buffer;
    try {
      size = (await fh.stat()).size;
      buf = Buffer.alloc(Math.min(cap, size));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      buf = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
    const binary = buf.includes(0);
    await this.record({ kind: 'execution', actorId: actor.id, ownerId: actor.id, command: `read file ${target.rel}`, risk: 'safe', decision: 'allowed', status: 'completed' });
    return { path: target.rel, size, content: binary ? '' : buf.toString('utf8'), truncated: size > buf.length, binary };
  }

  // ---- approvals -----------------------------------------------------------------------------

  /**
   * An approval the caller may see: their own, or as an admin one that waits for an admin. Anything
   * else is not found. A pending approval past its deadline is expired on the way.
   */
  private async visibleApproval(actor: UserActor, id: string, ownOnly = false): Promise<StoredApproval> {
    let a = await this.approvals.get(id);
    const visible = a && (a.ownerId === actor.id || (!ownOnly && isAdmin(actor) && a.needsAdmin));
    if (!a || !visible) throw new ContractError('not_found', 'no such approval');
    if (a.status === 'pending' && Date.parse(a.expiresAt) <= Date.now()) {
      await this.expire(a.id);
      a = (await this.approvals.get(id)) ?? a;
    }
    return a;
  }

  async getApproval({ id }: { id: string }) {
    return approvalView(await this.visibleApproval(signedIn(), id));
  }

  async listApprovals() {
    const actor = signedIn();
    const ids = await this.approvals.pendingIds(actor.id, isAdmin(actor));
    const items: StoredApproval[] = [];
    for (const id of ids) {
      const a = await this.approvals.get(id);
      if (!a) continue;
      if (a.status === 'pending' && Date.parse(a.expiresAt) <= Date.now()) {
        await this.expire(a.id);
        continue;
      }
      if (a.status === 'pending') items.push(a);
    }
    items.sort((x, y) => x.createdAt.localeCompare(y.createdAt));
    return { items: items.map(approvalView) };
  }

  async requestApproval(input: { command?: string; cwd?: string; action?: string; risk?: RiskClass; reason?: string }) {
    const actor = signedIn();
    let what: { command: string; pipeline?: string[][]; cwd?: string; risk: RiskClass; reason: string };
    let fingerprint: string | undefined;
    if (input.command !== undefined) {
      const p = this.prepare(actor, input.command, input.cwd);
      what = { command: input.command, pipeline: p.classification.pipeline, cwd: p.cwdRel, risk: p.classification.risk, reason: p.classification.reason };
      fingerprint = p.fingerprint;
    } else {
      what = { command: input.action!, risk: input.risk!, reason: input.reason! };
    }
    const key = currentContext()?.idempotencyKey;
    const keyed = async (approvalId: string) => {
      const a = await this.visibleApproval(actor, approvalId, true);
      const decision = a.status === 'approved' ? 'allowed' : a.status === 'pending' ? 'pending' : 'refused';
      return { decision, risk: a.risk, reason: a.status === 'pending' || a.status === 'approved' ? a.reason : `the approval was ${a.status}`, approvalId: a.id, expiresAt: a.expiresAt } as const;
    };
    const bound = key ? await this.approvals.boundTo(key) : undefined;
    if (bound) return keyed(bound);
    const decision = await this.decide(actor, what.risk, fingerprint);
    if (decision === 'refused') {
      await this.record({ kind: 'decision', actorId: actor.id, ownerId: actor.id, command: what.command, risk: what.risk, decision: 'refused' });
      return { decision: 'refused', risk: what.risk, reason: what.reason } as const;
    }
    // Nothing is bound to the key unless an approval is created: a repeated call decides again.
    if (decision === 'allowed' || decision === 'remembered') return { decision: 'allowed', risk: what.risk, reason: what.reason } as const;
    const id = newApprovalId();
    if (key) {
      const existing = await this.approvals.claimKey(key, id, this.retentionS());
      if (existing) return keyed(existing);
    }
    const approval = await this.createApproval(actor, what, id);
    await this.record({ kind: 'decision', actorId: actor.id, ownerId: actor.id, command: what.command, risk: what.risk, decision: 'approval_requested', approvalId: approval.id });
    return { decision: 'pending', risk: approval.risk, reason: approval.reason, approvalId: approval.id, expiresAt: approval.expiresAt } as const;
  }

  async decideApproval({ approvalId, approve, remember }: { approvalId: string; approve: boolean; remember?: boolean }) {
    const actor = signedIn();
    const a = await this.visibleApproval(actor, approvalId);
    // The owner may withdraw (deny) their own critical request, only an admin may approve it.
    if (a.needsAdmin && approve && !isAdmin(actor)) throw new ContractError('forbidden', `this approval needs an admin: the command is ${a.risk}`);
    if (a.status !== 'pending') throw new ContractError('conflict', `the approval is already ${a.status}`);
    const outcome = await this.approvals.decide(a, approve ? 'approved' : 'denied', actor.id, approve && remember === true);
    if (!outcome) throw new ContractError('not_found', 'no such approval');
    if (!outcome.changed || outcome.status === 'expired') {
      if (outcome.changed) await this.afterExpiry(a);
      throw new ContractError('conflict', `the approval is already ${outcome.status}`);
    }
    const decided = (await this.approvals.get(a.id))!;
    if (decided.status === 'approved' && decided.remember && decided.pipeline) {
      await this.approvals.remember(a.ownerId, commandFingerprint(decided.pipeline, decided.cwd ?? '.'), a.risk);
    }
    await this.record({
      kind: 'decision',
      actorId: actor.id,
      ownerId: a.ownerId,
      command: a.command,
      risk: a.risk,
      decision: decided.status === 'approved' ? (decided.remember ? 'approved (remembered)' : 'approved') : 'denied',
      approver: actor.id,
      approvalId: a.id,
      ...(a.executionId ? { executionId: a.executionId } : {}),
    });
    await this.resolved(decided);
    const execution = a.executionId ? await this.settleHeld(decided) : undefined;
    return { approval: approvalView(decided), ...(execution ? { execution: executionView(execution) } : {}) };
  }

  /** Tells the owner and the other modules (a parked chat tool loop) how an approval ended. */
  private async resolved(a: StoredApproval): Promise<void> {
    this.realtime.toUser(a.ownerId, 'approval:resolved', { approvalId: a.id, status: a.status, ...(a.decidedBy ? { decidedBy: a.decidedBy } : {}) });
    await this.events.publish('terminal.approval.decided', {
      approvalId: a.id,
      ownerId: a.ownerId,
      status: a.status,
      decidedBy: a.decidedBy ?? null,
      executionId: a.executionId ?? null,
    });
  }

  /** After the decision on a held execution: approved runs it (in the background), anything else denies it. */
  private async settleHeld(a: StoredApproval): Promise<StoredExecution | undefined> {
    const exec = await this.executions.get(a.executionId!);
    if (!exec || exec.status !== 'pending_approval') return exec;
    if (a.status !== 'approved') {
      const denied: StoredExecution = { ...exec, status: 'denied', reason: a.status === 'expired' ? `${exec.reason} (the approval expired)` : `${exec.reason} (denied)`, finishedAt: new Date().toISOString() };
      await this.executions.save(denied, this.retentionS());
      await this.finished(denied);
      return denied;
    }
    if (!(await this.approvals.markUsed(a.id))) return exec;
    const workspace = this.workspaces.forUser(exec.ownerId);
    let cwd: string;
    try {
      cwd = this.workspaces.resolveCwd(workspace, exec.cwd).abs;
    } catch (err) {
      const failed: StoredExecution = { ...exec, status: 'failed', stderr: `${(err as Error).message}\n`, finishedAt: new Date().toISOString() };
      await this.executions.save(failed, this.retentionS());
      await this.finished(failed);
      return failed;
    }
    const running: StoredExecution = { ...exec, status: 'running' };
    void this.run(exec, workspace, cwd, { actorId: a.decidedBy ?? exec.ownerId, decision: 'approved', approver: a.decidedBy }, { recordRunning: true }).catch((err: unknown) => {
      this.logger.error({ err, executionId: exec.id }, 'approved execution failed to run');
    });
    return running;
  }

  /** Expires an approval whose deadline passed (the delayed job, or a read that finds it late). */
  async expire(approvalId: string): Promise<void> {
    const a = await this.approvals.get(approvalId);
    if (!a || a.status !== 'pending') return;
    const outcome = await this.approvals.decide(a, 'expired', 'system', false);
    if (outcome?.changed && outcome.status === 'expired') await this.afterExpiry(a);
  }

  private async afterExpiry(a: StoredApproval): Promise<void> {
    const expired: StoredApproval = { ...a, status: 'expired' };
    await this.record({
      kind: 'decision',
      actorId: 'system',
      ownerId: a.ownerId,
      command: a.command,
      risk: a.risk,
      decision: 'expired',
      approvalId: a.id,
      ...(a.executionId ? { executionId: a.executionId } : {}),
    });
    await this.resolved(expired);
    if (a.executionId) await this.settleHeld(expired);
  }

  // ---- audit ---------------------------------------------------------------------------------

  async listAudit({ limit, cursor }: { limit: number; cursor?: string }) {
    admin();
    return this.audit.page(limit, cursor);
  }

  // ---- interactive sessions ------------------------------------------------------------------

  async openSession(input: { cols: number; rows: number; cwd?: string; socketId?: string }) {
    const actor = admin();
    const s = this.settings.current();
    const workspace = this.workspaces.forUser(actor.id);
    const dir = this.workspaces.resolveCwd(workspace, input.cwd);
    const session = this.sessions.open({
      ownerId: actor.id,
      authSessionId: actor.sessionId,
      socketId: input.socketId,
      workspace,
      cwd: dir.abs,
      cwdRel: dir.rel,
      cols: input.cols,
      rows: input.rows,
      shell: s.sessionShell,
      idleS: s.sessionIdleS,
      maxPerUser: s.maxSessionsPerUser,
    });
    await this.record({ kind: 'session', actorId: actor.id, ownerId: actor.id, command: `interactive session (${session.shell})`, decision: 'opened', sessionId: session.id });
    return session;
  }

  async closeSession({ id }: { id: string }) {
    this.sessions.closeOwned(admin().id, id);
    return null;
  }

  async sessionInput({ sessionId, data, socketId }: { sessionId: string; data: string; socketId?: string }) {
    this.sessions.input(admin().id, sessionId, data, socketId);
    return null;
  }

  async sessionResize({ sessionId, cols, rows, socketId }: { sessionId: string; cols: number; rows: number; socketId?: string }) {
    this.sessions.resize(admin().id, sessionId, cols, rows, socketId);
    return null;
  }

  async socketClosed({ socketId }: { socketId: string }) {
    const actor = currentContext()?.actor;
    if (!actor) throw new ContractError('unauthenticated', 'sign in first');
    return { closed: this.sessions.closeForSocket(socketId, actor.type === 'user' ? actor.id : undefined) };
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  async stop(deadlineMs: number): Promise<void> {
    this.stopping = true;
    await this.sessions.closeAll();
    for (const r of this.running.values()) r.abort.abort();
    const until = Date.now() + deadlineMs;
    await settlesWithin(Promise.all([...this.running.values()].map((r) => r.done)), deadlineMs);
    await settlesWithin(Promise.all([...this.trailing]), until - Date.now());
  }
}
