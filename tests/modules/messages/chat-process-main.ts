// Entry point of child AutoBot processes in the chat crash and lifting tests: the real server with the
// conversation modules, search and what it builds on (AUTOBOT_MODULES picks which this process hosts; by
// default the conversation modules, search being reached where another process hosts it), the stand-in
// credentials, and
// the production saga lease (so the crash test measures the real resume delay).
import 'reflect-metadata';
import { loadConfig } from '../../../src/kernel/config/app-config.js';
import { startServer } from '../../../src/app/server.js';
import type { Authenticator } from '../../../src/gateway/authenticator.js';
import { testAuthenticator } from '../../support/test-auth.js';
import { CONVERSATION_MODULES, knowledgeChatCatalogue } from './chat-app.js';

// Besides the stand-in users, `bench-user-<n>` tokens stand for distinct users (the chat benchmark's
// concurrent users).
const authenticate: Authenticator = async (token) => {
  const m = /^bench-user-(\d{1,4})$/.exec(token);
  return m ? { type: 'user', id: `u-bench-${m[1]}`, roles: ['user'] } : testAuthenticator(token);
};

const config = loadConfig({ AUTOBOT_MODULES: CONVERSATION_MODULES, ...process.env });
const server = await startServer({ config, catalogue: knowledgeChatCatalogue(), authenticate });
process.stdout.write(`LISTENING ${server.url}\n`);
const stop = () => void server.stop().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
