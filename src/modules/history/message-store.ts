// Messages in Redis (database 4, prefix `history:`):
//   m:<id>        the message as JSON (with its owner)
//   c:<chatId>    sorted set of the chat's message ids by sequence number (transcript order)
//   cseq:<chatId> the chat's sequence counter
//   u:<ownerId>   sorted set of the owner's message ids by creation time (analytics windows)
//   u:*           the same over every owner (admin analytics)
// Each write is one Lua script, so a message and its index entries appear and vanish together.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import type { MessageView } from './contract.js';
import { runScript } from '../../kernel/redis/lua-script.js';

export interface StoredMessage extends MessageView {
  ownerId: string;
}

/** A keyword index log entry to write with a message (see MessageIndex.entryFor). */
export interface IndexEntry {
  key: string;
  fields: string[];
}

const msgKey = (id: string) => `m:${id}`;
const chatKey = (chatId: string) => `c:${chatId}`;
const seqKey = (chatId: string) => `cseq:${chatId}`;
const ownerKey = (ownerId: string) => `u:${ownerId}`;
const ALL = 'u:*';

// The keyword index's log entry for a message (`IndexEntry`), when there is one, is written by the same
// script as the message (KEYS[n] the log, ARGV from `index` on its fields): message and entry are
// durable together, and nobody waits for the index to apply it. The scripts answer the entry's id.
const INDEX_ENTRY = (logKey: string, firstArg: number) => `
local entry = ''
if ${logKey} then entry = redis.call('XADD', ${logKey}, '*', unpack(ARGV, ${firstArg})) end`;

// KEYS: message, chat set, chat seq, owner set, all set, [index log]. ARGV: id, json, created ms,
// [index entry fields]. {1, entry id} stored, {0, ''} existed already (nothing written).
const APPEND = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ''} end
local seq = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
${INDEX_ENTRY('KEYS[6]', 4)}
return {1, entry}`;

// KEYS: message, chat set, [index log]. ARGV: json of the finished message, [index entry fields]. Only
// a streaming message changes. Answers {applied, current json, chat count, entry id}.
const FINISH = `
local cur = redis.call('GET', KEYS[1])
if not cur then return {-1, '', 0, ''} end
local count = redis.call('ZCARD', KEYS[2])
if not string.find(cur, '"status":"streaming"', 1, true) then return {0, cur, count, ''} end
redis.call('SET', KEYS[1], ARGV[1])
${INDEX_ENTRY('KEYS[3]', 2)}
return {1, ARGV[1], count, entry}`;

// KEYS: chat set. ARGV: first rank, last rank. The messages of a page of the chat, newest first, as
// stored (one round trip instead of a range and a read).
const NEWEST = `
local ids = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2])
if #ids == 0 then return {} end
for i, id in ipairs(ids) do ids[i] = ARGV[3] .. 'm:' .. id end
local out = redis.call('MGET', unpack(ids))
for i = 1, #out do if not out[i] then out[i] = '' end end
return out`;

// KEYS: message. ARGV: content json-escaped replacement of the whole message. Only while streaming.
const PROGRESS = `
local cur = redis.call('GET', KEYS[1])
if not cur or not string.find(cur, '"status":"streaming"', 1, true) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`;

export function view(m: StoredMessage): MessageView {
  const { ownerId: _owner, ...rest } = m;
  return rest;
}

function parse(json: string | null | undefined): StoredMessage | undefined {
  return json ? (JSON.parse(json) as StoredMessage) : undefined;
}

@injectable()
export class MessageStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  /**
   * Stores a new message, with its keyword index entry if given. `stored` false: a message with this
   * id existed (nothing written). `entryId`: the index log id written with it.
   */
  async append(m: StoredMessage, index?: IndexEntry): Promise<{ stored: boolean; entryId: string | null }> {
    const keys = [msgKey(m.id), chatKey(m.chatId), seqKey(m.chatId), ownerKey(m.ownerId), ALL, ...(index ? [index.key] : [])];
    const [stored, entry] = (await runScript(this.redis, APPEND, keys.length, ...keys, m.id, JSON.stringify(m), Date.parse(m.createdAt), ...(index?.fields ?? []))) as [number, string];
    return { stored: stored === 1, entryId: entry || null };
  }

  async get(id: string): Promise<StoredMessage | undefined> {
    return parse(await this.redis.get(msgKey(id)));
  }

  async getMany(ids: string[]): Promise<(StoredMessage | undefined)[]> {
    if (!ids.length) return [];
    return (await this.redis.mget(ids.map(msgKey))).map(parse);
  }

  async saveProgress(m: StoredMessage): Promise<boolean> {
    return (await runScript(this.redis, PROGRESS, 1, msgKey(m.id), JSON.stringify(m))) === 1;
  }

  /** Ends a streaming message (with its keyword index entry if given); a final one stays as it is. */
  async finish(m: StoredMessage, index?: IndexEntry): Promise<{ applied: boolean; message: StoredMessage | undefined; count: number; entryId: string | null }> {
    const keys = [msgKey(m.id), chatKey(m.chatId), ...(index ? [index.key] : [])];
    const [applied, json, count, entry] = (await runScript(this.redis, FINISH, keys.length, ...keys, JSON.stringify(m), ...(index?.fields ?? []))) as [number, string, number, string];
    return { applied: applied === 1, message: parse(json || undefined), count, entryId: entry || null };
  }

  /** The chat's messages from newest-first rank `from` (inclusive) to `to`, in one round trip. */
  async newest(chatId: string, from: number, to: number): Promise<(StoredMessage | undefined)[]> {
    const raw = (await runScript(this.redis, NEWEST, 1, chatKey(chatId), from, to, this.redis.options.keyPrefix ?? '')) as string[];
    return raw.map((json) => parse(json || undefined));
  }

  /** Rewrites a message whatever its state (supersededBy marks). */
  async put(m: StoredMessage): Promise<void> {
    await this.redis.set(msgKey(m.id), JSON.stringify(m), 'XX');
  }

  async count(chatId: string): Promise<number> {
    return this.redis.zcard(chatKey(chatId));
  }

  /** A page of ids with their sequence numbers; the cursor is the last sequence number shown. */
  async page(chatId: string, order: 'asc' | 'desc', limit: number, after?: number): Promise<{ ids: string[]; next: string | null }> {
    const raw =
      order === 'asc'
        ? await this.redis.zrangebyscore(chatKey(chatId), after === undefined ? '-inf' : `(${after}`, '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
        : await this.redis.zrevrangebyscore(chatKey(chatId), after === undefined ? '+inf' : `(${after}`, '-inf', 'WITHSCORES', 'LIMIT', 0, limit + 1);
    const ids: string[] = [];
    const seqs: string[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      ids.push(raw[i]!);
      seqs.push(raw[i + 1]!);
    }
    const more = ids.length > limit;
    return { ids: ids.slice(0, limit), next: more ? seqs[limit - 1]! : null };
  }

  async allIds(chatId: string): Promise<string[]> {
    return this.redis.zrange(chatKey(chatId), '0', '-1');
  }

  /** Removes a chat's messages; safe to repeat. Answers the removed messages' ids and owners. */
  async deleteChat(chatId: string): Promise<{ id: string; ownerId: string }[]> {
    const ids = await this.allIds(chatId);
    const removed: { id: string; ownerId: string }[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500);
      const msgs = await this.getMany(batch);
      const multi = this.redis.multi();
      for (const [j, m] of msgs.entries()) {
        const mid = batch[j]!;
        multi.del(msgKey(mid));
        multi.zrem(ALL, mid);
        if (m) {
          multi.zrem(ownerKey(m.ownerId), mid);
          removed.push({ id: mid, ownerId: m.ownerId });
        }
      }
      multi.zrem(chatKey(chatId), ...batch);
      await multi.exec();
    }
    await this.redis.del(chatKey(chatId), seqKey(chatId));
    return removed;
  }

  /** Ids of messages created in [fromMs, toMs] of an owner, or of everyone. */
  async idsBetween(ownerId: string | undefined, fromMs: number, toMs: number): Promise<string[]> {
    return this.redis.zrangebyscore(ownerId === undefined ? ALL : ownerKey(ownerId), String(fromMs), String(toMs));
  }
}
