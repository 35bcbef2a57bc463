// Users in Redis (database 5, prefix `auth:`): a hash per user, a unique index of lower-cased usernames,
// a lexically ordered set for paging, and the set of active admins (so the last one cannot be removed).
// Every change that touches more than one key is one Lua script: all or nothing.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { newId } from './ids.js';
import { runScript } from '../../kernel/redis/lua-script.js';

export type Role = 'admin' | 'user';

export interface StoredUser {
  id: string;
  username: string;
  role: Role;
  disabled: boolean;
  passwordHash: string;
  createdAt: string;
  updatedAt: string;
}

const userKey = (id: string) => `user:${id}`;
const usernameKey = (username: string) => `username:${username.toLowerCase()}`;
const USERS = 'users';
const ADMINS = 'admins';

// KEYS: username index, user hash, users, admins. ARGV: id, then field/value pairs; the role is ARGV[2].
const CREATE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX') == false then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('ZADD', KEYS[3], 0, ARGV[1])
if ARGV[2] == 'admin' then redis.call('SADD', KEYS[4], ARGV[1]) end
return 1`;

// KEYS: user hash, admins. ARGV: id, role, disabled ('1'/'0'), updatedAt.
// Refuses (-1) to leave no active admin; 0 when the user does not exist.
const UPDATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local active_admin = ARGV[2] == 'admin' and ARGV[3] == '0'
if not active_admin and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 and redis.call('SCARD', KEYS[2]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'role', ARGV[2], 'disabled', ARGV[3], 'updatedAt', ARGV[4])
if active_admin then redis.call('SADD', KEYS[2], ARGV[1]) else redis.call('SREM', KEYS[2], ARGV[1]) end
return 1`;

// KEYS: user hash, username index, users, admins. ARGV: id.
const DELETE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 and redis.call('SCARD', KEYS[4]) == 1 then return -1 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return 1`;

function fromHash(h: Record<string, string>): StoredUser | undefined {
  if (!h.id) return undefined;
  return {
    id: h.id,
    username: h.username!,
    role: h.role === 'admin' ? 'admin' : 'user',
    disabled: h.disabled === '1',
    passwordHash: h.passwordHash!,
    createdAt: h.createdAt!,
    updatedAt: h.updatedAt!,
  };
}

@injectable()
export class UserStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async create(input: { username: string; role: Role; passwordHash: string }): Promise<StoredUser> {
    const id = newId('u');
    const now = new Date().toISOString();
    const user: StoredUser = { id, username: input.username, role: input.role, disabled: false, passwordHash: input.passwordHash, createdAt: now, updatedAt: now };
    const created = await runScript(
      this.redis,
      CREATE,
      4,
      usernameKey(input.username),
      userKey(id),
      USERS,
      ADMINS,
      id,
      input.role,
      ...Object.entries({ ...user, disabled: '0' }).flat(),
    );
    if (created !== 1) throw new ContractError('conflict', `the username "${input.username}" is taken`);
    return user;
  }

  async get(id: string): Promise<StoredUser | undefined> {
    return fromHash(await this.redis.hgetall(userKey(id)));
  }

  async findByUsername(username: string): Promise<StoredUser | undefined> {
    const id = await this.redis.get(usernameKey(username));
    return id ? this.get(id) : undefined;
  }

  /** The few fields authentication needs, in one round trip. */
  async brief(id: string): Promise<{ username: string; role: Role; disabled: boolean } | undefined> {
    const [username, role, disabled] = await this.redis.hmget(userKey(id), 'username', 'role', 'disabled');
    if (!username) return undefined;
    return { username, role: role === 'admin' ? 'admin' : 'user', disabled: disabled === '1' };
  }

  async isEmpty(): Promise<boolean> {
    return (await this.redis.zcard(USERS)) === 0;
  }

  async list(limit: number, cursor?: string): Promise<{ items: StoredUser[]; nextCursor: string | null }> {
    const ids = await this.redis.zrangebylex(USERS, cursor ? `(${cursor}` : '-', '+', 'LIMIT', 0, limit + 1);
    const page = ids.slice(0, limit);
    const pipeline = this.redis.pipeline();
    for (const id of page) pipeline.hgetall(userKey(id));
    const rows = (await pipeline.exec()) ?? [];
    const items = rows.map(([, h]) => fromHash(h as Record<string, string>)).filter((u): u is StoredUser => u !== undefined);
    return { items, nextCursor: ids.length > limit ? (page[page.length - 1] ?? null) : null };
  }

  async update(user: StoredUser, change: { role: Role; disabled: boolean }): Promise<StoredUser> {
    const updatedAt = new Date().toISOString();
    const r = await runScript(this.redis, UPDATE, 2, userKey(user.id), ADMINS, user.id, change.role, change.disabled ? '1' : '0', updatedAt);
    if (r === 0) throw new ContractError('not_found', 'no such user');
    if (r === -1) throw new ContractError('conflict', 'that would leave no active admin');
    return { ...user, ...change, updatedAt };
  }

  async setPasswordHash(id: string, passwordHash: string): Promise<void> {
    await this.redis.hset(userKey(id), 'passwordHash', passwordHash, 'updatedAt', new Date().toISOString());
  }

  async delete(user: StoredUser): Promise<void> {
    const r = await runScript(this.redis, DELETE, 4, userKey(user.id), usernameKey(user.username), USERS, ADMINS, user.id);
    if (r === 0) throw new ContractError('not_found', 'no such user');
    if (r === -1) throw new ContractError('conflict', 'that would leave no active admin');
  }
}
