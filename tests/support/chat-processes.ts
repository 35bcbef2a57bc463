// Chat AutoBot processes that a test kills (SIGKILL) and starts again: each one the chat test server
// (tests/modules/messages/chat-process-main.ts), all on one private Redis with persistence, one data
// directory (so a user's workspace outlives a process) and one fake Ollama. The harness of the chat
// crash tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startFakeOllama, type FakeOllama } from './fake-ollama.js';
import { spawnApp, type ChildApp } from './process.js';
import { startTestRedis, type TestRedis } from './redis.js';
import { USER_TOKEN, bearer } from './test-auth.js';

const MAIN = path.resolve(import.meta.dirname, '../modules/messages/chat-process-main.ts');

export interface ChatProcesses {
  readonly fake: FakeOllama;
  readonly dataDir: string;
  /** Starts one more process (the production saga lease: the resume delay is the real one). */
  start(): Promise<ChildApp>;
  /** A REST call to `app` (`/api/v1` + `p`), as the stand-in user unless told. */
  call<T>(app: ChildApp, method: string, p: string, body?: unknown, token?: string): Promise<{ status: number; body: T }>;
}

/** Registers the suite's hooks: Redis, the fake and the data directory before all; every process killed after all. */
export function chatProcesses(): ChatProcesses {
  let redis: TestRedis | undefined;
  let fake: FakeOllama | undefined;
  let dataDir: string | undefined;
  const children: ChildApp[] = [];
  beforeAll(async () => {
    redis = await startTestRedis({ persistence: true });
    fake = await startFakeOllama();
    dataDir = mkdtempSync(path.join(tmpdir(), 'abc-'));
  });
  afterAll(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await fake?.close();
    await redis?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });
  const ready = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('chatProcesses: used before beforeAll');
    return v;
  };
  return {
    get fake() {
      return ready(fake);
    },
    get dataDir() {
      return ready(dataDir);
    },
    async start() {
      const c = await spawnApp(
        { REDIS_URL: ready(redis).url, PORT: '0', OLLAMA_URL: ready(fake).url, AUTOBOT_DATA_DIR: ready(dataDir), AUTOBOT_INTERNAL_TOKEN: 'crash-test-internal-token-0123' },
        { script: MAIN, timeoutMs: 30_000 },
      );
      children.push(c);
      return c;
    },
    async call<T>(app: ChildApp, method: string, p: string, body?: unknown, token = USER_TOKEN) {
      const res = await fetch(`${app.url}/api/v1${p}`, {
        method,
        headers: { ...bearer(token), ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
  };
}
