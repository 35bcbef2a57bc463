// Facts in Redis (database 2, prefix `knowledge:`): a hash per fact and the indexes lists read from,
// all sorted sets of ids (score 0, so they sort by id, that is by creation):
//   f:<id>                 the fact                      fa            every fact (for a reindex)
//   fo:<owner>             an owner's facts              fs            shared facts
//   fc:<category>          facts filed in a category
//   ft:<owner>:<tag>       an owner's facts with a tag   fst:<tag>     shared facts with a tag
//   fd:<owner>:<digest>    the fact whose normalised content has this digest (the dedupe index)
// Every change is one Lua script that rewrites the fact and its indexes together, so no reader ever sees
// a fact without its indexes, and two identical creates race inside Redis: exactly one wins.
// The scripts build index keys from the fact itself (with the connection's key prefix passed in): the
// indexes a change touches depend on the stored state, which only the script sees consistently.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ContractError } from '../../kernel/contract/errors.js';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { newId } from './ids.js';
import { luaScript, type LuaScript } from '../../kernel/redis/lua-script.js';
import { readHashes } from './read-hashes.js';

export interface StoredFact {
  id: string;
  ownerId: string;
  content: string;
  /** Digest of the normalised content (the dedupe key). */
  norm: string;
  categoryId: string | null;
  tags: string[];
  source: string | null;
  shared: boolean;
  createdAt: string;
  updatedAt: string;
  rev: number;
}

export type FactField = 'content' | 'categoryId' | 'tags' | 'source' | 'shared';

export interface FactPatch {
  content?: string;
  norm?: string;
  categoryId?: string | null;
  tags?: string[];
  source?: string | null;
  shared?: boolean;
}

export const factKey = (id: string) => `f:${id}`;
export const ownerFactsKey = (owner: string) => `fo:${owner}`;
export const SHARED_FACTS_KEY = 'fs';
export const ALL_FACTS_KEY = 'fa';
export const categoryFactsKey = (category: string) => `fc:${category}`;
export const ownerTagKey = (owner: string, tag: string) => `ft:${owner}:${tag}`;
export const sharedTagKey = (tag: string) => `fst:${tag}`;

/** Reads a fact and maintains its indexes; ARGV[1] is the key prefix. */
export const FACT_LUA = `
local P = ARGV[1]
local function to_table(flat)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
local function to_flat(t)
  local flat = {}
  for k, v in pairs(t) do flat[#flat + 1] = k; flat[#flat + 1] = v end
  return flat
end
local function fact(id) return to_table(redis.call('HGETALL', P .. 'f:' .. id)) end
local function fact_index_keys(f)
  local keys = { P .. 'fa', P .. 'fo:' .. f.ownerId }
  local shared = f.shared == '1'
  if f.categoryId ~= '' then keys[#keys + 1] = P .. 'fc:' .. f.categoryId end
  if shared then keys[#keys + 1] = P .. 'fs' end
  for _, t in ipairs(cjson.decode(f.tags)) do
    keys[#keys + 1] = P .. 'ft:' .. f.ownerId .. ':' .. t
    if shared then keys[#keys + 1] = P .. 'fst:' .. t end
  end
  return keys
end
local function index(f) for _, k in ipairs(fact_index_keys(f)) do redis.call('ZADD', k, 0, f.id) end end
local function unindex(f) for _, k in ipairs(fact_index_keys(f)) do redis.call('ZREM', k, f.id) end end
local function dedupe_key(f, norm) return P .. 'fd:' .. f.ownerId .. ':' .. norm end
local function category_owned(category, owner)
  return category == '' or redis.call('HGET', P .. 'c:' .. category, 'ownerId') == owner
end
`;

// ARGV: prefix, then the fact's field/value pairs.
const CREATE = `${FACT_LUA}
local f = to_table({ unpack(ARGV, 2) })
if not category_owned(f.categoryId, f.ownerId) then return { 'no_category' } end
local existing = redis.call('GET', dedupe_key(f, f.norm))
if existing then return { 'duplicate', existing } end
redis.call('SET', dedupe_key(f, f.norm), f.id)
redis.call('HSET', P .. 'f:' .. f.id, unpack(ARGV, 2))
index(f)
return { 'ok' }`;

// ARGV: prefix, id, updatedAt, then the changed field/value pairs. Answers the fields that really
// changed and the fact as stored; a patch that changes nothing leaves the fact (and its rev) alone.
const UPDATE = `${FACT_LUA}
local f = fact(ARGV[2])
if not f then return { 'not_found' } end
local patch = to_table({ unpack(ARGV, 4) }) or {}
local changed = {}
for k, v in pairs(patch) do if f[k] ~= v then changed[#changed + 1] = k end end
if #changed == 0 then return { 'ok', {}, to_flat(f) } end
if patch.categoryId and not category_owned(patch.categoryId, f.ownerId) then return { 'no_category' } end
if patch.norm and patch.norm ~= f.norm then
  local existing = redis.call('GET', dedupe_key(f, patch.norm))
  if existing and existing ~= f.id then return { 'duplicate', existing } end
  if redis.call('GET', dedupe_key(f, f.norm)) == f.id then redis.call('DEL', dedupe_key(f, f.norm)) end
  redis.call('SET', dedupe_key(f, patch.norm), f.id)
end
unindex(f)
for k, v in pairs(patch) do f[k] = v end
f.updatedAt = ARGV[3]
f.rev = tostring(tonumber(f.rev) + 1)
index(f)
local flat = to_flat(f)
redis.call('HSET', P .. 'f:' .. f.id, unpack(flat))
return { 'ok', changed, flat }`;

// ARGV: prefix, id. Answers the fact as it was.
const DELETE = `${FACT_LUA}
local f = fact(ARGV[2])
if not f then return { 'not_found' } end
unindex(f)
if redis.call('GET', dedupe_key(f, f.norm)) == f.id then redis.call('DEL', dedupe_key(f, f.norm)) end
redis.call('DEL', P .. 'f:' .. f.id)
return { 'ok', to_flat(f) }`;

function toHash(f: StoredFact): Record<string, string> {
  return {
    id: f.id,
    ownerId: f.ownerId,
    content: f.content,
    norm: f.norm,
    categoryId: f.categoryId ?? '',
    tags: JSON.stringify(f.tags),
    source: f.source ?? '',
    shared: f.shared ? '1' : '0',
    createdAt: f.createdAt,
    updatedAt: f.updatedAt,
    rev: String(f.rev),
  };
}

function patchToHash(p: FactPatch): Record<string, string> {
  const h: Record<string, string> = {};
  if (p.content !== undefined) h.content = p.content;
  if (p.norm !== undefined) h.norm = p.norm;
  if (p.categoryId !== undefined) h.categoryId = p.categoryId ?? '';
  if (p.tags !== undefined) h.tags = JSON.stringify(p.tags);
  if (p.source !== undefined) h.source = p.source ?? '';
  if (p.shared !== undefined) h.shared = p.shared ? '1' : '0';
  return h;
}

export function factFromHash(h: Record<string, string>): StoredFact | undefined {
  if (!h.id) return undefined;
  return {
    id: h.id,
    ownerId: h.ownerId!,
    content: h.content!,
    norm: h.norm!,
    categoryId: h.categoryId || null,
    tags: JSON.parse(h.tags ?? '[]') as string[],
    source: h.source || null,
    shared: h.shared === '1',
    createdAt: h.createdAt!,
    updatedAt: h.updatedAt!,
    rev: Number(h.rev ?? 1),
  };
}

function fromFlat(flat: string[]): StoredFact {
  const h: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return factFromHash(h)!;
}

function duplicate(existingId: string): ContractError {
  return new ContractError('conflict', `the same fact exists already (${existingId})`, { existingId });
}

function noCategory(): ContractError {
  return new ContractError('invalid_input', 'Invalid input: categoryId: no such category', [{ path: 'categoryId', message: 'no such category' }]);
}

@injectable()
export class FactStore {
  private readonly prefix: string;
  private readonly createScript: LuaScript;
  private readonly updateScript: LuaScript;
  private readonly deleteScript: LuaScript;

  constructor(@inject(ModuleRedis) private readonly redis: Redis) {
    this.prefix = redis.options.keyPrefix ?? '';
    this.createScript = luaScript(redis, CREATE);
    this.updateScript = luaScript(redis, UPDATE);
    this.deleteScript = luaScript(redis, DELETE);
  }

  async create(input: Omit<StoredFact, 'id' | 'createdAt' | 'updatedAt' | 'rev'>): Promise<StoredFact> {
    const now = new Date().toISOString();
    const fact: StoredFact = { ...input, id: newId('f'), createdAt: now, updatedAt: now, rev: 1 };
    const r = (await this.createScript(this.prefix, ...Object.entries(toHash(fact)).flat())) as string[];
    if (r[0] === 'duplicate') throw duplicate(r[1]!);
    if (r[0] === 'no_category') throw noCategory();
    return fact;
  }

  async get(id: string): Promise<StoredFact | undefined> {
    return factFromHash(await this.redis.hgetall(factKey(id)));
  }

  /** The facts of some ids in one round trip, undefined where there is none. */
  async getMany(ids: string[]): Promise<(StoredFact | undefined)[]> {
    return readHashes(this.redis, ids.map(factKey), factFromHash);
  }

  /** Applies a patch; answers the fact as stored and the fields that really changed. */
  async update(id: string, patch: FactPatch): Promise<{ fact: StoredFact; changes: FactField[] }> {
    const r = (await this.updateScript(this.prefix, id, new Date().toISOString(), ...Object.entries(patchToHash(patch)).flat())) as [
      string,
      ...unknown[],
    ];
    if (r[0] === 'not_found') throw new ContractError('not_found', 'no such fact');
    if (r[0] === 'duplicate') throw duplicate(r[1] as string);
    if (r[0] === 'no_category') throw noCategory();
    const changes = (r[1] as string[]).filter((c): c is FactField => c !== 'norm');
    return { fact: fromFlat(r[2] as string[]), changes };
  }

  async delete(id: string): Promise<StoredFact> {
    const r = (await this.deleteScript(this.prefix, id)) as [string, string[]?];
    if (r[0] === 'not_found') throw new ContractError('not_found', 'no such fact');
    return fromFlat(r[1]!);
  }
}
