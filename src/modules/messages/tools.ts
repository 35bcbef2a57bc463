// The tools a chat model may call (Ollama native tool calling) and how one call runs. Every call goes
// through terminal's one approval policy: a command is classified by terminal (`classify`); a call
// above the user's policy becomes an approval the owner decides (`requestApproval`, then
// `approval:requested` on their sockets, `POST /terminal/approvals/:id` or socket `approval:decide`);
// the loop waits for the decision (at most the approval's TTL); denied or expired calls are reported
// to the model as denied. Calls run as the user who sent the message, with the call's own idempotency
// key in the context, so a repeated run after a crash returns what the first one did.
import { z } from 'zod';
import type { Port } from '../../kernel/contract/define.js';
import { isContractError } from '../../kernel/contract/errors.js';
import { withContext } from '../../kernel/context/request-context.js';
import { sleep } from '../../kernel/time/sleep.js';
import { browserContract } from '../browser/contract.js';
import type { toolDefinition } from '../llm/contract.js';
import { searchContract } from '../search/contract.js';
import { COMMAND_MAX, terminalContract, type RiskClass } from '../terminal/contract.js';
import type { ApprovalWaits } from './approval-waits.js';
import type { CallRecord, ProposedCall } from './tool-journal.js';

type ToolDefinition = z.input<typeof toolDefinition>;

export const TOOL_DEFINITIONS: ToolDefinition[] = [
  {
    type: 'function',
    function: {
      name: 'run_command',
      description:
        "Runs one command, or a pipeline joined with |, in the user's workspace directory and answers its exit code, stdout and stderr. " +
        'There is no shell: no redirections, variables, globs or && (write files with tee). Risky commands wait for the user to approve them.',
      parameters: {
        type: 'object',
        properties: {
          command: { type: 'string', description: 'The command line, e.g. "ls -la" or "grep -n TODO notes.md"' },
          cwd: { type: 'string', description: 'Working directory relative to the workspace (default: its root)' },
        },
        required: ['command'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'fetch_page',
      description: 'Loads a public web page and answers its title and main text as Markdown. The user may have to approve it first.',
      parameters: { type: 'object', properties: { url: { type: 'string', description: 'http(s) URL' } }, required: ['url'] },
    },
  },
  {
    type: 'function',
    function: {
      name: 'search_knowledge',
      description: "Searches the user's documents and facts (and the shared ones) and answers the best passages with their titles.",
      parameters: {
        type: 'object',
        properties: {
          query: { type: 'string', description: 'What to look for' },
          topK: { type: 'integer', description: 'How many passages (1-10, default 5)' },
        },
        required: ['query'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'read_file',
      description: "Reads a text file from the user's workspace directory.",
      parameters: { type: 'object', properties: { path: { type: 'string', description: 'Path relative to the workspace' } }, required: ['path'] },
    },
  },
];

const argSchemas = {
  run_command: z.object({ command: z.string().min(1).max(COMMAND_MAX), cwd: z.string().min(1).max(1024).optional() }),
  fetch_page: z.object({ url: z.string().trim().min(1).max(4096) }),
  search_knowledge: z.object({ query: z.string().trim().min(1).max(1000), topK: z.coerce.number().int().min(1).max(10).optional() }),
  read_file: z.object({ path: z.string().min(1).max(1024) }),
};
type ToolName = keyof typeof argSchemas;

/** Reading a web page sends its address (and whatever a prompt injection put into it) off this machine. */
const FETCH_RISK: RiskClass = 'moderate';
const FETCH_REASON = 'reads a web page: its address leaves this machine';
/** How often a command still running elsewhere (or held by terminal itself) is looked at. */
const EXECUTION_POLL_MS = 500;

export interface ToolPorts {
  terminal: Port<typeof terminalContract>;
  browser: Port<typeof browserContract>;
  search: Port<typeof searchContract>;
}

export interface RunOptions {
  signal: AbortSignal;
  /** Longest text kept of any one field of a result. */
  maxChars: number;
  /** A status change before the end (waiting for approval, running): journaled and announced by the loop. */
  progress: (record: CallRecord) => Promise<void>;
}

const cut = (s: string, max: number) => (s.length > max ? `${s.slice(0, max)}\n[… cut: ${s.length - max} more characters]` : s);
const failed = (error: string): CallRecord => ({ status: 'failed', result: { error } });
const denied = (error: string): CallRecord => ({ status: 'denied', result: { error } });

function errorText(err: unknown): string {
  if (isContractError(err)) return `${err.code}: ${err.message}`;
  return 'the tool failed';
}

export class ToolRunner {
  constructor(
    private readonly ports: ToolPorts,
    private readonly waits: ApprovalWaits,
  ) {}

  /** Runs one call to its end: a final record (never throws for the tool's own failures). */
  async run(call: ProposedCall, opts: RunOptions): Promise<CallRecord> {
    if (!(call.tool in argSchemas)) return failed(`there is no tool named ${call.tool}; the tools are ${Object.keys(argSchemas).join(', ')}`);
    const parsed = argSchemas[call.tool as ToolName].safeParse(call.arguments);
    if (!parsed.success) {
      return failed(`invalid arguments: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'arguments'}: ${i.message}`).join('; ')}`);
    }
    try {
      switch (call.tool as ToolName) {
        case 'run_command':
          return await this.runCommand(parsed.data as z.infer<typeof argSchemas.run_command>, opts);
        case 'fetch_page':
          return await this.fetchPage(parsed.data as z.infer<typeof argSchemas.fetch_page>, opts);
        case 'search_knowledge':
          return await this.searchKnowledge(parsed.data as z.infer<typeof argSchemas.search_knowledge>, opts);
        case 'read_file':
          return await this.readFile(parsed.data as z.infer<typeof argSchemas.read_file>, opts);
      }
    } catch (err) {
      if (opts.signal.aborted) return { status: 'cancelled', result: { error: 'stopped before the tool finished' } };
      return failed(errorText(err));
    }
  }

  /**
   * The approval policy for an action that the policy may hold: 'go' with the approval that allowed
   * it (if any), or the record of a call that will not run. Waiting is bounded by the approval's TTL.
   */
  private async approve(request: Parameters<ToolPorts['terminal']['requestApproval']>[0], opts: RunOptions): Promise<{ go: true; approvalId?: string } | { go: false; record: CallRecord }> {
    const { terminal } = this.ports;
    const r = await terminal.requestApproval(request);
    if (r.decision === 'refused') return { go: false, record: denied(`refused by the approval policy: ${r.reason}`) };
    if (r.decision === 'allowed') return { go: true, ...(r.approvalId ? { approvalId: r.approvalId } : {}) };
    const approvalId = r.approvalId!;
    await opts.progress({ status: 'pending_approval', approvalId });
    let end;
    try {
      end = await this.waits.wait(approvalId, opts.signal);
    } catch (err) {
      if (!opts.signal.aborted) throw err;
      // Stopped while waiting: the request is withdrawn, so nobody approves something nobody waits for.
      // (A fresh signal: the turn's own is aborted.)
      await withContext({ signal: new AbortController().signal }, () => terminal.decideApproval({ approvalId, approve: false })).catch(() => undefined);
      return { go: false, record: { status: 'cancelled', approvalId, result: { error: 'stopped while waiting for approval' } } };
    }
    if (end !== 'approved') {
      const why = end === 'expired' ? 'nobody approved it in time (the approval expired)' : 'the user denied it';
      return { go: false, record: { ...denied(`not run: ${why}`), approvalId } };
    }
    return { go: true, approvalId };
  }

  private async runCommand(args: { command: string; cwd?: string }, opts: RunOptions): Promise<CallRecord> {
    const { terminal } = this.ports;
    const input = { command: args.command, ...(args.cwd ? { cwd: args.cwd } : {}) };
    const c = await terminal.classify(input);
    let approvalId: string | undefined;
    // Forbidden commands go to execute, which refuses them and audits the refusal.
    if (c.needsApproval && c.risk !== 'forbidden') {
      const a = await this.approve(input, opts);
      if (!a.go) return a.record;
      approvalId = a.approvalId;
    }
    if (c.risk !== 'forbidden') await opts.progress({ status: 'running', ...(approvalId ? { approvalId } : {}) });
    let e = await terminal.execute({ ...input, ...(approvalId ? { approvalId } : {}) });
    // Held by terminal itself (the policy changed since classify), or still running in a process that
    // ran it before a crash: wait for its end.
    if (e.status === 'pending_approval' && e.approvalId) {
      await opts.progress({ status: 'pending_approval', approvalId: e.approvalId });
      await this.waits.wait(e.approvalId, opts.signal);
    }
    while ((e.status === 'pending_approval' || e.status === 'running') && !opts.signal.aborted) {
      await sleep(EXECUTION_POLL_MS, opts.signal);
      e = await terminal.getExecution({ id: e.id });
    }
    if (opts.signal.aborted) return { status: 'cancelled', result: { executionId: e.id, error: 'stopped while the command ran' } };
    const result = {
      executionId: e.id,
      status: e.status,
      risk: e.risk,
      ...(e.exitCode !== undefined ? { exitCode: e.exitCode } : {}),
      ...(e.stdout !== undefined ? { stdout: cut(e.stdout, opts.maxChars) } : {}),
      ...(e.stderr !== undefined ? { stderr: cut(e.stderr, opts.maxChars) } : {}),
      ...(e.truncated ? { truncated: true } : {}),
    };
    if (e.status === 'denied') return { status: 'denied', ...(approvalId ? { approvalId } : {}), result: { ...result, error: `refused: ${e.reason}` } };
    return { status: e.status === 'completed' ? 'completed' : 'failed', ...(approvalId ? { approvalId } : {}), result };
  }

  private async fetchPage(args: { url: string }, opts: RunOptions): Promise<CallRecord> {
    const a = await this.approve({ action: `fetch_page ${args.url}`, risk: FETCH_RISK, reason: FETCH_REASON }, opts);
    if (!a.go) return a.record;
    await opts.progress({ status: 'running', ...(a.approvalId ? { approvalId: a.approvalId } : {}) });
    const page = await this.ports.browser.fetchPage({ url: args.url });
    return {
      status: 'completed',
      ...(a.approvalId ? { approvalId: a.approvalId } : {}),
      result: { url: page.url, title: page.title, status: page.status, markdown: cut(page.markdown, opts.maxChars), ...(page.truncated || page.markdown.length > opts.maxChars ? { truncated: true } : {}) },
    };
  }

  // Reading the user's own knowledge and workspace is `safe`, below any policy: nothing to approve.

  private async searchKnowledge(args: { query: string; topK?: number }, opts: RunOptions): Promise<CallRecord> {
    await opts.progress({ status: 'running' });
    const found = await this.ports.search.searchDocuments({ query: args.query, mode: 'hybrid', topK: args.topK ?? 5 });
    const plain = (html: string) => html.replace(/<\/?mark>/g, '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
    return {
      status: 'completed',
      result: {
        items: found.items.map((i) => ({ title: i.title, sourceType: i.sourceType, sourceId: i.sourceId, snippet: cut(plain(i.snippet), opts.maxChars), score: i.score })),
        ...(found.degraded ? { degraded: true } : {}),
      },
    };
  }

  private async readFile(args: { path: string }, opts: RunOptions): Promise<CallRecord> {
    await opts.progress({ status: 'running' });
    const f = await this.ports.terminal.readWorkspaceFile({ path: args.path, maxBytes: opts.maxChars * 4 });
    if (f.binary) return failed(`${f.path} is a binary file (${f.size} bytes): not read`);
    return { status: 'completed', result: { path: f.path, size: f.size, content: cut(f.content, opts.maxChars), ...(f.truncated || f.content.length > opts.maxChars ? { truncated: true } : {}) } };
  }
}

/** What the model reads back: the result as JSON, cut to the limit. */
export function toolMessage(record: CallRecord, maxChars: number): string {
  const body = JSON.stringify({ status: record.status, ...(record.result ?? {}) });
  return body.length > maxChars ? `${body.slice(0, maxChars)}… [cut]` : body;
}
