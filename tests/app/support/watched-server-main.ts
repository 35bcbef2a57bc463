// The test server (as tests/support/server-main.ts) with every unhandled rejection and uncaught exception
// written to stderr as one marked line, the process kept running so a test reads them all (without these
// listeners the first would end the process, as in production), and a pause after a stop before exiting,
// so a loop that fails after its connection was closed is seen too.
import 'reflect-metadata';
import { loadConfig } from '../../../src/kernel/config/app-config.js';
import { startServer } from '../../../src/app/server.js';
import { testAuthenticator } from '../../support/test-auth.js';

function report(kind: string, reason: unknown): void {
  const text = reason instanceof Error ? (reason.stack ?? reason.message) : String(reason);
  process.stderr.write(`${kind} ${text.replace(/\n/g, '\n    ')}\n`);
}
process.on('unhandledRejection', (reason) => report('UNHANDLED_REJECTION', reason));
process.on('uncaughtException', (err) => report('UNCAUGHT_EXCEPTION', err));

const server = await startServer({ config: loadConfig(), authenticate: testAuthenticator });
process.stdout.write(`LISTENING ${server.url}\n`);
process.once('SIGTERM', () => {
  void server.stop().then(async () => {
    process.stdout.write('STOPPED\n');
    await new Promise((r) => setTimeout(r, 3000));
    process.exit(0);
  });
});
