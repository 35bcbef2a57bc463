// A process that owns an embedded Redis, writes one key and waits to be killed: the crash of an
// AutoBot whose redis-server (in its own process group) lives on as an orphan.
import { Redis } from 'ioredis';
import { EmbeddedRedis } from '../../src/kernel/redis/embedded-redis.js';

const server = new EmbeddedRedis({ dir: process.argv[2]!, persistence: true });
await server.start();
const client = new Redis({ path: server.socketPath });
await client.set('written-before-crash', 'yes');
await client.bgrewriteaof();
while (!(await client.info('persistence')).includes('aof_rewrite_in_progress:0')) await new Promise((r) => setTimeout(r, 20));
process.stdout.write(`READY ${server.pid}\n`);
setInterval(() => undefined, 1000);
