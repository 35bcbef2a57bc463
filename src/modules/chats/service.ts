// The chats module's operations. Every operation acts for the signed-in caller and sees only the
// caller's chats; another user's chat answers not_found, exactly like one that does not exist.
import { inject, injectable } from 'tsyringe';
import type { Handlers } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext, type Actor } from '../../kernel/context/request-context.js';
import { ModuleEventsToken, RealtimeToken, type ModuleEvents } from '../../kernel/module/tokens.js';
import type { Realtime } from '../../kernel/realtime/realtime.js';
import { ChatStore, newChatId, view, type StoredChat } from './chat-store.js';
import type { chatsContract, ChatView } from './contract.js';

type UserActor = Extract<Actor, { type: 'user' }>;

function caller(): UserActor {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  return actor;
}

function parseCursor(cursor: string | undefined): { score: number; id: string } | undefined {
  if (!cursor) return undefined;
  const dot = cursor.indexOf('.');
  const score = Number(cursor.slice(0, dot));
  const id = cursor.slice(dot + 1);
  if (dot < 1 || !Number.isSafeInteger(score) || !id) {
    throw new ContractError('invalid_input', 'Invalid input: cursor: not a cursor from a previous page', [{ path: 'cursor', message: 'not a cursor from a previous page' }]);
  }
  return { score, id };
}

@injectable()
export class ChatsService implements Handlers<typeof chatsContract> {
  constructor(
    @inject(ChatStore) private readonly store: ChatStore,
    @inject(ModuleEventsToken) private readonly events: ModuleEvents,
    @inject(RealtimeToken) private readonly realtime: Realtime,
  ) {}

  /** The caller's chat, or not_found (also when it is someone else's). */
  private async own(id: string): Promise<StoredChat> {
    const user = caller();
    const chat = await this.store.get(id);
    if (!chat || chat.ownerId !== user.id) throw new ContractError('not_found', 'no such chat');
    return chat;
  }

  private pushUpdated(chat: StoredChat): void {
    this.realtime.toUser(chat.ownerId, 'chat:updated', { chat: view(chat) });
  }

  async createChat(input: { title?: string; model?: string; systemPrompt?: string; useKnowledge?: boolean }): Promise<ChatView> {
    const user = caller();
    const now = new Date().toISOString();
    const chat: StoredChat = {
      id: newChatId(),
      ownerId: user.id,
      title: input.title ?? null,
      model: input.model ?? null,
      systemPrompt: input.systemPrompt ?? null,
      useKnowledge: input.useKnowledge ?? false,
      createdAt: now,
      updatedAt: now,
      lastActivityAt: now,
      messageCount: 0,
    };
    await this.store.create(chat);
    return view(chat);
  }

  async listChats(input: { limit: number; cursor?: string }) {
    const user = caller();
    const page = await this.store.list(user.id, input.limit, parseCursor(input.cursor));
    return { items: page.items.map(view), nextCursor: page.nextCursor };
  }

  async getChat({ id }: { id: string }): Promise<ChatView> {
    return view(await this.own(id));
  }

  async updateChat(input: { id: string; title?: string | null; model?: string | null; systemPrompt?: string | null; useKnowledge?: boolean }): Promise<ChatView> {
    await this.own(input.id);
    const { id, ...patch } = input;
    await this.store.update(id, patch, new Date().toISOString());
    const updated = await this.own(id);
    this.pushUpdated(updated);
    return view(updated);
  }

  async deleteChat({ id }: { id: string }): Promise<null> {
    const chat = await this.own(id);
    await this.store.delete(chat);
    // Announced after the chat is gone; history removes the messages (idempotently, at least once).
    await this.events.publish('chats.chat.deleted', { chatId: chat.id, ownerId: chat.ownerId });
    return null;
  }

  leaveChat({ chatId }: { chatId: string }): { chatId: string } {
    caller();
    return { chatId };
  }

  async recordActivity(input: { id: string; messageCount: number; lastActivityAt: string }): Promise<ChatView> {
    // One script: checks that the chat is the caller's, records, and answers the chat as it left it.
    const updated = await this.store.recordActivity(input.id, caller().id, input.messageCount, input.lastActivityAt, new Date().toISOString());
    if (!updated) throw new ContractError('not_found', 'no such chat');
    this.pushUpdated(updated);
    return view(updated);
  }

  async setGeneratedTitle(input: { id: string; title: string }) {
    await this.own(input.id);
    const r = await this.store.setTitleIfNone(input.id, input.title, new Date().toISOString());
    const chat = await this.own(input.id);
    if (r === 1) this.pushUpdated(chat);
    return { chat: view(chat), applied: r === 1 };
  }
}
