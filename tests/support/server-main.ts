// The entry point of AutoBot child processes in end-to-end tests: the real main, plus the test
// stand-in for the auth port (the auth module does not exist yet) so admin routes can be reached.
import 'reflect-metadata';
import { loadConfig } from '../../src/kernel/config/app-config.js';
import { startServer } from '../../src/app/server.js';
import { testAuthenticator } from './test-auth.js';

const config = loadConfig();
const server = await startServer({ config, authenticate: testAuthenticator });
process.stdout.write(`LISTENING ${server.url}\n`);
const stop = () => void server.stop().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
