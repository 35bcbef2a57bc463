// Runs a parsed pipeline without a shell: each stage is its own process (shell: false) in its own
// process group, stage to stage through real OS pipes, in a minimal environment that holds none of
// AutoBot's variables. A timeout kills every group; output is capped per stream.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { SYSTEM_PATH } from './risk-rules.js';

export interface RunOptions {
  pipeline: string[][];
  cwd: string;
  workspace: string;
  timeoutMs: number;
  maxOutputBytes: number;
  signal?: AbortSignal;
}

export interface RunResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  durationMs: number;
}

/**
 * The whole environment of a command: an allow-list, never a copy of AutoBot's own (which holds the
 * internal token, Redis credentials, provider keys).
 */
export function commandEnvironment(workspace: string, cwd: string, extra: Record<string, string> = {}): Record<string, string> {
  const tmp = path.join(workspace, '.tmp');
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  return {
    PATH: SYSTEM_PATH.join(':'),
    HOME: workspace,
    PWD: cwd,
    TMPDIR: tmp,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TERM: 'dumb',
    ...extra,
  };
}

/** Keeps the first `limit` bytes of a stream and counts the rest. */
class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  dropped = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (room <= 0) {
      this.dropped += chunk.length;
      return;
    }
    const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.chunks.push(kept);
    this.size += kept.length;
    this.dropped += chunk.length - kept.length;
  }

  text(): string {
    return Buffer.concat(this.chunks, this.size).toString('utf8');
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    // Negative pid: the whole process group the child leads (it was spawned detached).
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

export function runPipeline(opts: RunOptions): Promise<RunResult> {
  const started = performance.now();
  const env = commandEnvironment(opts.workspace, opts.cwd);
  const stdout = new CappedBuffer(opts.maxOutputBytes);
  const stderr = new CappedBuffer(opts.maxOutputBytes);
  const children: ChildProcess[] = [];
  let timedOut = false;
  let spawnFailure: string | undefined;

  return new Promise<RunResult>((resolve) => {
    let pending = 0;
    let settled = false;
    let lastExit: { code: number | null; signal: string | null } = { code: null, signal: null };

    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      // Whatever a command left behind in its groups (background children) ends with it.
      for (const c of children) killGroup(c);
      if (spawnFailure) stderr.push(Buffer.from(spawnFailure));
      resolve({
        exitCode: spawnFailure ? 127 : lastExit.code,
        signal: lastExit.signal,
        stdout: stdout.text(),
        stderr: stderr.text(),
        truncated: stdout.dropped > 0 || stderr.dropped > 0,
        timedOut,
        durationMs: Math.round(performance.now() - started),
      });
    };
    const killAll = () => {
      for (const c of children) killGroup(c);
    };
    const onAbort = () => {
      timedOut = true;
      killAll();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killAll();
    }, opts.timeoutMs);
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    let previous: Readable | null = null;
    for (let i = 0; i < opts.pipeline.length; i++) {
      const [program, ...args] = opts.pipeline[i]!;
      const last = i === opts.pipeline.length - 1;
      // A stage reads the previous one's stdout directly (an OS pipe, no copying through JS).
      const stdio: StdioOptions = [previous ?? 'ignore', 'pipe', 'pipe'];
      let child: ChildProcess;
      try {
        child = spawn(program!, args, { cwd: opts.cwd, env, shell: false, detached: true, stdio, windowsHide: true });
      } catch (err) {
        spawnFailure = `${program}: ${(err as Error).message}\n`;
        killAll();
        break;
      }
      children.push(child);
      pending++;
      child.stderr!.on('data', (d: Buffer) => stderr.push(d));
      if (last) child.stdout!.on('data', (d: Buffer) => stdout.push(d));
      // The parent's handle on the pipe it passed on is not needed any more.
      if (previous) previous.destroy();
      previous = last ? null : child.stdout!;
      child.once('error', (err: NodeJS.ErrnoException) => {
        spawnFailure ??= err.code === 'ENOENT' ? `${program}: command not found\n` : `${program}: ${err.message}\n`;
        killAll();
      });
      // 'close': the process exited and its stdio streams ended (so all its output is in).
      child.once('close', (code, signal) => {
        if (last) lastExit = { code, signal };
        if (--pending === 0) finish();
      });
    }
    if (pending === 0) finish();
  });
}
