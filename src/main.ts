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
const started = startServer({ config, logger });
let stopping = false;
const onSignal = (signal: NodeJS.Signals) => {
  // npm and the terminal both deliver Ctrl-C: a repeated signal must not cut the drain short.
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'signal received');
  // A last resort if something hangs past the shutdown deadline.
  setTimeout(() => process.exit(1), config.AUTOBOT_SHUTDOWN_TIMEOUT_MS + 5000).unref();
  // Listening from the start: a signal that comes while AutoBot starts (or just after its ready line)
  // stops it once started, instead of killing it with its embedded Redis left running. A start that
  // fails exits below.
  started.then(
    (server) =>
      server.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      ),
    () => undefined,
  );
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
try {
  await started;
} catch (err) {
  logger.fatal({ err: err instanceof Error ? err.message : err }, 'AutoBot could not start');
  process.exit(1);
}
