// Running commands for users and for the assistant, safely: parsed into argv and run without a shell in a
// per-user workspace, every command classified by risk, anything above the caller's policy held for a
// human's approval (the one approval policy of AutoBot: other modules gate their actions through
// `classify`, `requestApproval`, `getApproval`), an audit trail, and interactive PTY sessions for admins.
import { z } from 'zod';
import { defineContract, event, operation } from '../../kernel/contract/index.js';

export const RISK_CLASSES = ['safe', 'moderate', 'high', 'critical', 'forbidden'] as const;
export const riskClass = z.enum(RISK_CLASSES);
export type RiskClass = z.infer<typeof riskClass>;
/** What a policy may allow without approval: `forbidden` never runs. */
const allowedClass = z.enum(['safe', 'moderate', 'high', 'critical']);

export const COMMAND_MAX = 8192;
export const TIMEOUT_MAX_MS = 600_000;

const command = z
  .string()
  .max(COMMAND_MAX)
  .refine((s) => s.trim().length > 0, 'the command is empty')
  .refine((s) => !s.includes('\0'), 'a command cannot hold a NUL character');
const cwd = z.string().min(1).max(1024).refine((s) => !s.includes('\0'), 'a path cannot hold a NUL character');
const id = z.string().min(1).max(100);

export const executionStatus = z.enum(['running', 'completed', 'failed', 'timed_out', 'pending_approval', 'denied']);

export const executionView = z.object({
  id: z.string(),
  command: z.string(),
  /** The working directory, relative to the caller's workspace ('.' is its root). */
  cwd: z.string(),
  risk: riskClass,
  reason: z.string(),
  status: executionStatus,
  exitCode: z.number().int().nullable().optional(),
  signal: z.string().nullable().optional(),
  stdout: z.string().optional(),
  stderr: z.string().optional(),
  truncated: z.boolean().optional(),
  durationMs: z.number().int().optional(),
  approvalId: z.string().optional(),
  createdAt: z.string(),
  finishedAt: z.string().optional(),
});

export const approvalStatus = z.enum(['pending', 'approved', 'denied', 'expired']);

export const approvalView = z.object({
  id: z.string(),
  ownerId: z.string(),
  ownerName: z.string().optional(),
  /** The command, or what another module asked approval for (a tool call). */
  command: z.string(),
  risk: riskClass,
  reason: z.string(),
  status: approvalStatus,
  /** Critical actions need an admin's decision, not only their owner's. */
  needsAdmin: z.boolean(),
  executionId: z.string().optional(),
  createdAt: z.string(),
  expiresAt: z.string(),
  decidedBy: z.string().optional(),
  decidedAt: z.string().optional(),
  remember: z.boolean().optional(),
  /** Set when the approval has been used to run its command (once). */
  usedAt: z.string().optional(),
});

const classification = z.object({
  risk: riskClass,
  reason: z.string(),
  /** Every rule that matched, highest first. */
  findings: z.array(z.object({ risk: riskClass, reason: z.string() })),
  /** The stages of the pipeline, each an argv exactly as the program receives it. */
  pipeline: z.array(z.array(z.string())),
  /** Whether the calling user's policy lets it run without approval (remembered approvals included). */
  needsApproval: z.boolean(),
});

const auditEntry = z.object({
  id: z.string(),
  at: z.string(),
  kind: z.enum(['execution', 'decision', 'session']),
  /** Who acted: the caller of an execution, the decider of a decision. */
  actorId: z.string(),
  ownerId: z.string(),
  command: z.string(),
  risk: riskClass.optional(),
  decision: z.string(),
  approver: z.string().optional(),
  status: z.string().optional(),
  exitCode: z.number().int().nullable().optional(),
  durationMs: z.number().int().optional(),
  executionId: z.string().optional(),
  approvalId: z.string().optional(),
  sessionId: z.string().optional(),
});

const page = {
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().regex(/^\d{1,20}-\d{1,20}$/, 'the nextCursor of the previous page').optional(),
};

export const terminalSettings = z.object({
  policy: z
    .object({ user: allowedClass.default('safe'), admin: allowedClass.default('moderate') })
    .default({ user: 'safe', admin: 'moderate' })
    .describe('Per role, the highest risk class that runs without approval'),
  approvalTtlS: z.number().int().min(1).max(86_400).default(300).describe('An undecided approval expires (denied) after this'),
  defaultTimeoutMs: z.number().int().min(100).max(TIMEOUT_MAX_MS).default(30_000).describe('Timeout of a command that names none'),
  maxTimeoutMs: z.number().int().min(100).max(TIMEOUT_MAX_MS).default(300_000).describe('Longest timeout a command may ask for'),
  maxOutputBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(64 * 1024).describe('Output kept per stream (stdout, stderr); the rest is cut (truncated: true)'),
  executionRetentionDays: z.number().int().min(1).max(365).default(7).describe('How long execution results are kept (the audit trail stays)'),
  auditMaxEntries: z.number().int().min(1000).max(10_000_000).default(100_000).describe('Audit entries kept (oldest dropped first)'),
  sessionIdleS: z.number().int().min(1).max(86_400).default(900).describe('An interactive session without input for this long is closed'),
  maxSessionsPerUser: z.number().int().min(1).max(32).default(4).describe('Open interactive sessions per admin'),
  sessionShell: z.string().min(1).default('/bin/bash').describe('Shell of interactive sessions (falls back to /bin/sh)'),
});

/** The socket a command came from joins its input: a session is bound to the socket driving it. */
function withSocket(payload: unknown, socket: { socketId: string }): unknown {
  return { ...(typeof payload === 'object' && payload !== null ? payload : {}), socketId: socket.socketId };
}

export const sessionView = z.object({ id: z.string(), cwd: z.string(), shell: z.string(), cols: z.number().int(), rows: z.number().int(), createdAt: z.string() });

export const terminalContract = defineContract({
  id: 'terminal',
  summary: 'Commands without a shell in per-user workspaces, risk classes, approvals, audit, PTY sessions.',
  operations: {
    execute: operation({
      input: z.object({
        command,
        cwd: cwd.optional(),
        timeoutMs: z.number().int().min(100).max(TIMEOUT_MAX_MS).optional(),
        /** Runs under an approval already granted (requestApproval, then a human's decision); used once. */
        approvalId: id.optional(),
      }),
      output: executionView,
      timeoutMs: TIMEOUT_MAX_MS + 20_000,
      summary: 'Runs a command (or holds it for approval above the policy); repeated calls with the same idempotency key run it once',
    }),
    getExecution: operation({ input: z.object({ id }), output: executionView, idempotent: true }),
    classify: operation({
      input: z.object({ command, cwd: cwd.optional() }),
      output: classification,
      idempotent: true,
      summary: 'The risk class of a command for the caller, with the reasons, without running it',
    }),
    requestApproval: operation({
      input: z
        .object({
          /** A command: classified here. */
          command: command.optional(),
          cwd: cwd.optional(),
          /** Or any other action (a tool call) that its module classified itself. */
          action: z.string().min(1).max(COMMAND_MAX).optional(),
          risk: riskClass.optional(),
          reason: z.string().min(1).max(500).optional(),
        })
        .refine((v) => (v.command !== undefined) !== (v.action !== undefined), { message: 'give either command or action', path: ['command'] })
        .refine((v) => v.action === undefined || (v.risk !== undefined && v.reason !== undefined), { message: 'an action needs its risk and reason', path: ['risk'] }),
      output: z.object({
        /** allowed: within the caller's policy (or remembered), go ahead; pending: wait for approvalId; refused: never. */
        decision: z.enum(['allowed', 'pending', 'refused']),
        risk: riskClass,
        reason: z.string(),
        approvalId: z.string().optional(),
        expiresAt: z.string().optional(),
      }),
      summary: 'Applies the approval policy to the caller: allowed, refused, or an approval the owner (or an admin) decides; one per idempotency key',
    }),
    getApproval: operation({ input: z.object({ id }), output: approvalView, idempotent: true }),
    readWorkspaceFile: operation({
      input: z.object({ path: cwd, maxBytes: z.number().int().min(1).max(16 * 1024 * 1024).optional() }),
      output: z.object({
        /** Relative to the caller's workspace. */
        path: z.string(),
        size: z.number().int(),
        /** UTF-8 text, at most maxBytes (and terminal.maxOutputBytes); empty for a binary file. */
        content: z.string(),
        truncated: z.boolean(),
        binary: z.boolean(),
      }),
      idempotent: true,
      summary: "Reads a file of the caller's workspace (the chat's read_file tool); a path leading outside it (.., absolute, a symlink) is refused",
    }),
    listApprovals: operation({
      input: z.object({}),
      output: z.object({ items: z.array(approvalView) }),
      idempotent: true,
      summary: 'Pending approvals: the caller own, and for admins every one waiting for an admin',
    }),
    decideApproval: operation({
      input: z.object({ approvalId: id, approve: z.boolean(), remember: z.boolean().optional() }),
      output: z.object({ approval: approvalView, execution: executionView.optional() }),
      summary: 'Approves or denies; an approved execution then runs and its result is pushed to its owner',
    }),
    listAudit: operation({ input: z.object(page), output: z.object({ items: z.array(auditEntry), nextCursor: z.string().nullable() }), idempotent: true }),
    openSession: operation({
      input: z.object({
        cols: z.number().int().min(10).max(1000).default(80),
        rows: z.number().int().min(5).max(500).default(24),
        cwd: cwd.optional(),
        /** The socket that drives the session; it closes when that socket goes. Else the first socket sending input. */
        socketId: z.string().min(1).max(100).optional(),
      }),
      output: sessionView,
    }),
    closeSession: operation({ input: z.object({ id }), output: z.null() }),
    sessionInput: operation({
      input: z.object({ sessionId: id, data: z.string().max(64 * 1024), socketId: z.string().max(100).optional() }),
      output: z.null(),
      timeoutMs: 3000,
    }),
    sessionResize: operation({
      input: z.object({ sessionId: id, cols: z.number().int().min(10).max(1000), rows: z.number().int().min(5).max(500), socketId: z.string().max(100).optional() }),
      output: z.null(),
      timeoutMs: 3000,
    }),
    socketClosed: operation({ input: z.object({ socketId: z.string().min(1).max(100) }), output: z.object({ closed: z.number().int() }), timeoutMs: 3000 }),
  },
  events: {
    'terminal.approval.decided': event({
      payload: z.object({ approvalId: z.string(), ownerId: z.string(), status: approvalStatus, decidedBy: z.string().nullable(), executionId: z.string().nullable() }),
      summary: 'An approval was approved, denied or expired (the chat tool loop resumes on it)',
      // The chat tool loop waiting for it runs in one particular instance of messages: every instance hears it.
      delivery: 'every-instance',
    }),
    'terminal.execution.finished': event({
      payload: z.object({ executionId: z.string(), ownerId: z.string(), status: executionStatus, exitCode: z.number().int().nullable() }),
    }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'not_found', 'conflict', 'unavailable'],
  settings: terminalSettings,
  sockets: [
    { event: 'approval:decide', operation: 'decideApproval', auth: 'user', summary: '{approvalId, approve, remember?}' },
    // Keystrokes and window sizes of an admin's interactive shell: a limit per event would cut off typing.
    { event: 'terminal:input', operation: 'sessionInput', auth: 'admin', input: withSocket, rateLimit: 'none', summary: '{sessionId, data}' },
    { event: 'terminal:resize', operation: 'sessionResize', auth: 'admin', input: withSocket, rateLimit: 'none', summary: '{sessionId, cols, rows}' },
  ],
  // The sessions a socket drives close when it goes.
  socketDisconnect: 'socketClosed',
  routes: [
    { method: 'POST', path: '/terminal/execute', operation: 'execute', auth: 'user', timeoutMs: TIMEOUT_MAX_MS + 20_000 },
    { method: 'POST', path: '/terminal/classify', operation: 'classify', auth: 'user' },
    { method: 'GET', path: '/terminal/executions/:id', operation: 'getExecution', auth: 'user' },
    { method: 'GET', path: '/terminal/approvals', operation: 'listApprovals', auth: 'user' },
    { method: 'GET', path: '/terminal/approvals/:id', operation: 'getApproval', auth: 'user' },
    {
      method: 'POST',
      path: '/terminal/approvals/:id',
      operation: 'decideApproval',
      auth: 'user',
      input: (req) => ({ ...(typeof req.body === 'object' && req.body !== null ? req.body : {}), approvalId: req.params.id }),
    },
    { method: 'GET', path: '/terminal/audit', operation: 'listAudit', auth: 'admin' },
    { method: 'POST', path: '/terminal/sessions', operation: 'openSession', auth: 'admin', status: 201 },
    { method: 'DELETE', path: '/terminal/sessions/:id', operation: 'closeSession', auth: 'admin', status: 204 },
  ],
});
