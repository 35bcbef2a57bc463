// Each user's category tree in Redis:
//   c:<id>                           the category (ownerId, name, key = lower-cased name, parentId)
//   co:<owner>                       an owner's categories
//   cc:<id>                          a category's children
//   cn:<owner>:<parent or ->:<key>   sibling names, unique regardless of case
// Facts filed in a category are in fc:<id> (fact-store.ts). Deleting a category, moving what it holds,
// is one script, so a fact filed into it concurrently is either moved with the rest or refused.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ContractError } from '../../kernel/contract/errors.js';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { categoryFactsKey } from './fact-store.js';
import { newId } from './ids.js';
import { luaScript, type LuaScript } from '../../kernel/redis/lua-script.js';
import { MOVE_TO_ROOT } from './contract.js';

export interface StoredCategory {
  id: string;
  ownerId: string;
  name: string;
  parentId: string | null;
  createdAt: string;
}

const categoryKey = (id: string) => `c:${id}`;
const ownerCategoriesKey = (owner: string) => `co:${owner}`;

const CATEGORY_LUA = `
local P = ARGV[1]
local function cat_field(id, field) return redis.call('HGET', P .. 'c:' .. id, field) end
local function name_key(owner, parent, key)
  if parent == '' then parent = '-' end
  return P .. 'cn:' .. owner .. ':' .. parent .. ':' .. key
end
-- 1 for a top-level category.
local function depth_of(id)
  local d = 0
  local p = id
  while p and p ~= '' and d < 1000 do d = d + 1; p = cat_field(p, 'parentId') end
  return d
end
-- Levels of the subtree under id, id itself included.
local function height_of(id)
  local h = 0
  for _, child in ipairs(redis.call('ZRANGE', P .. 'cc:' .. id, 0, -1)) do
    local ch = height_of(child)
    if ch > h then h = ch end
  end
  return h + 1
end
`;

// ARGV: prefix, id, owner, parent ('' = top level), key, name, createdAt, max categories, max depth.
const CREATE = `${CATEGORY_LUA}
local id, owner, parent, key = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if parent ~= '' then
  if cat_field(parent, 'ownerId') ~= owner then return { 'no_parent' } end
  if depth_of(parent) + 1 > tonumber(ARGV[9]) then return { 'too_deep' } end
end
if redis.call('ZCARD', P .. 'co:' .. owner) >= tonumber(ARGV[8]) then return { 'too_many' } end
local existing = redis.call('GET', name_key(owner, parent, key))
if existing then return { 'duplicate', existing } end
redis.call('SET', name_key(owner, parent, key), id)
redis.call('HSET', P .. 'c:' .. id, 'id', id, 'ownerId', owner, 'name', ARGV[6], 'key', key, 'parentId', parent, 'createdAt', ARGV[7])
redis.call('ZADD', P .. 'co:' .. owner, 0, id)
if parent ~= '' then redis.call('ZADD', P .. 'cc:' .. parent, 0, id) end
return { 'ok' }`;

// ARGV: prefix, id, owner, name ('' = keep), key, parent given ('1'/'0'), parent ('' = top level), max depth.
const UPDATE = `${CATEGORY_LUA}
local id, owner = ARGV[2], ARGV[3]
if cat_field(id, 'ownerId') ~= owner then return { 'not_found' } end
local old_parent, old_key = cat_field(id, 'parentId'), cat_field(id, 'key')
local name, key = ARGV[4], ARGV[5]
if name == '' then name, key = cat_field(id, 'name'), old_key end
local parent = old_parent
if ARGV[6] == '1' then parent = ARGV[7] end
if parent ~= old_parent and parent ~= '' then
  if cat_field(parent, 'ownerId') ~= owner then return { 'no_parent' } end
  local p = parent
  while p and p ~= '' do
    if p == id then return { 'parent_inside' } end
    p = cat_field(p, 'parentId')
  end
  if depth_of(parent) + height_of(id) > tonumber(ARGV[8]) then return { 'too_deep' } end
end
if parent ~= old_parent or key ~= old_key then
  local existing = redis.call('GET', name_key(owner, parent, key))
  if existing and existing ~= id then return { 'duplicate', existing } end
  redis.call('DEL', name_key(owner, old_parent, old_key))
  redis.call('SET', name_key(owner, parent, key), id)
end
if parent ~= old_parent then
  if old_parent ~= '' then redis.call('ZREM', P .. 'cc:' .. old_parent, id) end
  if parent ~= '' then redis.call('ZADD', P .. 'cc:' .. parent, 0, id) end
end
redis.call('HSET', P .. 'c:' .. id, 'name', name, 'key', key, 'parentId', parent)
return { 'ok' }`;

// ARGV: prefix, id, owner, moveTo ('' = refuse when not empty, 'root', or a category id), now, max depth.
// Answers the ids of the facts it moved (they changed category) and how many subcategories moved.
const DELETE = `${CATEGORY_LUA}
local id, owner, move_to, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if cat_field(id, 'ownerId') ~= owner then return { 'not_found' } end
local parent = cat_field(id, 'parentId')
local facts = redis.call('ZRANGE', P .. 'fc:' .. id, 0, -1)
local children = redis.call('ZRANGE', P .. 'cc:' .. id, 0, -1)
local target = ''
if move_to ~= '' and move_to ~= '${MOVE_TO_ROOT}' then
  if cat_field(move_to, 'ownerId') ~= owner then return { 'no_target' } end
  local p = move_to
  while p and p ~= '' do
    if p == id then return { 'target_inside' } end
    p = cat_field(p, 'parentId')
  end
  target = move_to
end
if #facts + #children > 0 then
  if move_to == '' then return { 'not_empty', #facts, #children } end
  local base = 0
  if target ~= '' then base = depth_of(target) end
  for _, child in ipairs(children) do
    local key = cat_field(child, 'key')
    if redis.call('EXISTS', name_key(owner, target, key)) == 1 then return { 'name_taken', cat_field(child, 'name') } end
    if base + height_of(child) > tonumber(ARGV[6]) then return { 'too_deep' } end
  end
end
for _, f in ipairs(facts) do
  redis.call('HSET', P .. 'f:' .. f, 'categoryId', target, 'updatedAt', now)
  redis.call('HINCRBY', P .. 'f:' .. f, 'rev', 1)
  if target ~= '' then redis.call('ZADD', P .. 'fc:' .. target, 0, f) end
end
for _, child in ipairs(children) do
  local key = cat_field(child, 'key')
  redis.call('DEL', name_key(owner, id, key))
  redis.call('SET', name_key(owner, target, key), child)
  redis.call('HSET', P .. 'c:' .. child, 'parentId', target)
  if target ~= '' then redis.call('ZADD', P .. 'cc:' .. target, 0, child) end
end
redis.call('DEL', name_key(owner, parent, cat_field(id, 'key')), P .. 'c:' .. id, P .. 'fc:' .. id, P .. 'cc:' .. id)
redis.call('ZREM', P .. 'co:' .. owner, id)
if parent ~= '' then redis.call('ZREM', P .. 'cc:' .. parent, id) end
return { 'ok', facts, #children }`;

function fromHash(h: Record<string, string>): StoredCategory | undefined {
  if (!h.id) return undefined;
  return { id: h.id, ownerId: h.ownerId!, name: h.name!, parentId: h.parentId || null, createdAt: h.createdAt! };
}

function invalid(path: string, message: string): ContractError {
  return new ContractError('invalid_input', `Invalid input: ${path}: ${message}`, [{ path, message }]);
}

@injectable()
export class CategoryStore {
  private readonly prefix: string;
  private readonly createScript: LuaScript;
  private readonly deleteScript: LuaScript;
  private readonly updateScript: LuaScript;

  constructor(@inject(ModuleRedis) private readonly redis: Redis) {
    this.prefix = redis.options.keyPrefix ?? '';
    this.createScript = luaScript(redis, CREATE);
    this.deleteScript = luaScript(redis, DELETE);
    this.updateScript = luaScript(redis, UPDATE);
  }

  async create(input: { ownerId: string; name: string; parentId: string | null }, limits: { maxCategories: number; maxDepth: number }): Promise<StoredCategory> {
    const category: StoredCategory = { id: newId('cat'), ownerId: input.ownerId, name: input.name, parentId: input.parentId, createdAt: new Date().toISOString() };
    const key = input.name.normalize('NFKC').toLowerCase();
    const r = (await this.createScript(
      this.prefix,
      category.id,
      category.ownerId,
      category.parentId ?? '',
      key,
      category.name,
      category.createdAt,
      limits.maxCategories,
      limits.maxDepth,
    )) as string[];
    switch (r[0]) {
      case 'no_parent':
        throw invalid('parentId', 'no such category');
      case 'too_deep':
        throw invalid('parentId', `categories nest at most ${limits.maxDepth} levels deep`);
      case 'too_many':
        throw new ContractError('conflict', `a user may have at most ${limits.maxCategories} categories`);
      case 'duplicate':
        throw new ContractError('conflict', `a category named "${input.name}" exists already there (${r[1]})`, { existingId: r[1] });
    }
    return category;
  }

  async get(id: string): Promise<StoredCategory | undefined> {
    return fromHash(await this.redis.hgetall(categoryKey(id)));
  }

  /** An owner's categories, each with the number of facts filed directly in it. */
  async listWithCounts(ownerId: string): Promise<(StoredCategory & { factCount: number })[]> {
    const ids = await this.redis.zrange(ownerCategoriesKey(ownerId), '0', '-1');
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(categoryKey(id)).zcard(categoryFactsKey(id));
    const rows = (await pipeline.exec()) ?? [];
    const out: (StoredCategory & { factCount: number })[] = [];
    for (let i = 0; i < ids.length; i++) {
      const [herr, h] = rows[2 * i]!;
      const [cerr, count] = rows[2 * i + 1]!;
      if (herr || cerr) throw herr ?? cerr;
      const c = fromHash(h as Record<string, string>);
      if (c) out.push({ ...c, factCount: count as number });
    }
    return out;
  }

  /** Renames a category and/or moves it (with its subtree) under another parent or to the top level. */
  async update(ownerId: string, id: string, change: { name?: string; parentId?: string | null }, maxDepth: number): Promise<StoredCategory> {
    const name = change.name ?? '';
    const r = (await this.updateScript(
      this.prefix,
      id,
      ownerId,
      name,
      name.normalize('NFKC').toLowerCase(),
      change.parentId !== undefined ? '1' : '0',
      change.parentId ?? '',
      maxDepth,
    )) as string[];
    switch (r[0]) {
      case 'not_found':
        throw new ContractError('not_found', 'no such category');
      case 'no_parent':
        throw invalid('parentId', 'no such category');
      case 'parent_inside':
        throw invalid('parentId', 'a category cannot move into itself or one of its subcategories');
      case 'too_deep':
        throw invalid('parentId', `categories nest at most ${maxDepth} levels deep`);
      case 'duplicate':
        throw new ContractError('conflict', `a category of that name exists already there (${r[1]})`, { existingId: r[1] });
    }
    return (await this.get(id))!;
  }

  /**
   * Deletes a category of `ownerId`. With facts or subcategories in it, `moveTo` says where they go
   * (`root`: uncategorised and top level); without it the delete is refused. Answers the moved facts.
   */
  async delete(ownerId: string, id: string, moveTo: string | undefined, maxDepth: number): Promise<{ movedFacts: string[]; movedCategories: number }> {
    const r = (await this.deleteScript(this.prefix, id, ownerId, moveTo ?? '', new Date().toISOString(), maxDepth)) as [string, ...unknown[]];
    switch (r[0]) {
      case 'not_found':
        throw new ContractError('not_found', 'no such category');
      case 'no_target':
        throw invalid('moveTo', `no such category (give a category id or "${MOVE_TO_ROOT}")`);
      case 'target_inside':
        throw invalid('moveTo', 'cannot move into the category being deleted or one of its subcategories');
      case 'too_deep':
        throw invalid('moveTo', `the moved subcategories would nest more than ${maxDepth} levels deep`);
      case 'name_taken':
        throw new ContractError('conflict', `the target already has a subcategory named "${String(r[1])}"`);
      case 'not_empty':
        throw new ContractError(
          'conflict',
          `the category holds ${String(r[1])} facts and ${String(r[2])} subcategories: delete with ?moveTo=<categoryId> or ?moveTo=${MOVE_TO_ROOT} to move them`,
          { facts: r[1], categories: r[2] },
        );
    }
    return { movedFacts: r[1] as string[], movedCategories: r[2] as number };
  }
}
