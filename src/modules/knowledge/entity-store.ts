// Entities and typed relations in Redis, always private to their owner:
//   e:<id>                         the entity (ownerId, name, key = lower-cased name, type, attributes JSON)
//   eo:<owner>, et:<owner>:<type>  an owner's entities, all and per type
//   en:<owner>:<type>:<key>        unique name per type and owner, regardless of case
//   r:<id>                         a relation (ownerId, fromId, toId, type)
//   ro:<entity>, ri:<entity>       relations going out of and coming into an entity
//   rk:<from>:<to>:<type>          the relation of that kind between those two (no duplicates)
// Deleting an entity removes every relation it takes part in, in the same script.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ContractError } from '../../kernel/contract/errors.js';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import { newId } from './ids.js';
import { luaScript, type LuaScript } from '../../kernel/redis/lua-script.js';
import { readHashes } from './read-hashes.js';

export type AttributeValue = string | number | boolean | null;

export interface StoredEntity {
  id: string;
  ownerId: string;
  name: string;
  type: string;
  attributes: Record<string, AttributeValue>;
  createdAt: string;
  updatedAt: string;
}

export interface StoredRelation {
  id: string;
  ownerId: string;
  fromId: string;
  toId: string;
  type: string;
  createdAt: string;
}

export const entityKey = (id: string) => `e:${id}`;
export const ownerEntitiesKey = (owner: string) => `eo:${owner}`;
export const ownerTypeKey = (owner: string, type: string) => `et:${owner}:${type}`;
const relationKey = (id: string) => `r:${id}`;
const outgoingKey = (entity: string) => `ro:${entity}`;
const incomingKey = (entity: string) => `ri:${entity}`;

const ENTITY_LUA = `
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
local function name_key(owner, type, key) return P .. 'en:' .. owner .. ':' .. type .. ':' .. key end
local function owned_entity(id, owner)
  local e = to_table(redis.call('HGETALL', P .. 'e:' .. id))
  if e and e.ownerId == owner then return e end
  return nil
end
local function drop_relation(rid)
  local r = to_table(redis.call('HGETALL', P .. 'r:' .. rid))
  if not r then return 0 end
  redis.call('ZREM', P .. 'ro:' .. r.fromId, rid)
  redis.call('ZREM', P .. 'ri:' .. r.toId, rid)
  redis.call('DEL', P .. 'rk:' .. r.fromId .. ':' .. r.toId .. ':' .. r.type, P .. 'r:' .. rid)
  return 1
end
`;

// ARGV: prefix, then the entity's field/value pairs (key included).
const CREATE_ENTITY = `${ENTITY_LUA}
local e = to_table({ unpack(ARGV, 2) })
local nk = name_key(e.ownerId, e.type, e.key)
local existing = redis.call('GET', nk)
if existing then return { 'duplicate', existing } end
redis.call('SET', nk, e.id)
redis.call('HSET', P .. 'e:' .. e.id, unpack(ARGV, 2))
redis.call('ZADD', P .. 'eo:' .. e.ownerId, 0, e.id)
redis.call('ZADD', P .. 'et:' .. e.ownerId .. ':' .. e.type, 0, e.id)
return { 'ok' }`;

// ARGV: prefix, id, owner, updatedAt, then changed field/value pairs (name, key, type, attributes).
const UPDATE_ENTITY = `${ENTITY_LUA}
local e = owned_entity(ARGV[2], ARGV[3])
if not e then return { 'not_found' } end
local patch = to_table({ unpack(ARGV, 5) }) or {}
local new_type = patch.type or e.type
local new_key = patch.key or e.key
if new_type ~= e.type or new_key ~= e.key then
  local existing = redis.call('GET', name_key(e.ownerId, new_type, new_key))
  if existing and existing ~= e.id then return { 'duplicate', existing } end
  redis.call('DEL', name_key(e.ownerId, e.type, e.key))
  redis.call('SET', name_key(e.ownerId, new_type, new_key), e.id)
end
if new_type ~= e.type then
  redis.call('ZREM', P .. 'et:' .. e.ownerId .. ':' .. e.type, e.id)
  redis.call('ZADD', P .. 'et:' .. e.ownerId .. ':' .. new_type, 0, e.id)
end
for k, v in pairs(patch) do e[k] = v end
e.updatedAt = ARGV[4]
local flat = to_flat(e)
redis.call('HSET', P .. 'e:' .. e.id, unpack(flat))
return { 'ok', flat }`;

// ARGV: prefix, id, owner. Answers how many relations went with it.
const DELETE_ENTITY = `${ENTITY_LUA}
local e = owned_entity(ARGV[2], ARGV[3])
if not e then return { 'not_found' } end
local removed = 0
for _, rid in ipairs(redis.call('ZRANGE', P .. 'ro:' .. e.id, 0, -1)) do removed = removed + drop_relation(rid) end
for _, rid in ipairs(redis.call('ZRANGE', P .. 'ri:' .. e.id, 0, -1)) do removed = removed + drop_relation(rid) end
redis.call('DEL', P .. 'ro:' .. e.id, P .. 'ri:' .. e.id, P .. 'e:' .. e.id, name_key(e.ownerId, e.type, e.key))
redis.call('ZREM', P .. 'eo:' .. e.ownerId, e.id)
redis.call('ZREM', P .. 'et:' .. e.ownerId .. ':' .. e.type, e.id)
return { 'ok', removed }`;

// ARGV: prefix, id, owner, fromId, toId, type, createdAt, max relations per entity and direction.
const CREATE_RELATION = `${ENTITY_LUA}
local id, owner, from, to, type = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if not owned_entity(from, owner) then return { 'no_from' } end
if not owned_entity(to, owner) then return { 'no_to' } end
local rk = P .. 'rk:' .. from .. ':' .. to .. ':' .. type
local existing = redis.call('GET', rk)
if existing then return { 'duplicate', existing } end
local max = tonumber(ARGV[8])
if redis.call('ZCARD', P .. 'ro:' .. from) >= max or redis.call('ZCARD', P .. 'ri:' .. to) >= max then return { 'too_many' } end
redis.call('SET', rk, id)
redis.call('HSET', P .. 'r:' .. id, 'id', id, 'ownerId', owner, 'fromId', from, 'toId', to, 'type', type, 'createdAt', ARGV[7])
redis.call('ZADD', P .. 'ro:' .. from, 0, id)
redis.call('ZADD', P .. 'ri:' .. to, 0, id)
return { 'ok' }`;

// ARGV: prefix, id, owner.
const DELETE_RELATION = `${ENTITY_LUA}
if redis.call('HGET', P .. 'r:' .. ARGV[2], 'ownerId') ~= ARGV[3] then return { 'not_found' } end
drop_relation(ARGV[2])
return { 'ok' }`;

function entityFromHash(h: Record<string, string>): StoredEntity | undefined {
  if (!h.id) return undefined;
  return {
    id: h.id,
    ownerId: h.ownerId!,
    name: h.name!,
    type: h.type!,
    attributes: JSON.parse(h.attributes ?? '{}') as Record<string, AttributeValue>,
    createdAt: h.createdAt!,
    updatedAt: h.updatedAt!,
  };
}

function relationFromHash(h: Record<string, string>): StoredRelation | undefined {
  if (!h.id) return undefined;
  return { id: h.id, ownerId: h.ownerId!, fromId: h.fromId!, toId: h.toId!, type: h.type!, createdAt: h.createdAt! };
}

function hashFromFlat(flat: string[]): Record<string, string> {
  const h: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return h;
}

const nameKey = (name: string) => name.normalize('NFKC').toLowerCase();

function duplicate(what: string, existingId: string): ContractError {
  return new ContractError('conflict', `${what} exists already (${existingId})`, { existingId });
}

function invalid(path: string, message: string): ContractError {
  return new ContractError('invalid_input', `Invalid input: ${path}: ${message}`, [{ path, message }]);
}

@injectable()
export class EntityStore {
  private readonly prefix: string;
  private readonly scripts: Record<'createEntity' | 'updateEntity' | 'deleteEntity' | 'createRelation' | 'deleteRelation', LuaScript>;

  constructor(@inject(ModuleRedis) private readonly redis: Redis) {
    this.prefix = redis.options.keyPrefix ?? '';
    this.scripts = {
      createEntity: luaScript(redis, CREATE_ENTITY),
      updateEntity: luaScript(redis, UPDATE_ENTITY),
      deleteEntity: luaScript(redis, DELETE_ENTITY),
      createRelation: luaScript(redis, CREATE_RELATION),
      deleteRelation: luaScript(redis, DELETE_RELATION),
    };
  }

  async createEntity(input: { ownerId: string; name: string; type: string; attributes: Record<string, AttributeValue> }): Promise<StoredEntity> {
    const now = new Date().toISOString();
    const entity: StoredEntity = { id: newId('ent'), ...input, createdAt: now, updatedAt: now };
    const hash = { ...entity, key: nameKey(entity.name), attributes: JSON.stringify(entity.attributes) };
    const r = (await this.scripts.createEntity(this.prefix, ...Object.entries(hash).flat())) as string[];
    if (r[0] === 'duplicate') throw duplicate(`a ${input.type} named "${input.name}"`, r[1]!);
    return entity;
  }

  async getEntity(id: string): Promise<StoredEntity | undefined> {
    return entityFromHash(await this.redis.hgetall(entityKey(id)));
  }

  async getEntities(ids: string[]): Promise<(StoredEntity | undefined)[]> {
    return readHashes(this.redis, ids.map(entityKey), entityFromHash);
  }

  async updateEntity(ownerId: string, id: string, patch: { name?: string; type?: string; attributes?: Record<string, AttributeValue> }): Promise<StoredEntity> {
    const h: Record<string, string> = {};
    if (patch.name !== undefined) Object.assign(h, { name: patch.name, key: nameKey(patch.name) });
    if (patch.type !== undefined) h.type = patch.type;
    if (patch.attributes !== undefined) h.attributes = JSON.stringify(patch.attributes);
    const r = (await this.scripts.updateEntity(this.prefix, id, ownerId, new Date().toISOString(), ...Object.entries(h).flat())) as [string, unknown];
    if (r[0] === 'not_found') throw new ContractError('not_found', 'no such entity');
    if (r[0] === 'duplicate') throw duplicate('an entity of that name and type', r[1] as string);
    return entityFromHash(hashFromFlat(r[1] as string[]))!;
  }

  async deleteEntity(ownerId: string, id: string): Promise<number> {
    const r = (await this.scripts.deleteEntity(this.prefix, id, ownerId)) as [string, number?];
    if (r[0] === 'not_found') throw new ContractError('not_found', 'no such entity');
    return r[1]!;
  }

  async createRelation(input: { ownerId: string; fromId: string; toId: string; type: string }, maxPerEntity: number): Promise<StoredRelation> {
    const relation: StoredRelation = { id: newId('rel'), ...input, createdAt: new Date().toISOString() };
    const r = (await this.scripts.createRelation(
      this.prefix,
      relation.id,
      relation.ownerId,
      relation.fromId,
      relation.toId,
      relation.type,
      relation.createdAt,
      maxPerEntity,
    )) as string[];
    switch (r[0]) {
      case 'no_from':
        throw invalid('fromId', 'no such entity');
      case 'no_to':
        throw invalid('toId', 'no such entity');
      case 'duplicate':
        throw duplicate('this relation', r[1]!);
      case 'too_many':
        throw new ContractError('conflict', `an entity takes part in at most ${maxPerEntity} relations each way`);
    }
    return relation;
  }

  async deleteRelation(ownerId: string, id: string): Promise<void> {
    const r = (await this.scripts.deleteRelation(this.prefix, id, ownerId)) as string[];
    if (r[0] === 'not_found') throw new ContractError('not_found', 'no such relation');
  }

  /** An entity's relations both ways, each with the entity at the other end (those deleted meanwhile left out). */
  async relationsOf(entityId: string): Promise<{ outgoing: { relation: StoredRelation; other: StoredEntity }[]; incoming: { relation: StoredRelation; other: StoredEntity }[] }> {
    const [outIds, inIds] = await Promise.all([this.redis.zrange(outgoingKey(entityId), '0', '-1'), this.redis.zrange(incomingKey(entityId), '0', '-1')]);
    const relations = await readHashes(this.redis, [...outIds, ...inIds].map(relationKey), relationFromHash);
    const otherIds = relations.map((r, i) => (r ? (i < outIds.length ? r.toId : r.fromId) : ''));
    const others = await this.getEntities(otherIds.filter(Boolean));
    const byId = new Map(others.filter((e): e is StoredEntity => e !== undefined).map((e) => [e.id, e]));
    const outgoing: { relation: StoredRelation; other: StoredEntity }[] = [];
    const incoming: { relation: StoredRelation; other: StoredEntity }[] = [];
    relations.forEach((relation, i) => {
      const other = byId.get(otherIds[i]!);
      if (!relation || !other) return;
      (i < outIds.length ? outgoing : incoming).push({ relation, other });
    });
    return { outgoing, incoming };
  }
}
