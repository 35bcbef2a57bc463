// Small helpers for the benchmarks: child servers, load with autocannon, medians.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

/** One line of the table `npm run bench` prints; suites push to `rows`. */
export interface Row {
  name: string;
  autobot: string;
  baseline: string;
  ratio: string;
  target: string;
  /** null: a row given for reference (e.g. a load sweep's other rates), judged against no target. */
  met: boolean | null;
}
export const rows: Row[] = [];
export const fmt = (n: number, digits = 1) => n.toFixed(digits);

/** A deterministic pseudo-random stream (mulberry32), so every run measures the same corpus. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The p-th percentile (0..100) of `values`, nearest rank. */
export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export interface Child {
  proc: ChildProcess;
  url: string;
  startedAt: number;
  stop(): Promise<void>;
}

/** Starts `node <args>` and resolves once a line matches `ready` (capturing the URL). */
export function startChild(args: string[], env: Record<string, string>, ready: RegExp): Promise<Child> {
  const startedAt = performance.now();
  const proc = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not start:\n${out}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off('data', onData);
        resolve({
          proc,
          url: m[1]!,
          startedAt,
          stop: () =>
            new Promise<void>((res) => {
              if (proc.exitCode !== null) return res();
              proc.once('exit', () => res());
              proc.kill('SIGTERM');
            }),
        });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => reject(new Error(`child exited with ${code}:\n${out}`)));
  });
}

export async function requestsPerSecond(
  url: string,
  opts: { connections?: number; durationS?: number; headers?: Record<string, string> } = {},
): Promise<number> {
  const headers = opts.headers ?? {};
  // A short warm-up so JIT and keep-alive sockets settle before the measured run.
  await autocannon({ url, headers, connections: opts.connections ?? 20, duration: 1 });
  const r = await autocannon({ url, headers, connections: opts.connections ?? 20, duration: opts.durationS ?? 5 });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
  return r.requests.average;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

export async function waitFor(url: string, status = 200, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      if ((await fetch(url)).status === status) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${url} did not answer ${status} in time`);
}

/** CPU time (user + system) a process has used so far, in milliseconds (Linux /proc). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat, i.e. 12 and 13 after the command name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Server CPU spent per request (µs) over a fixed number of requests: steadier than req/s on a shared machine. */
export async function cpuPerRequest(url: string, pid: number, amount = 30_000): Promise<number> {
  await autocannon({ url, connections: 10, amount: 2000 });
  const before = cpuMs(pid);
  const r = await autocannon({ url, connections: 10, amount });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
  return ((cpuMs(pid) - before) * 1000) / amount;
}

/**
 * The machine's speed, to compare runs made on different machines or hours (machines of the same kind
 * differ: the one of 2026-11-29 at 23:00 UTC ran the same code about 1.7 times slower than the one an
 * hour before): the time of one JSON round trip of a chat message, in µs, in the quickest of seven
 * rounds of 20,000 after a warm-up (the quickest: the least disturbed by whatever else the machine runs).
 */
export function calibrate(): number {
  const message = {
    id: 'm_01a2299e02da66759bb8cd92a7bf',
    chatId: 'c_01a2299df37619912a8154c3',
    role: 'assistant',
    content: Array.from({ length: 50 }, (_, i) => `tok${i} `).join(''),
    status: 'complete',
    createdAt: '2026-11-30T00:00:00.000Z',
    usage: { promptTokens: 120, completionTokens: 50, timeToFirstTokenMs: 12, durationMs: 40 },
  };
  const round = (n: number) => {
    const t = performance.now();
    for (let i = 0; i < n; i++) JSON.parse(JSON.stringify({ ...message, seq: i }));
    return ((performance.now() - t) * 1000) / n;
  };
  round(20_000);
  return Math.min(...Array.from({ length: 7 }, () => round(20_000)));
}
