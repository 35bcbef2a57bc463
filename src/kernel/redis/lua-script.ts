// Lua scripts run by their SHA: EVALSHA with the arguments only, and EVAL once when the server does not
// know the script (it loads it: after a restart or SCRIPT FLUSH). `redis.eval(source, …)` would send the
// script's whole text with every call, and make the server hash it each time: a chat turn runs about
// ten scripts. Keys given as keys get the connection's key prefix, as with any command.
//
// Not ioredis's defineCommand: it adds a method to the client, which the pipelines that auto-pipelining
// had already opened do not have ("pipeline[name] is not a function" when the first call of a script
// joins a batch). EVALSHA is a plain command and batches like any other.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

type Arg = string | number | Buffer;

/** The SHA1 of each script source (what EVALSHA names it by). */
const shas = new Map<string, string>();

function shaOf(source: string): string {
  let sha = shas.get(source);
  if (sha === undefined) {
    sha = createHash('sha1').update(source).digest('hex');
    shas.set(source, sha);
  }
  return sha;
}

/** As `redis.eval(source, numKeys, ...keysAndArgs)`, by SHA. */
export async function runScript(redis: Redis, source: string, numKeys: number, ...keysAndArgs: Arg[]): Promise<unknown> {
  try {
    return await redis.evalsha(shaOf(source), numKeys, ...keysAndArgs);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return redis.eval(source, numKeys, ...keysAndArgs);
  }
}

export type LuaScript = (...args: Arg[]) => Promise<unknown>;

/** A script bound to a client, taking no keys (it builds its keys from a prefix it is given). */
export function luaScript(redis: Redis, source: string): LuaScript {
  return (...args) => runScript(redis, source, 0, ...args);
}
