// The keyword index over messages: one partition per owner (a query can only reach its owner's
// messages), built on the kernel's shared keyword-index machinery (MiniSearch in memory, made durable
// and shared across instances by a change log in Redis). Only final messages with text are indexed.
import { inject, injectable } from 'tsyringe';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ModuleLogger, ModuleRedis } from '../../kernel/module/tokens.js';
import { KeywordIndex, type KeywordHit } from '../../kernel/text-index/keyword-index.js';
import type { StoredMessage } from './message-store.js';

@injectable()
export class MessageIndex {
  readonly index: KeywordIndex;

  constructor(@inject(ModuleRedis) redis: Redis, @inject(ModuleLogger) logger: Logger) {
    this.index = new KeywordIndex({ redis, name: 'search', logger });
  }

  start(): Promise<void> {
    return this.index.start();
  }

  stop(): Promise<void> {
    return this.index.stop();
  }

  /**
   * The index entry of a message, for the store to write in the same script as the message itself
   * (message and entry are durable together; nobody waits for the index to apply it). Undefined for a
   * message that is not indexed (streaming, or without text).
   */
  entryFor(m: StoredMessage): { key: string; fields: string[] } | undefined {
    if (!m.content.trim() || m.status === 'streaming') return undefined;
    return this.index.addEntry(m.ownerId, [{ id: m.id, text: m.content, fields: { chatId: m.chatId } }]);
  }

  /** The log id a store script wrote: a search on this instance waits until the index shows it. */
  written(id: string | null): void {
    if (id) this.index.written(id);
  }

  async putMany(ownerId: string, msgs: StoredMessage[]): Promise<void> {
    await this.index.add(
      ownerId,
      msgs.filter((m) => m.content.trim() && m.status !== 'streaming').map((m) => ({ id: m.id, text: m.content, fields: { chatId: m.chatId } })),
    );
  }

  remove(ownerId: string, ids: string[]): Promise<void> {
    return this.index.remove(ownerId, ids);
  }

  /** Resolves once this instance's index shows what it wrote (read-your-writes for a search). */
  caughtUp(): Promise<void> {
    return this.index.caughtUp();
  }

  search(ownerId: string, q: string, limit: number, chatId?: string): KeywordHit[] {
    return this.index.search(ownerId, q, { limit, ...(chatId ? { filter: (f) => f.chatId === chatId } : {}) });
  }
}
