// Scripts by SHA: the script's text goes to the server once per connection (not with every call) and
// keeps its place among the commands sent with it, the keys get the connection's prefix, a server that
// forgot its scripts (SCRIPT FLUSH) gets the text again, and a script's own error is the caller's.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { luaScript, runScript } from '../../../src/kernel/redis/lua-script.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';

let redis: TestRedis;
let client: Redis;
let admin: Redis;

const SET_AND_READ = `redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1]) .. '!'`;

/** EVAL and EVALSHA calls the server has counted so far. */
async function evalCalls(): Promise<{ eval: number; evalsha: number }> {
  const info = await admin.info('commandstats');
  const calls = (cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return { eval: calls('eval'), evalsha: calls('evalsha') };
}

beforeAll(async () => {
  redis = await startTestRedis();
  client = new Redis({ ...redis.target, keyPrefix: 'mod:', enableAutoPipelining: true });
  admin = new Redis(redis.target);
});
afterAll(async () => {
  client?.disconnect();
  admin?.disconnect();
  await redis?.stop();
});

describe('runScript', () => {
  it('sends the text once, then runs the script by its SHA, with prefixed keys', async () => {
    const before = await evalCalls();
    expect(await runScript(client, SET_AND_READ, 1, 'k', 'one')).toBe('one!');
    expect(await runScript(client, SET_AND_READ, 1, 'k', 'two')).toBe('two!');
    expect(await runScript(client, SET_AND_READ, 1, 'k', 'three')).toBe('three!');
    const after = await evalCalls();
    expect(after.eval - before.eval).toBe(1);
    expect(after.evalsha - before.evalsha).toBe(2);
    expect(await admin.get('mod:k')).toBe('three');
    expect(await admin.exists('k')).toBe(0);
  });

  it('loads the script again after the server forgot it, also for calls batched together', async () => {
    await runScript(client, SET_AND_READ, 1, 'k', 'x');
    await admin.script('FLUSH');
    // Sent in one tick: auto-pipelining batches them; each learns NOSCRIPT and falls back.
    const results = await Promise.all(['a', 'b', 'c'].map((v, i) => runScript(client, SET_AND_READ, 1, `k${i}`, v)));
    expect(results).toEqual(['a!', 'b!', 'c!']);
  });

  it('runs the first call of a script in its place among the commands sent in the same batch', async () => {
    // A new connection, whose server does not know the script: had it gone as an EVALSHA first, its
    // EVAL would be sent after the GET queued behind it, and the GET would not see the counter.
    const fresh = new Redis({ ...redis.target, keyPrefix: 'mod:', enableAutoPipelining: true });
    try {
      await admin.script('FLUSH');
      const bump = `return redis.call('INCR', KEYS[1])`;
      const [bumped, read] = await Promise.all([runScript(fresh, bump, 1, 'counter'), fresh.get('counter')]);
      expect([bumped, read]).toEqual([1, '1']);
    } finally {
      fresh.disconnect();
    }
  });

  it("passes the script's own errors on", async () => {
    await expect(runScript(client, `return redis.error_reply('BAD no way')`, 0)).rejects.toThrow('BAD no way');
  });

  it('binds a keyless script to a client', async () => {
    const echo = luaScript(client, `return ARGV[1] .. ARGV[2]`);
    expect(await echo('a', 2)).toBe('a2');
  });
});
