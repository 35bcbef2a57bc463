// Child AutoBot processes for end-to-end tests, started the way an operator would (environment only).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

export interface ChildApp {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Spawns `script` (default: the test server main) under tsx, or `command` as given (e.g. `npm start`),
 * and waits for its ready line (default: LISTENING <url>).
 */
export async function spawnApp(
  env: Record<string, string>,
  opts: { script?: string; command?: [string, ...string[]]; readyLine?: RegExp; timeoutMs?: number } = {},
): Promise<ChildApp> {
  const [file, ...args] = opts.command ?? [process.execPath, '--import', 'tsx', opts.script ?? path.join(root, 'tests/support/server-main.ts')];
  const child = spawn(file, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const readyLine = opts.readyLine ?? /LISTENING (\S+)/;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not start in time:\n${out}`)), opts.timeoutMs ?? 20_000);
    const check = () => {
      const m = readyLine.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] ?? '');
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`child exited with ${code} before it was ready:\n${out}`));
    });
  });
  return { child, url, output: () => out, exited };
}
