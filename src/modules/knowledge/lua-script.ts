// A Lua script run by its SHA (ioredis defineCommand: EVALSHA, falling back to EVAL once after a
// server restart), so each call sends arguments, not the script's text.
import type { Redis } from 'ioredis';

export type LuaScript = (...args: (string | number)[]) => Promise<unknown>;

export function luaScript(redis: Redis, name: string, lua: string): LuaScript {
  if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 0, lua });
  // defineCommand adds the method at run time; its type is not known to the Redis class.
  const command = (redis as unknown as Record<string, (...args: (string | number)[]) => Promise<unknown>>)[name]!;
  return (...args) => command.apply(redis, args);
}
