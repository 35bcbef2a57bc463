// The history module's operations: messages are the caller's own (their owner is the actor that
// wrote them); reading a chat's transcript first asks `chats` whether the chat is the caller's.
import { inject, injectable } from 'tsyringe';
import type { Download, Handlers, Port } from '../../kernel/contract/define.js';
import { ContractError, isContractError } from '../../kernel/contract/errors.js';
import { currentContext, type Actor } from '../../kernel/context/request-context.js';
import { chatsContract, type ChatView } from '../chats/contract.js';
import type { historyContract, MessageView } from './contract.js';
import { MessageStore, view, type StoredMessage } from './message-store.js';
import { MessageIndex } from './message-index.js';
import { renderMarkdown } from './markdown-export.js';
import { analytics } from './analytics.js';

type UserActor = Extract<Actor, { type: 'user' }>;

function caller(): UserActor {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  return actor;
}

function parseSeqCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  const n = Number(cursor);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new ContractError('invalid_input', 'Invalid input: cursor: not a cursor from a previous page', [{ path: 'cursor', message: 'not a cursor from a previous page' }]);
  }
  return n;
}

const FINAL = new Set(['complete', 'stopped', 'failed']);
/** The first page of a prompt's history; each next page is four times the last (a long chat takes few round trips). */
const PROMPT_PAGE = 128;

/** A message that belongs in a model's prompt: a final user or assistant message with text, not replaced. */
function promptable(m: StoredMessage): boolean {
  if (m.role !== 'user' && m.role !== 'assistant') return false;
  if (m.supersededBy || (m.status !== 'complete' && m.status !== 'stopped')) return false;
  return m.content.trim().length > 0;
}

@injectable()
export class HistoryService implements Handlers<typeof historyContract> {
  constructor(
    @inject(MessageStore) private readonly store: MessageStore,
    @inject(MessageIndex) private readonly index: MessageIndex,
    @inject(chatsContract.token) private readonly chats: Port<typeof chatsContract>,
  ) {}

  private async ownMessage(id: string): Promise<StoredMessage> {
    const user = caller();
    const m = await this.store.get(id);
    if (!m || m.ownerId !== user.id) throw new ContractError('not_found', 'no such message');
    return m;
  }

  async appendMessage({ message }: { message: Omit<MessageView, 'usage' | 'citations' | 'toolCalls'> }): Promise<MessageView> {
    const user = caller();
    const stored: StoredMessage = { ...message, ownerId: user.id };
    // The index entry is stored with the message, in the same script: durable together, and the answer
    // does not wait for the index to apply it (a search on this instance does: see searchMessages).
    const r = await this.store.append(stored, FINAL.has(stored.status) ? this.index.entryFor(stored) : undefined);
    if (r.stored) {
      this.index.written(r.entryId);
      return view(stored);
    }
    // The same id again (a repeated saga step): the stored message, if it is the caller's.
    const existing = await this.ownMessage(message.id);
    if (existing.chatId !== message.chatId) throw new ContractError('conflict', 'a message with this id exists in another chat');
    return view(existing);
  }

  async saveProgress({ id, content }: { id: string; content: string }) {
    const m = await this.ownMessage(id);
    if (m.status !== 'streaming') return { saved: false };
    return { saved: await this.store.saveProgress({ ...m, content }) };
  }

  async finishMessage(input: {
    id: string;
    status: 'complete' | 'stopped' | 'failed';
    content: string;
    model?: string;
    usage?: MessageView['usage'];
    error?: string;
    citations?: MessageView['citations'];
    toolCalls?: MessageView['toolCalls'];
    warnings?: MessageView['warnings'];
  }) {
    const m = await this.ownMessage(input.id);
    const next: StoredMessage = {
      ...m,
      status: input.status,
      content: input.content,
      ...(input.model ? { model: input.model } : {}),
      ...(input.usage ? { usage: input.usage } : {}),
      ...(input.error ? { error: input.error } : {}),
      ...(input.citations?.length ? { citations: input.citations } : {}),
      ...(input.toolCalls?.length ? { toolCalls: input.toolCalls } : {}),
      ...(input.warnings?.length ? { warnings: input.warnings } : {}),
    };
    // Indexed in the same script when it applies (see appendMessage).
    const r = await this.store.finish(next, this.index.entryFor(next));
    if (!r.message) throw new ContractError('not_found', 'no such message');
    this.index.written(r.entryId);
    return { message: view(r.message), messageCount: r.count, applied: r.applied };
  }

  async supersedeMessage({ id, by }: { id: string; by: string }): Promise<MessageView> {
    const m = await this.ownMessage(id);
    if (m.role !== 'assistant') throw new ContractError('invalid_input', 'Invalid input: id: only an assistant answer can be replaced', [{ path: 'id', message: 'not an assistant message' }]);
    if (m.supersededBy === by) return view(m);
    const next = { ...m, supersededBy: by };
    await this.store.put(next);
    return view(next);
  }

  async getMessage({ id }: { id: string }): Promise<MessageView> {
    return view(await this.ownMessage(id));
  }

  async listMessages(input: { chatId: string; limit: number; cursor?: string; order: 'asc' | 'desc' }) {
    const user = caller();
    const after = parseSeqCursor(input.cursor);
    await this.chats.getChat({ id: input.chatId });
    const page = await this.store.page(input.chatId, input.order, input.limit, after);
    const msgs = await this.store.getMany(page.ids);
    const items = msgs.filter((m): m is StoredMessage => m !== undefined && m.ownerId === user.id).map(view);
    return { items, nextCursor: page.next };
  }

  /**
   * What a prompt can use of a chat, newest first, read a page at a time in one round trip each (pages
   * growing fourfold: a chat of 2,000 messages whose whole history fits the model's window takes three)
   * and without the transcript's full view: only role and text travel back. Messages of other owners never
   * come back (the chat itself is checked by the caller that builds the prompt).
   */
  async recentForPrompt({ chatId, maxChars }: { chatId: string; maxChars: number }) {
    const user = caller();
    const items: { role: 'user' | 'assistant'; content: string }[] = [];
    let chars = 0;
    for (let from = 0, size = PROMPT_PAGE; ; from += size, size *= 4) {
      const page = await this.store.newest(chatId, from, from + size - 1);
      for (const m of page) {
        if (!m || m.ownerId !== user.id || !promptable(m)) continue;
        items.push({ role: m.role as 'user' | 'assistant', content: m.content });
        chars += m.content.length;
        if (chars > maxChars) return { items };
      }
      if (page.length < size) return { items };
    }
  }

  async exportChat({ id, format }: { id: string; format: 'json' | 'markdown' }) {
    const user = caller();
    const chat = await this.chats.getChat({ id });
    const ids = await this.store.allIds(id);
    const messages: MessageView[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      for (const m of await this.store.getMany(ids.slice(i, i + 500))) if (m && m.ownerId === user.id) messages.push(view(m));
    }
    const exportedAt = new Date().toISOString();
    const base = (chat.title ?? 'chat').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'chat';
    if (format === 'markdown') {
      return { format, filename: `${base}.md`, exportedAt, chat, content: renderMarkdown(chat, messages, exportedAt) };
    }
    return { format, filename: `${base}.json`, exportedAt, chat, messages };
  }

  async downloadExport(input: { id: string; format: 'json' | 'markdown' }): Promise<Download> {
    const out = await this.exportChat(input);
    const text = out.format === 'markdown' ? out.content! : `${JSON.stringify({ exportedAt: out.exportedAt, chat: out.chat, messages: out.messages }, null, 2)}\n`;
    const bytes = Buffer.from(text, 'utf8');
    return {
      contentType: out.format === 'markdown' ? 'text/markdown; charset=utf-8' : 'application/json; charset=utf-8',
      size: bytes.length,
      fileName: out.filename,
      disposition: 'attachment',
      body: (async function* () {
        yield bytes;
      })(),
    };
  }

  async searchMessages(input: { q: string; chatId?: string; limit: number }) {
    const user = caller();
    if (input.chatId) await this.chats.getChat({ id: input.chatId });
    // What this instance wrote (the caller's own messages just saved, say) shows in the results.
    await this.index.caughtUp();
    const hits = this.index.search(user.id, input.q, input.limit, input.chatId);
    const msgs = await this.store.getMany(hits.map((h) => h.id));
    const chatIds = [...new Set(msgs.filter((m) => m).map((m) => m!.chatId))];
    const chats = new Map<string, ChatView | null>();
    await Promise.all(
      chatIds.map(async (cid) => {
        try {
          chats.set(cid, await this.chats.getChat({ id: cid }));
        } catch (err) {
          // A chat deleted a moment ago: its messages are on their way out of the index.
          if (isContractError(err) && err.code === 'not_found') chats.set(cid, null);
          else throw err;
        }
      }),
    );
    const items = [];
    for (const [i, hit] of hits.entries()) {
      const m = msgs[i];
      if (!m || m.ownerId !== user.id || !chats.get(m.chatId)) continue;
      items.push({ message: view(m), chatId: m.chatId, chatTitle: chats.get(m.chatId)!.title, highlight: hit.highlight, score: hit.score });
    }
    return { items };
  }

  async conversationAnalytics(input: { scope: 'own' | 'all'; days: number }) {
    const user = caller();
    if (input.scope === 'all' && !user.roles.includes('admin')) throw new ContractError('forbidden', 'scope=all needs the admin role');
    const to = Date.now();
    const from = to - input.days * 86_400_000;
    const ids = await this.store.idsBetween(input.scope === 'all' ? undefined : user.id, from, to);
    const msgs: StoredMessage[] = [];
    for (let i = 0; i < ids.length; i += 1000) for (const m of await this.store.getMany(ids.slice(i, i + 1000))) if (m) msgs.push(m);
    return analytics(input.scope, from, to, msgs);
  }

  /** `chats.chat.deleted`: the chat's messages go, from the store and the index. Safe to repeat. */
  async removeChat(chatId: string, ownerId: string): Promise<void> {
    const removed = await this.store.deleteChat(chatId);
    await this.index.remove(ownerId, removed.map((r) => r.id));
  }
}
