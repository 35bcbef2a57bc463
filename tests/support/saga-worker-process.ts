// Starts tests/support/saga-worker.ts as a child process and reads its stdout protocol. Every child
// is remembered so a test's afterEach can kill whatever is left, even when the test failed midway.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const script = path.join(here, 'saga-worker.ts');

export interface SagaWorkerProcess {
  child: ChildProcess;
  /** Resolves with the first stdout line (seen or still to come) that starts with `prefix`. */
  waitForLine(prefix: string, timeoutMs?: number): Promise<string>;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** stderr so far, for failure messages. */
  stderr(): string;
}

const live = new Set<ChildProcess>();

export function spawnSagaWorker(env: { redisUrl: string; hangOnStep?: string; lockMs?: number; stalledMs?: number; start?: { id: string; input: unknown } }): SagaWorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: repoRoot,
    env: {
      ...process.env,
      REDIS_URL: env.redisUrl,
      SAGA_LOCK_MS: String(env.lockMs ?? 1000),
      SAGA_STALLED_MS: String(env.stalledMs ?? 500),
      ...(env.hangOnStep ? { SAGA_HANG_ON_STEP: env.hangOnStep } : {}),
      ...(env.start ? { SAGA_START: JSON.stringify(env.start) } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => live.delete(child));

  const lines: string[] = [];
  const waiters = new Set<{ prefix: string; resolve: (line: string) => void }>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of waiters) {
      if (line.startsWith(w.prefix)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  });
  let err = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    err = (err + chunk.toString()).slice(-20_000);
  });

  return {
    child,
    exited,
    stderr: () => err,
    waitForLine(prefix, timeoutMs = 20_000) {
      const seen = lines.find((l) => l.startsWith(prefix));
      if (seen) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const waiter = {
          prefix,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`saga worker: no "${prefix}" line within ${timeoutMs} ms; stderr:\n${err}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(() => {
          if (!waiters.has(waiter)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(new Error(`saga worker exited (code ${child.exitCode}) before "${prefix}"; stderr:\n${err}`));
        });
      });
    },
  };
}

/** SIGKILLs every child still running; for afterEach. */
export async function killSagaWorkers(): Promise<void> {
  const waits = [...live].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  );
  await Promise.all(waits);
  live.clear();
}
