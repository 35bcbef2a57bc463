// The composition root: one AutoBot process = the runtime (kernel + hosted modules) behind the gateway
// on one HTTP server. main.ts, the tests and the benchmarks all start AutoBot through here.
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { AppConfig } from '../kernel/config/app-config.js';
import { createLogger } from '../kernel/log/logger.js';
import type { AnyModule } from '../kernel/module/define-module.js';
import { Runtime, type RuntimeOptions } from '../kernel/runtime/runtime.js';
import { createLocalBinding } from '../kernel/transport/local-binding.js';
import { systemContract } from '../kernel/system/contract.js';
import { systemHandlers } from '../kernel/system/system-service.js';
import { createGateway, type Gateway } from '../gateway/gateway.js';
import type { Authenticator } from '../gateway/authenticator.js';
import { catalogue as defaultCatalogue } from '../modules/catalogue.js';
import { authContract } from '../modules/auth/contract.js';
import { version } from './version.js';

export interface ServerOptions {
  config: AppConfig;
  catalogue?: readonly AnyModule[];
  logger?: Logger;
  /** Replaces the auth module's port as the judge of credentials (tests of the kernel and gateway). */
  authenticate?: Authenticator;
  sagaLease?: RuntimeOptions['sagaLease'];
  eventRetryDelayMs?: number;
}

export interface RunningServer {
  url: string;
  runtime: Runtime;
  gateway: Gateway;
  stop(): Promise<void>;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { config } = opts;
  const logger = opts.logger ?? createLogger(config.LOG_LEVEL);
  const runtime = new Runtime({
    config,
    catalogue: opts.catalogue ?? defaultCatalogue,
    logger,
    version,
    ...(opts.sagaLease ? { sagaLease: opts.sagaLease } : {}),
    ...(opts.eventRetryDelayMs ? { eventRetryDelayMs: opts.eventRetryDelayMs } : {}),
  });
  try {
    await runtime.start();
  } catch (err) {
    await runtime.stop(2000).catch(() => undefined);
    throw err;
  }

  const system = createLocalBinding(
    systemContract,
    systemHandlers({
      system: runtime.systemInfo(),
      instances: () => runtime.instances(),
      sagas: () => runtime.sagas,
      events: () => runtime.events,
    }),
    { metrics: runtime.metrics, logger },
  );
  const gateway = createGateway({
    runtime,
    version,
    extraContracts: [{ contract: systemContract, port: system as Record<string, unknown> }],
    ...(opts.authenticate ? { authenticate: opts.authenticate } : authPortAuthenticator(runtime)),
  });
  await new Promise<void>((resolve, reject) => {
    gateway.server.once('error', reject);
    gateway.server.listen(config.PORT, config.HOST, () => resolve());
  });
  const { port } = gateway.server.address() as AddressInfo;
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  await runtime.announce(config.AUTOBOT_ADVERTISE_URL ?? url);
  logger.info({ url, modules: runtime.hostedIds(), version }, 'AutoBot is ready');

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= shutdown(gateway, runtime, config.AUTOBOT_SHUTDOWN_TIMEOUT_MS, logger));
  return { url, runtime, gateway, stop };
}

/**
 * Credentials are checked by the auth module's port, local or remote; without the module in the
 * program, nothing is accepted.
 */
function authPortAuthenticator(runtime: Runtime): { authenticate?: Authenticator } {
  if (!runtime.catalogue.some((m) => m.contract.id === authContract.id)) return {};
  const auth = runtime.port(authContract);
  return { authenticate: async (token) => (await auth.authenticate({ token })).actor ?? undefined };
}

/** Stop accepting, let in-flight requests finish (up to the deadline), then stop the runtime. */
async function shutdown(gateway: Gateway, runtime: Runtime, deadlineMs: number, logger: Logger): Promise<void> {
  const until = Date.now() + deadlineMs;
  logger.info('shutting down');
  const closed = new Promise<void>((resolve) => gateway.server.close(() => resolve()));
  gateway.server.closeIdleConnections();
  // This instance's sockets only (`local`): the adapter would otherwise only publish the request through
  // Redis (to every instance, this one included), so with Redis down nothing would close them and the
  // server would never finish closing.
  gateway.io.local.disconnectSockets(true);
  while (gateway.inFlight() > 0 && Date.now() < until - 1000) await new Promise((r) => setTimeout(r, 20));
  if (gateway.inFlight() > 0) logger.warn({ inFlight: gateway.inFlight() }, 'drain deadline reached; closing connections');
  gateway.server.closeAllConnections();
  await closed;
  await new Promise<void>((resolve) => gateway.io.close(() => resolve()));
  await runtime.stop(Math.max(1000, until - Date.now()));
  logger.info('stopped');
}
