// A child AutoBot for the lifted search test: the search catalogue, configured by the environment
// (AUTOBOT_MODULES chooses what this process hosts), like any operator's process.
import 'reflect-metadata';
import { loadConfig } from '../../../../src/kernel/config/app-config.js';
import { startServer } from '../../../../src/app/server.js';
import { testAuthenticator } from '../../../support/test-auth.js';
import { searchCatalogue } from './search-app.js';

const config = loadConfig();
const server = await startServer({ config, catalogue: searchCatalogue(), authenticate: testAuthenticator });
process.stdout.write(`LISTENING ${server.url}\n`);
const stop = () => void server.stop().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
