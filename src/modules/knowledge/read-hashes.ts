// Reading several records stored as Redis hashes in one round trip, each parsed by its store.
import type { Redis } from 'ioredis';

/** HGETALL of every key, pipelined; `parse` gets `{}` for a key that is gone (and answers undefined). */
export async function readHashes<T>(redis: Redis, keys: string[], parse: (hash: Record<string, string>) => T): Promise<T[]> {
  if (keys.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const key of keys) pipeline.hgetall(key);
  const rows = (await pipeline.exec()) ?? [];
  return rows.map(([err, hash]) => {
    if (err) throw err;
    return parse(hash as Record<string, string>);
  });
}
