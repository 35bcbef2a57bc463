// Chats in Redis (database 4, prefix `chats:`): a hash per chat and, per owner, a sorted set of chat
// ids scored by last activity (ms), which is the list order. Writes that touch both are one Lua script.
import { randomBytes } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import { ModuleRedis } from '../../kernel/module/tokens.js';
import type { ChatView } from './contract.js';
import { runScript } from '../../kernel/redis/lua-script.js';

export interface StoredChat extends ChatView {
  ownerId: string;
}

const chatKey = (id: string) => `chat:${id}`;
const ownerKey = (ownerId: string) => `owner:${ownerId}`;

export function newChatId(): string {
  return `c_${Date.now().toString(16).padStart(12, '0')}${randomBytes(6).toString('hex')}`;
}

// KEYS: chat hash, owner index. ARGV: id, score, then field/value pairs.
const CREATE = `
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1`;

// KEYS: chat hash, owner index. ARGV: id, messageCount, lastActivityAt (ISO), its ms, updatedAt, ownerId.
// The count never goes down and the activity never moves back: turns may report out of order.
// Answers the chat's hash after the change (0: no such chat of that owner).
const ACTIVITY = `
if redis.call('HGET', KEYS[1], 'ownerId') ~= ARGV[6] then return 0 end
local count = tonumber(redis.call('HGET', KEYS[1], 'messageCount') or '0')
if tonumber(ARGV[2]) > count then redis.call('HSET', KEYS[1], 'messageCount', ARGV[2]) end
local last = tonumber(redis.call('HGET', KEYS[1], 'lastActivityMs') or '0')
if tonumber(ARGV[4]) > last then
  redis.call('HSET', KEYS[1], 'lastActivityAt', ARGV[3], 'lastActivityMs', ARGV[4], 'updatedAt', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return redis.call('HGETALL', KEYS[1])`;

// KEYS: chat hash. ARGV: title, updatedAt. Only while untitled.
const TITLE_IF_NONE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local t = redis.call('HGET', KEYS[1], 'title')
if t and t ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'title', ARGV[1], 'updatedAt', ARGV[2])
return 1`;

// KEYS: chat hash, owner index. ARGV: id.
const DELETE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`;

function fromHash(h: Record<string, string>): StoredChat | undefined {
  if (!h.id) return undefined;
  return {
    id: h.id,
    ownerId: h.ownerId ?? '',
    title: h.title ? h.title : null,
    model: h.model ? h.model : null,
    systemPrompt: h.hasSystemPrompt === '1' ? (h.systemPrompt ?? '') : null,
    useKnowledge: h.useKnowledge === '1',
    createdAt: h.createdAt ?? '',
    updatedAt: h.updatedAt ?? '',
    lastActivityAt: h.lastActivityAt ?? h.createdAt ?? '',
    messageCount: Number(h.messageCount ?? 0),
  };
}

export function view(c: StoredChat): ChatView {
  const { ownerId: _owner, ...rest } = c;
  return rest;
}

@injectable()
export class ChatStore {
  constructor(@inject(ModuleRedis) private readonly redis: Redis) {}

  async create(c: StoredChat): Promise<void> {
    const fields: Record<string, string> = {
      id: c.id,
      ownerId: c.ownerId,
      title: c.title ?? '',
      model: c.model ?? '',
      systemPrompt: c.systemPrompt ?? '',
      hasSystemPrompt: c.systemPrompt === null ? '0' : '1',
      useKnowledge: c.useKnowledge ? '1' : '0',
      createdAt: c.createdAt,
      updatedAt: c.updatedAt,
      lastActivityAt: c.lastActivityAt,
      lastActivityMs: String(Date.parse(c.lastActivityAt)),
      messageCount: String(c.messageCount),
    };
    await runScript(this.redis, CREATE, 2, chatKey(c.id), ownerKey(c.ownerId), c.id, Date.parse(c.lastActivityAt), ...Object.entries(fields).flat());
  }

  async get(id: string): Promise<StoredChat | undefined> {
    return fromHash(await this.redis.hgetall(chatKey(id)));
  }

  async update(id: string, patch: { title?: string | null; model?: string | null; systemPrompt?: string | null; useKnowledge?: boolean }, updatedAt: string): Promise<void> {
    const fields: string[] = ['updatedAt', updatedAt];
    if (patch.title !== undefined) fields.push('title', patch.title ?? '');
    if (patch.model !== undefined) fields.push('model', patch.model ?? '');
    if (patch.systemPrompt !== undefined) fields.push('systemPrompt', patch.systemPrompt ?? '', 'hasSystemPrompt', patch.systemPrompt === null ? '0' : '1');
    if (patch.useKnowledge !== undefined) fields.push('useKnowledge', patch.useKnowledge ? '1' : '0');
    // Only an existing chat: a concurrent delete must not be resurrected as a half hash.
    await runScript(this.redis, `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], unpack(ARGV)) end return 1`, 1, chatKey(id), ...fields);
  }

  /** The chat as it is after the change; undefined when there is no such chat of `ownerId`. */
  async recordActivity(id: string, ownerId: string, messageCount: number, lastActivityAt: string, now: string): Promise<StoredChat | undefined> {
    const r = (await runScript(this.redis, ACTIVITY, 2, chatKey(id), ownerKey(ownerId), id, messageCount, lastActivityAt, Date.parse(lastActivityAt), now, ownerId)) as string[] | 0;
    if (!r) return undefined;
    const h: Record<string, string> = {};
    for (let i = 0; i + 1 < r.length; i += 2) h[r[i]!] = r[i + 1]!;
    return fromHash(h);
  }

  /** 1 set, 0 the chat has a title already, -1 no such chat. */
  async setTitleIfNone(id: string, title: string, now: string): Promise<number> {
    return (await runScript(this.redis, TITLE_IF_NONE, 1, chatKey(id), title, now)) as number;
  }

  async delete(c: StoredChat): Promise<boolean> {
    return (await runScript(this.redis, DELETE, 2, chatKey(c.id), ownerKey(c.ownerId), c.id)) === 1;
  }

  /**
   * Most recent first. The cursor is `<score>.<id>` of the last item shown; members with the same
   * score come in descending id order, so (score, id) is a total order to resume after.
   */
  async list(ownerId: string, limit: number, cursor?: { score: number; id: string }): Promise<{ items: StoredChat[]; nextCursor: string | null }> {
    const max = cursor ? String(cursor.score) : '+inf';
    // Enough extra rows to step over the ties at the cursor's score.
    const raw = await this.redis.zrevrangebyscore(ownerKey(ownerId), max, '-inf', 'WITHSCORES', 'LIMIT', 0, limit + 1 + (cursor ? 64 : 0));
    const entries: { id: string; score: number }[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) entries.push({ id: raw[i]!, score: Number(raw[i + 1]) });
    const after = cursor ? entries.filter((e) => e.score < cursor.score || (e.score === cursor.score && e.id < cursor.id)) : entries;
    const page = after.slice(0, limit);
    const pipeline = this.redis.pipeline();
    for (const e of page) pipeline.hgetall(chatKey(e.id));
    const rows = (await pipeline.exec()) ?? [];
    const items = rows.map(([, h]) => fromHash(h as Record<string, string>)).filter((c): c is StoredChat => c !== undefined);
    const last = page[page.length - 1];
    return { items, nextCursor: after.length > limit && last ? `${last.score}.${last.id}` : null };
  }
}
