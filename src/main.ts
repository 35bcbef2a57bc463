// Entry point: read the configuration, start AutoBot, stop cleanly on SIGTERM/SIGINT.
import 'reflect-metadata';
import { ConfigError, loadConfig, type AppConfig } from './kernel/config/app-config.js';
import { createLogger } from './kernel/log/logger.js';
import { startServer } from './app/server.js';

let config: AppConfig;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

const logger = createLogger(config.LOG_LEVEL);
try {
  const server = await startServer({ config, logger });
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // npm and the terminal both deliver Ctrl-C: a repeated signal must not cut the drain short.
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'signal received');
    // A last resort if something hangs past the shutdown deadline.
    setTimeout(() => process.exit(1), config.AUTOBOT_SHUTDOWN_TIMEOUT_MS + 5000).unref();
    server.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
} catch (err) {
  logger.fatal({ err: err instanceof Error ? err.message : err }, 'AutoBot could not start');
  process.exit(1);
}
