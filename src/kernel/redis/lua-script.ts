// Lua scripts run by their SHA: the first call of a script on a connection sends its text (EVAL, which
// also loads it), later calls only its SHA (EVALSHA), falling back to EVAL when the server has forgotten
// it (SCRIPT FLUSH). `redis.eval(source, …)` every time would send the script's whole text with every
// call and make the server hash it each time: a chat turn runs about ten scripts. The first call goes as
// EVAL rather than as an EVALSHA that fails: the fallback is sent later, after whatever the caller
// queued behind it, which would reorder commands that auto-pipelining sends in one batch. Keys given as
// keys get the connection's key prefix, as with any command.
//
// Not ioredis's defineCommand (which works the same way): it adds a method to the client, which the
// pipelines auto-pipelining had already opened do not have ("pipeline[name] is not a function" when the
// first call of a script joins a batch).
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

type Arg = string | number | Buffer;

/** The SHA1 of each script source (what EVALSHA names it by). */
const shaBySource = new Map<string, string>();

function shaOf(source: string): string {
  let sha = shaBySource.get(source);
  if (sha === undefined) {
    sha = createHash('sha1').update(source).digest('hex');
    shaBySource.set(source, sha);
  }
  return sha;
}

/** The scripts each client has sent in full since it last connected (a new connection may be to a server that lost them). */
const sent = new WeakMap<Redis, Set<string>>();

function sentOn(redis: Redis): Set<string> {
  let scripts = sent.get(redis);
  if (!scripts) {
    const fresh = new Set<string>();
    redis.on('ready', () => fresh.clear());
    sent.set(redis, fresh);
    scripts = fresh;
  }
  return scripts;
}

/** As `redis.eval(source, numKeys, ...keysAndArgs)`, by SHA once the connection has sent the script. */
export async function runScript(redis: Redis, source: string, numKeys: number, ...keysAndArgs: Arg[]): Promise<unknown> {
  const sha = shaOf(source);
  const scripts = sentOn(redis);
  if (!scripts.has(sha)) {
    scripts.add(sha);
    return redis.eval(source, numKeys, ...keysAndArgs);
  }
  try {
    return await redis.evalsha(sha, numKeys, ...keysAndArgs);
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
