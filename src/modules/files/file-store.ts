// File records in Redis (database 6, prefix `files:`): a hash per file, a time-ordered set per owner for
// paging, and a byte counter per owner for the quota. Adding and removing are Lua scripts, so the quota
// check and the write are one step: two concurrent uploads cannot both squeeze under the quota.
import { randomBytes } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import type { FileView } from './contract.js';
import { runScript } from '../../kernel/redis/lua-script.js';

export interface StoredFile extends FileView {
  ownerId: string;
}

const fileKey = (id: string) => `file:${id}`;
const ownerFilesKey = (ownerId: string) => `owner:${ownerId}:files`;
const ownerBytesKey = (ownerId: string) => `owner:${ownerId}:bytes`;

// KEYS: file hash, owner's set, owner's bytes. ARGV: quota, size, score, id, then field/value pairs.
// Answers 1, or 0 when the quota would be exceeded.
const ADD = `
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if used + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('INCRBY', KEYS[3], ARGV[2])
return 1`;

// KEYS: file hash, owner's set, owner's bytes. ARGV: owner id, file id. Answers 1 or 0 (no such file of that owner).
const REMOVE = `
if redis.call('HGET', KEYS[1], 'ownerId') ~= ARGV[1] then return 0 end
local size = tonumber(redis.call('HGET', KEYS[1], 'size') or '0')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('DECRBY', KEYS[3], size)
return 1`;

function fromHash(h: Record<string, string>): StoredFile | undefined {
  if (!h.id) return undefined;
  return {
    id: h.id,
    ownerId: h.ownerId!,
    name: h.name!,
    mediaType: h.mediaType!,
    size: Number(h.size),
    sha256: h.sha256!,
    createdAt: h.createdAt!,
  };
}

export function newFileId(): string {
  return `f_${Date.now().toString(16).padStart(12, '0')}${randomBytes(8).toString('hex')}`;
}

@injectable()
export class FileStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  /** Adds the record unless the owner's quota would be exceeded (then false). */
  async add(file: StoredFile, quotaBytes: number): Promise<boolean> {
    const fields = Object.entries(file).flatMap(([k, v]) => [k, String(v)]);
    const added = await runScript(
      this.redis,
      ADD,
      3,
      fileKey(file.id),
      ownerFilesKey(file.ownerId),
      ownerBytesKey(file.ownerId),
      quotaBytes,
      file.size,
      Date.parse(file.createdAt),
      file.id,
      ...fields,
    );
    return added === 1;
  }

  /** The file, only if it belongs to `ownerId`. */
  async get(ownerId: string, id: string): Promise<StoredFile | undefined> {
    const f = fromHash(await this.redis.hgetall(fileKey(id)));
    return f && f.ownerId === ownerId ? f : undefined;
  }

  async remove(ownerId: string, id: string): Promise<boolean> {
    return (await runScript(this.redis, REMOVE, 3, fileKey(id), ownerFilesKey(ownerId), ownerBytesKey(ownerId), ownerId, id)) === 1;
  }

  async usedBytes(ownerId: string): Promise<number> {
    return Number((await this.redis.get(ownerBytesKey(ownerId))) ?? 0);
  }

  async count(ownerId: string): Promise<number> {
    return this.redis.zcard(ownerFilesKey(ownerId));
  }

  /** Newest first; the cursor is the offset of the next page. */
  async list(ownerId: string, limit: number, cursor: string | undefined): Promise<{ items: StoredFile[]; nextCursor: string | null }> {
    const offset = cursor && /^\d+$/.test(cursor) ? Number(cursor) : 0;
    const ids = await this.redis.zrevrange(ownerFilesKey(ownerId), offset, offset + limit);
    const page = ids.slice(0, limit);
    const items = (await Promise.all(page.map((id) => this.get(ownerId, id)))).filter((f): f is StoredFile => f !== undefined);
    return { items, nextCursor: ids.length > limit ? String(offset + limit) : null };
  }
}
