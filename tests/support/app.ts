// Starts a whole AutoBot in this test process (runtime + gateway on an ephemeral port) on a private
// Redis, with the modules a test asks for.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, type RunningServer, type ServerOptions } from '../../src/app/server.js';
import { loadConfig } from '../../src/kernel/config/app-config.js';
import { createLogger } from '../../src/kernel/log/logger.js';
import type { AnyModule } from '../../src/kernel/module/define-module.js';
import { catalogue, coreModules } from '../../src/modules/catalogue.js';
import { probeModule } from './probe-module.js';
import { testAuthenticator } from './test-auth.js';

export const INTERNAL_TOKEN = 'test-internal-token-0123456789';
/** The first admin's password in test apps (AUTOBOT_ADMIN_PASSWORD). */
export const ADMIN_PASSWORD = 'first-admin-password';

export const testCatalogue: readonly AnyModule[] = [...catalogue, probeModule];
/** The foundation and the probe only: for tests of the kernel and the gateway that list what runs. */
export const coreTestCatalogue: readonly AnyModule[] = [...coreModules, probeModule];

export interface TestApp extends RunningServer {
  dataDir: string;
}

export async function startTestApp(
  opts: {
    redisUrl?: string;
    env?: Record<string, string>;
    /** `stand-in` (default): fixed test tokens (tests/support/test-auth.ts); `module`: the real auth module. */
    credentials?: 'stand-in' | 'module';
  } & Partial<Omit<ServerOptions, 'config'>> = {},
): Promise<TestApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'aba-'));
  const config = loadConfig({
    PORT: '0',
    AUTOBOT_DATA_DIR: dataDir,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    AUTOBOT_INTERNAL_TOKEN: INTERNAL_TOKEN,
    AUTOBOT_ADMIN_PASSWORD: ADMIN_PASSWORD,
    ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl } : {}),
    ...opts.env,
  });
  const server = await startServer({
    config,
    catalogue: opts.catalogue ?? testCatalogue,
    logger: opts.logger ?? createLogger(config.LOG_LEVEL),
    ...(opts.credentials === 'module' ? {} : { authenticate: opts.authenticate ?? testAuthenticator }),
    ...(opts.sagaLease ? { sagaLease: opts.sagaLease } : {}),
    eventRetryDelayMs: opts.eventRetryDelayMs ?? 200,
  });
  return {
    ...server,
    dataDir,
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
