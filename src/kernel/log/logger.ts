// JSON logs (pino) stamped with the request id of the current context.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { currentContext } from '../context/request-context.js';

export type { Logger };

export function createLogger(level: LevelWithSilent = 'info', name = 'autobot'): Logger {
  return pino({
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin() {
      const ctx = currentContext();
      return ctx ? { requestId: ctx.requestId } : {};
    },
    redact: {
      paths: ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization', 'headers.authorization'],
      censor: '[redacted]',
    },
  });
}
