// A child AutoBot for the documents crash test: config, files, documents and embeddings (the real
// module when the program has it), configured by the environment like any operator's process.
import 'reflect-metadata';
import { loadConfig } from '../../../../src/kernel/config/app-config.js';
import { startServer } from '../../../../src/app/server.js';
import { testAuthenticator } from '../../../support/test-auth.js';
import { documentsCatalogue } from './documents-app.js';

const config = loadConfig();
const server = await startServer({ config, catalogue: documentsCatalogue(), authenticate: testAuthenticator });
process.stdout.write(`LISTENING ${server.url}\n`);
const stop = () => void server.stop().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
