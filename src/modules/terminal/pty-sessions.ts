// Interactive shells over a PTY (node-pty), for admins. A session lives in the process hosting this
// module; its output reaches the owner's sockets through the realtime port (from any process). It is
// closed when its shell exits, after `sessionIdleS` without input, when its owner's sign-in session is
// revoked (logout) and when the socket driving it goes.
import { randomUUID } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import type { IPty } from 'node-pty';
import { ContractError } from '../../kernel/contract/errors.js';
import type { Realtime } from '../../kernel/realtime/realtime.js';
import { commandEnvironment } from './runner.js';

// node-pty (a native addon) is required when the first session opens, synchronously as `open` is: a
// process that never opens a PTY does not load it.
const require = createRequire(import.meta.url);
let ptyModule: typeof import('node-pty') | undefined;
const nodePty = () => (ptyModule ??= require('node-pty') as typeof import('node-pty'));

export type CloseReason = 'exited' | 'idle' | 'logout' | 'socket' | 'closed' | 'shutdown';

interface Session {
  id: string;
  ownerId: string;
  /** The sign-in session that opened it: its logout closes this one. */
  authSessionId: string | undefined;
  socketId: string | undefined;
  pty: IPty;
  shell: string;
  cwd: string;
  cols: number;
  rows: number;
  createdAt: string;
  idleMs: number;
  idleTimer: NodeJS.Timeout;
  pending: string;
  flushTimer: NodeJS.Timeout | undefined;
  closeReason: CloseReason | undefined;
}

export interface OpenSession {
  ownerId: string;
  authSessionId: string | undefined;
  socketId: string | undefined;
  workspace: string;
  cwd: string;
  cwdRel: string;
  cols: number;
  rows: number;
  shell: string;
  idleS: number;
  maxPerUser: number;
}

/** Output is sent in small batches: one realtime message per burst instead of one per read. */
const FLUSH_MS = 10;
const FLUSH_BYTES = 32 * 1024;

export class PtySessions {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly realtime: Realtime,
    private readonly onClosed: (s: { id: string; ownerId: string; reason: CloseReason; exitCode: number | null }) => void,
  ) {}

  open(o: OpenSession) {
    const mine = [...this.sessions.values()].filter((s) => s.ownerId === o.ownerId).length;
    if (mine >= o.maxPerUser) throw new ContractError('conflict', `at most ${o.maxPerUser} interactive sessions per user; close one first`);
    const shell = usableShell(o.shell);
    const pty = nodePty().spawn(shell, shell.endsWith('bash') ? ['--noprofile', '--norc'] : [], {
      name: 'xterm-256color',
      cols: o.cols,
      rows: o.rows,
      cwd: o.cwd,
      env: commandEnvironment(o.workspace, o.cwd, { TERM: 'xterm-256color', SHELL: shell }),
    });
    const id = `pty_${randomUUID().replace(/-/g, '')}`;
    const s: Session = {
      id,
      ownerId: o.ownerId,
      authSessionId: o.authSessionId,
      socketId: o.socketId,
      pty,
      shell,
      cwd: o.cwdRel,
      cols: o.cols,
      rows: o.rows,
      createdAt: new Date().toISOString(),
      idleMs: o.idleS * 1000,
      idleTimer: setTimeout(() => this.close(id, 'idle'), o.idleS * 1000),
      pending: '',
      flushTimer: undefined,
      closeReason: undefined,
    };
    s.idleTimer.unref();
    this.sessions.set(id, s);
    pty.onData((data) => {
      s.pending += data;
      if (s.pending.length >= FLUSH_BYTES) this.flush(s);
      else s.flushTimer ??= setTimeout(() => this.flush(s), FLUSH_MS);
    });
    pty.onExit(({ exitCode, signal }) => {
      this.flush(s);
      clearTimeout(s.idleTimer);
      this.sessions.delete(id);
      const reason = s.closeReason ?? 'exited';
      this.realtime.toUser(s.ownerId, 'terminal:exit', { sessionId: id, exitCode, signal: signal || null, reason });
      this.onClosed({ id, ownerId: s.ownerId, reason, exitCode });
    });
    return { id, cwd: s.cwd, shell, cols: s.cols, rows: s.rows, createdAt: s.createdAt };
  }

  private flush(s: Session): void {
    if (s.flushTimer) clearTimeout(s.flushTimer);
    s.flushTimer = undefined;
    if (!s.pending) return;
    const data = s.pending;
    s.pending = '';
    this.realtime.toUser(s.ownerId, 'terminal:output', { sessionId: s.id, data });
  }

  /** The caller's session; another user's is not found. */
  private owned(ownerId: string, id: string, socketId: string | undefined): Session {
    const s = this.sessions.get(id);
    if (!s || s.ownerId !== ownerId) throw new ContractError('not_found', 'no such terminal session');
    // The first socket to drive a session opened over REST without one becomes its socket.
    if (socketId && !s.socketId) s.socketId = socketId;
    return s;
  }

  private touch(s: Session): void {
    s.idleTimer.refresh();
  }

  input(ownerId: string, id: string, data: string, socketId?: string): void {
    const s = this.owned(ownerId, id, socketId);
    this.touch(s);
    s.pty.write(data);
  }

  resize(ownerId: string, id: string, cols: number, rows: number, socketId?: string): void {
    const s = this.owned(ownerId, id, socketId);
    this.touch(s);
    s.cols = cols;
    s.rows = rows;
    s.pty.resize(cols, rows);
  }

  closeOwned(ownerId: string, id: string): void {
    this.owned(ownerId, id, undefined);
    this.close(id, 'closed');
  }

  close(id: string, reason: CloseReason): boolean {
    const s = this.sessions.get(id);
    if (!s || s.closeReason) return false;
    s.closeReason = reason;
    try {
      // The shell's whole process group, so jobs it started end with it.
      process.kill(-s.pty.pid, 'SIGHUP');
    } catch {
      // gone already
    }
    try {
      s.pty.kill('SIGKILL');
    } catch {
      // gone already
    }
    return true;
  }

  /** The sessions a socket drove (of `ownerId` only, when given). */
  closeForSocket(socketId: string, ownerId?: string): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (s.socketId === socketId && (ownerId === undefined || s.ownerId === ownerId) && this.close(s.id, 'socket')) n++;
    }
    return n;
  }

  /** A revoked sign-in session (logout) closes what it opened; null: every session of the user. */
  closeForAuthSession(userId: string, authSessionId: string | null): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (s.ownerId === userId && (authSessionId === null || s.authSessionId === authSessionId) && this.close(s.id, 'logout')) n++;
    }
    return n;
  }

  async closeAll(): Promise<void> {
    const open = [...this.sessions.values()];
    const exits = open.map((s) => new Promise<void>((resolve) => s.pty.onExit(() => resolve())));
    for (const s of open) this.close(s.id, 'shutdown');
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 2000))]);
  }

  count(): number {
    return this.sessions.size;
  }
}

function usableShell(preferred: string): string {
  for (const candidate of [preferred, '/bin/sh']) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next
    }
  }
  throw new ContractError('unavailable', `no shell to run: ${preferred} and /bin/sh are missing`);
}
