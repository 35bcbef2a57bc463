// A private redis-server per test file, on a unix socket in a fresh temp directory: tests run in
// parallel without sharing keys, and a test can kill its server to see what happens.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EmbeddedRedis } from '../../src/kernel/redis/embedded-redis.js';
import type { RedisTarget } from '../../src/kernel/redis/redis-connections.js';

export interface TestRedis {
  dir: string;
  target: RedisTarget;
  /** `unix://…`, for REDIS_URL of child processes. */
  url: string;
  server: EmbeddedRedis;
  stop(): Promise<void>;
}

export async function startTestRedis(opts: { persistence?: boolean } = {}): Promise<TestRedis> {
  // Short paths: a unix socket path must stay under 108 bytes.
  const dir = mkdtempSync(path.join(tmpdir(), 'abr-'));
  const server = new EmbeddedRedis({ dir, persistence: opts.persistence ?? false });
  await server.start();
  return {
    dir,
    target: { path: server.socketPath },
    url: server.url,
    server,
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
