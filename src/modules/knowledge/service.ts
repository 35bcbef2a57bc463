// The knowledge module's operations. Who may do what:
// - facts, categories and entities belong to their owner; another user's private one is `not_found`,
//   in every read, write and list;
// - a shared fact (only an admin changes `shared`, either way) is readable by every user and listed for
//   everyone, but only its owner changes or deletes it: anyone else who can see it gets `forbidden`;
// - an admin can read any fact by id (to decide on sharing it) and change only its `shared` flag; lists
//   never show an admin other users' private facts.
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { Handlers, Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext, type Actor } from '../../kernel/context/request-context.js';
import { ModuleEventsToken, ModuleLogger, ModuleRedis, type ModuleEvents } from '../../kernel/module/tokens.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import type { Redis } from 'ioredis';
import { configContract } from '../config/contract.js';
import { knowledgeContract, knowledgeSettings, MOVE_TO_ROOT } from './contract.js';
import { CategoryStore, type StoredCategory } from './category-store.js';
import { EntityStore, ownerEntitiesKey, ownerTypeKey, type AttributeValue, type StoredEntity } from './entity-store.js';
import {
  categoryFactsKey,
  FactStore,
  ownerFactsKey,
  ownerTagKey,
  SHARED_FACTS_KEY,
  sharedTagKey,
  type FactField,
  type FactPatch,
  type StoredFact,
} from './fact-store.js';
import { EmbeddingsSync } from './embeddings-sync.js';
import { pageOf } from './id-pager.js';
import { contentKey, normaliseContent, queryTerms } from './normalise.js';

type UserActor = Extract<Actor, { type: 'user' }>;

/** Records read at most to fill one filtered page. */
const SCAN_BUDGET = 2000; // stated in listFacts' summary

function signedIn(): UserActor {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  return actor;
}

const isAdmin = (a: UserActor) => a.roles.includes('admin');

function invalid(path: string, message: string): ContractError {
  return new ContractError('invalid_input', `Invalid input: ${path}: ${message}`, [{ path, message }]);
}

export function factView(f: StoredFact) {
  return {
    id: f.id,
    content: f.content,
    categoryId: f.categoryId,
    tags: f.tags,
    source: f.source,
    shared: f.shared,
    ownerId: f.ownerId,
    createdAt: f.createdAt,
    updatedAt: f.updatedAt,
  };
}

function entityView(e: StoredEntity) {
  return { id: e.id, name: e.name, type: e.type, attributes: e.attributes, createdAt: e.createdAt, updatedAt: e.updatedAt };
}

interface CategoryNode {
  id: string;
  name: string;
  parentId: string | null;
  factCount: number;
  totalFactCount: number;
  createdAt: string;
  children: CategoryNode[];
}

@injectable()
export class KnowledgeService implements Handlers<typeof knowledgeContract> {
  readonly settings: SettingsHolder<typeof knowledgeSettings>;

  constructor(
    @inject(FactStore) private readonly facts: FactStore,
    @inject(CategoryStore) private readonly categories: CategoryStore,
    @inject(EntityStore) private readonly entities: EntityStore,
    @inject(EmbeddingsSync) private readonly sync: EmbeddingsSync,
    @inject(ModuleRedis) private readonly redis: Redis,
    @inject(ModuleEventsToken) private readonly events: ModuleEvents,
    @inject(ModuleLogger) logger: Logger,
    @inject(configContract.token) config: Port<typeof configContract>,
  ) {
    this.settings = new SettingsHolder(knowledgeSettings, async () => (await config.getModuleSettings({ module: knowledgeContract.id })).settings, logger);
  }

  // ---- categories ----

  async listCategories() {
    const actor = signedIn();
    const [rows, allFacts] = await Promise.all([this.categories.listWithCounts(actor.id), this.redis.zcard(ownerFactsKey(actor.id))]);
    // Facts not filed in any of the owner's categories (categories only ever hold their owner's facts).
    const uncategorised = allFacts - rows.reduce((sum, c) => sum + c.factCount, 0);
    const nodes = new Map<string, CategoryNode>(
      rows.map((c) => [c.id, { id: c.id, name: c.name, parentId: c.parentId, factCount: c.factCount, totalFactCount: 0, createdAt: c.createdAt, children: [] }]),
    );
    const roots: CategoryNode[] = [];
    for (const node of nodes.values()) {
      const parent = node.parentId ? nodes.get(node.parentId) : undefined;
      (parent ? parent.children : roots).push(node);
    }
    const total = (n: CategoryNode): number => {
      n.children.sort((a, b) => a.name.localeCompare(b.name));
      n.totalFactCount = n.factCount + n.children.reduce((sum, c) => sum + total(c), 0);
      return n.totalFactCount;
    };
    roots.sort((a, b) => a.name.localeCompare(b.name));
    roots.forEach(total);
    return { items: roots, uncategorizedFactCount: uncategorised };
  }

  async createCategory({ name, parentId }: { name: string; parentId?: string | null | undefined }) {
    const actor = signedIn();
    const s = this.settings.current();
    const c = await this.categories.create({ ownerId: actor.id, name, parentId: parentId ?? null }, { maxCategories: s.maxCategoriesPerUser, maxDepth: s.maxCategoryDepth });
    return { id: c.id, name: c.name, parentId: c.parentId, createdAt: c.createdAt };
  }

  async updateCategory({ id, name, parentId }: { id: string; name?: string | undefined; parentId?: string | null | undefined }) {
    const actor = signedIn();
    const change: { name?: string; parentId?: string | null } = {};
    if (name !== undefined) change.name = name;
    if (parentId !== undefined) change.parentId = parentId;
    const c = await this.categories.update(actor.id, id, change, this.settings.current().maxCategoryDepth);
    return { id: c.id, name: c.name, parentId: c.parentId, createdAt: c.createdAt };
  }

  async deleteCategory({ id, moveTo }: { id: string; moveTo?: string | undefined }) {
    const actor = signedIn();
    const { movedFacts } = await this.categories.delete(actor.id, id, moveTo, this.settings.current().maxCategoryDepth);
    // The moved facts changed category: the indexes that filter by category must hear of it.
    for (const fact of await this.facts.getMany(movedFacts)) {
      if (fact) await this.publishUpdated(fact, ['categoryId']);
    }
    return null;
  }

  // ---- facts ----

  async createFact(input: { content: string; categoryId?: string | null | undefined; tags?: string[] | undefined; source?: string | null | undefined; shared?: boolean | undefined }) {
    const actor = signedIn();
    if (input.shared && !isAdmin(actor)) throw new ContractError('forbidden', 'only an admin can share a fact');
    const norm = this.checkContent(input.content);
    const fact = await this.facts.create({
      ownerId: actor.id,
      content: input.content,
      norm,
      categoryId: input.categoryId ?? null,
      tags: input.tags ?? [],
      source: input.source || null,
      shared: input.shared ?? false,
    });
    await this.events.publish('knowledge.fact.created', { ...this.eventBase(fact), content: fact.content });
    return factView(fact);
  }

  async listFacts(input: { limit: number; cursor?: string | undefined; categoryId?: string | undefined; tag?: string | undefined; q?: string | undefined }) {
    const actor = signedIn();
    let keys: string[];
    if (input.categoryId) {
      const own = await this.categories.listWithCounts(actor.id);
      keys = this.subtree(own, input.categoryId).map(categoryFactsKey);
    } else if (input.tag) {
      keys = [ownerTagKey(actor.id, input.tag), sharedTagKey(input.tag)];
    } else {
      keys = [ownerFactsKey(actor.id), SHARED_FACTS_KEY];
    }
    const terms = input.q ? queryTerms(input.q) : [];
    const page = await pageOf(this.redis, {
      keys,
      limit: input.limit,
      cursor: input.cursor,
      load: (ids) => this.facts.getMany(ids),
      scanBudget: SCAN_BUDGET,
      // Unfiltered, every id read from the caller's and the shared set is kept.
      selective: Boolean(input.tag || input.q || input.categoryId),
      keep: (f) => {
        if (f.ownerId !== actor.id && !f.shared) return false;
        if (input.tag && !f.tags.includes(input.tag)) return false;
        if (terms.length) {
          const text = normaliseContent(f.content);
          if (!terms.every((t) => text.includes(t))) return false;
        }
        return true;
      },
    });
    return { items: page.items.map(factView), nextCursor: page.nextCursor };
  }

  /** A category of the caller and all below it; someone else's (or an unknown) id only itself, so the
   * filter still finds the shared facts filed there and nothing private. */
  private subtree(own: StoredCategory[], rootId: string): string[] {
    if (!own.some((c) => c.id === rootId)) return [rootId];
    const children = new Map<string, string[]>();
    for (const c of own) if (c.parentId) children.set(c.parentId, [...(children.get(c.parentId) ?? []), c.id]);
    const out: string[] = [];
    const stack = [rootId];
    while (stack.length) {
      const id = stack.pop()!;
      out.push(id);
      stack.push(...(children.get(id) ?? []));
    }
    return out;
  }

  async getFact({ id }: { id: string }) {
    const actor = signedIn();
    return factView(await this.readable(actor, id));
  }

  async updateFact(input: {
    id: string;
    content?: string | undefined;
    categoryId?: string | null | undefined;
    tags?: string[] | undefined;
    source?: string | null | undefined;
    shared?: boolean | undefined;
  }) {
    const actor = signedIn();
    const current = await this.readable(actor, input.id);
    const owner = current.ownerId === actor.id;
    const sharing = input.shared !== undefined && input.shared !== current.shared;
    const other = (['content', 'categoryId', 'tags', 'source'] as const).filter((k) => input[k] !== undefined);
    if (!owner && (other.length > 0 || !isAdmin(actor))) {
      throw new ContractError('forbidden', isAdmin(actor) ? "an admin may only share or unshare another user's fact" : 'only the owner can change this fact');
    }
    if (sharing && !isAdmin(actor)) throw new ContractError('forbidden', 'only an admin can share or unshare a fact');

    const patch: FactPatch = {};
    if (input.content !== undefined) Object.assign(patch, { content: input.content, norm: this.checkContent(input.content) });
    if (input.categoryId !== undefined) patch.categoryId = input.categoryId;
    if (input.tags !== undefined) patch.tags = input.tags;
    if (input.source !== undefined) patch.source = input.source || null;
    if (sharing) patch.shared = input.shared;
    const { fact, changes } = await this.facts.update(input.id, patch);
    if (changes.length) await this.publishUpdated(fact, changes);
    return factView(fact);
  }

  async deleteFact({ id }: { id: string }) {
    const actor = signedIn();
    const current = await this.readable(actor, id);
    if (current.ownerId !== actor.id) throw new ContractError('forbidden', 'only the owner can delete this fact');
    const fact = await this.facts.delete(id);
    await this.events.publish('knowledge.fact.deleted', { ...this.eventBase(fact), rev: fact.rev + 1 });
    return null;
  }

  async reindexFacts() {
    const actor = signedIn();
    if (!isAdmin(actor)) throw new ContractError('forbidden', 'this needs the admin role');
    return { queued: await this.sync.enqueueAll() };
  }

  /** The fact if the caller may read it; `not_found` otherwise, exactly as if it did not exist. */
  private async readable(actor: UserActor, id: string): Promise<StoredFact> {
    const fact = await this.facts.get(id);
    if (!fact || (fact.ownerId !== actor.id && !fact.shared && !isAdmin(actor))) throw new ContractError('not_found', 'no such fact');
    return fact;
  }

  /** The dedupe digest of valid content, or invalid_input naming `content`. */
  private checkContent(content: string): string {
    const max = this.settings.current().maxFactLength;
    if (content.length > max) throw invalid('content', `at most ${max} characters`);
    if (normaliseContent(content) === '') throw invalid('content', 'must say something besides punctuation');
    return contentKey(content);
  }

  private eventBase(f: StoredFact) {
    return { factId: f.id, ownerId: f.ownerId, shared: f.shared, categoryId: f.categoryId, tags: f.tags, rev: f.rev };
  }

  private async publishUpdated(fact: StoredFact, changes: FactField[]) {
    await this.events.publish('knowledge.fact.updated', { ...this.eventBase(fact), content: fact.content, changes });
  }

  /**
   * Removes everything a deleted user owned: their facts (announced as deleted, so every index drops
   * them, shared ones included), categories and entities with their relations. Safe to run again.
   */
  async purgeOwner(ownerId: string): Promise<void> {
    for (;;) {
      const ids = await this.redis.zrange(ownerFactsKey(ownerId), '0', '99');
      if (ids.length === 0) break;
      for (const id of ids) {
        const fact = await this.facts.delete(id).catch((err: { code?: string }) => {
          if (err.code === 'not_found') return undefined;
          throw err;
        });
        if (fact) await this.events.publish('knowledge.fact.deleted', { ...this.eventBase(fact), rev: fact.rev + 1 });
      }
    }
    // Deepest first, so each category is empty when its turn comes.
    const categories = await this.categories.listWithCounts(ownerId);
    const byId = new Map(categories.map((c) => [c.id, c]));
    const depth = (c: StoredCategory): number => (c.parentId && byId.has(c.parentId) ? 1 + depth(byId.get(c.parentId)!) : 0);
    for (const c of [...categories].sort((a, b) => depth(b) - depth(a))) {
      await this.categories.delete(ownerId, c.id, MOVE_TO_ROOT, Number.MAX_SAFE_INTEGER).catch((err: { code?: string }) => {
        if (err.code !== 'not_found') throw err;
      });
    }
    for (;;) {
      const ids = await this.redis.zrange(ownerEntitiesKey(ownerId), '0', '99');
      if (ids.length === 0) break;
      for (const id of ids) {
        await this.entities.deleteEntity(ownerId, id).catch((err: { code?: string }) => {
          if (err.code !== 'not_found') throw err;
        });
      }
    }
  }

  // ---- entities and relations ----

  async listEntities(input: { limit: number; cursor?: string | undefined; type?: string | undefined; q?: string | undefined }) {
    const actor = signedIn();
    const q = input.q?.normalize('NFKC').toLowerCase();
    const page = await pageOf(this.redis, {
      keys: [input.type ? ownerTypeKey(actor.id, input.type) : ownerEntitiesKey(actor.id)],
      limit: input.limit,
      cursor: input.cursor,
      load: (ids) => this.entities.getEntities(ids),
      scanBudget: SCAN_BUDGET,
      selective: Boolean(q),
      keep: (e) => e.ownerId === actor.id && (!q || e.name.normalize('NFKC').toLowerCase().includes(q)),
    });
    return { items: page.items.map(entityView), nextCursor: page.nextCursor };
  }

  async createEntity(input: { name: string; type: string; attributes?: Record<string, AttributeValue> | undefined }) {
    const actor = signedIn();
    return entityView(await this.entities.createEntity({ ownerId: actor.id, name: input.name, type: input.type, attributes: input.attributes ?? {} }));
  }

  async getEntity({ id }: { id: string }) {
    const actor = signedIn();
    const entity = await this.entities.getEntity(id);
    if (!entity || entity.ownerId !== actor.id) throw new ContractError('not_found', 'no such entity');
    const { outgoing, incoming } = await this.entities.relationsOf(id);
    const linked = ({ relation, other }: { relation: { id: string; type: string; createdAt: string }; other: StoredEntity }) => ({
      id: relation.id,
      type: relation.type,
      entity: { id: other.id, name: other.name, type: other.type },
      createdAt: relation.createdAt,
    });
    return { ...entityView(entity), relations: { outgoing: outgoing.map(linked), incoming: incoming.map(linked) } };
  }

  async updateEntity(input: { id: string; name?: string | undefined; type?: string | undefined; attributes?: Record<string, AttributeValue> | undefined }) {
    const actor = signedIn();
    const patch: { name?: string; type?: string; attributes?: Record<string, AttributeValue> } = {};
    if (input.name !== undefined) patch.name = input.name;
    if (input.type !== undefined) patch.type = input.type;
    if (input.attributes !== undefined) patch.attributes = input.attributes;
    return entityView(await this.entities.updateEntity(actor.id, input.id, patch));
  }

  async deleteEntity({ id }: { id: string }) {
    await this.entities.deleteEntity(signedIn().id, id);
    return null;
  }

  async createRelation(input: { fromId: string; toId: string; type: string }) {
    const actor = signedIn();
    if (input.fromId === input.toId) throw invalid('toId', 'a relation joins two different entities');
    const r = await this.entities.createRelation({ ownerId: actor.id, ...input }, this.settings.current().maxRelationsPerEntity);
    return { id: r.id, fromId: r.fromId, toId: r.toId, type: r.type, createdAt: r.createdAt };
  }

  async deleteRelation({ id }: { id: string }) {
    await this.entities.deleteRelation(signedIn().id, id);
    return null;
  }
}
