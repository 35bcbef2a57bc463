// The knowledge module's contract, run against the local and the HTTP binding: facts with dedupe by
// normalised content (also under concurrent creates), lists with filters and paging, the category tree
// with counts and deletes that move what they hold, entities with relations both ways, visibility across
// two users and an admin, the fact events, and the vector sync to the embeddings module (a stand-in
// serving the real embeddings contract) that must never hold up a fact write. Then the REST routes.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import type { AnyModule } from '../../../src/kernel/module/define-module.js';
import { authContract } from '../../../src/modules/auth/contract.js';
import { authModule } from '../../../src/modules/auth/module.js';
import { configModule } from '../../../src/modules/config/module.js';
import { knowledgeContract } from '../../../src/modules/knowledge/contract.js';
import { knowledgeModule } from '../../../src/modules/knowledge/module.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { authHttp, expectErrorEnvelope, USER_PASSWORD, uniqueUsername, type AuthHttp } from '../../support/auth-http.js';
import { fakeEmbeddings, fakeEmbeddingsModule, resetFakeEmbeddings } from './fake-embeddings.js';

/** Only what this suite needs, so the suite is not at the mercy of unrelated modules being built. */
const catalogue: readonly AnyModule[] = [configModule, authModule, fakeEmbeddingsModule, knowledgeModule];

interface Refusal {
  code: string;
  message: string;
  details?: unknown;
}

async function refusal(call: Promise<unknown>): Promise<Refusal> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err: err as Refusal }),
  );
  if (outcome.ok) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value)}`);
  return outcome.err;
}

function failingFields(err: Refusal): string[] {
  return ((err.details ?? []) as { path: string }[]).map((d) => d.path);
}

type UserActor = Extract<Actor, { type: 'user' }>;

interface StoredEvent {
  type: string;
  source: string;
  payload: Record<string, unknown>;
}

describe.each(bindingKinds)('knowledge contract (%s binding)', (kind) => {
  let redis: TestRedis;
  let app: TestApp;
  let kernelRedis: Redis;
  let knowledge: Port<typeof knowledgeContract>;
  let admin: UserActor;
  let alice: UserActor;
  let bob: UserActor;

  const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);

  async function newUser(): Promise<UserActor> {
    const auth = portFor(kind, app, authContract);
    const user = await as(admin, () => auth.createUser({ username: uniqueUsername(), password: USER_PASSWORD, role: 'user' }));
    const pair = await auth.login({ username: user.username, password: USER_PASSWORD });
    const { actor } = await auth.authenticate({ token: pair.accessToken });
    return actor!;
  }

  async function eventsOf(type: string): Promise<StoredEvent[]> {
    const entries = await kernelRedis.xrange(`kernel:events:${type}`, '-', '+');
    return entries.map(([, fields]) => JSON.parse(fields[1]!) as StoredEvent);
  }

  beforeAll(async () => {
    resetFakeEmbeddings();
    redis = await startTestRedis();
    app = await startTestApp({ redisUrl: redis.url, credentials: 'module', catalogue });
    kernelRedis = new Redis({ path: redis.target.path!, db: 0 });
    knowledge = portFor(kind, app, knowledgeContract);
    const auth = portFor(kind, app, authContract);
    const pair = await auth.login({ username: 'admin', password: ADMIN_PASSWORD });
    admin = (await auth.authenticate({ token: pair.accessToken })).actor!;
    [alice, bob] = await Promise.all([newUser(), newUser()]);
  });
  afterAll(async () => {
    kernelRedis?.disconnect();
    await app?.stop();
    await redis?.stop();
  });
  beforeEach(() => {
    fakeEmbeddings.down = false;
  });

  describe('facts', () => {
    it('creates a fact with its category, tags and source, and reads it back', async () => {
      const cat = await as(alice, () => knowledge.createCategory({ name: 'Science' }));
      const fact = await as(alice, () =>
        knowledge.createFact({ content: 'Water boils at 100 °C at sea level.', categoryId: cat.id, tags: ['Physics', ' water ', 'physics'], source: 'school' }),
      );
      expect(fact).toMatchObject({
        content: 'Water boils at 100 °C at sea level.',
        categoryId: cat.id,
        // Lower-cased, trimmed, each once.
        tags: ['physics', 'water'],
        source: 'school',
        shared: false,
        ownerId: alice.id,
      });
      expect(Object.keys(fact).sort()).toEqual(['categoryId', 'content', 'createdAt', 'id', 'ownerId', 'shared', 'source', 'tags', 'updatedAt']);
      expect(fact.createdAt).toBe(fact.updatedAt);
      expect(await as(alice, () => knowledge.getFact({ id: fact.id }))).toEqual(fact);
      const bare = await as(alice, () => knowledge.createFact({ content: 'A bare fact' }));
      expect(bare).toMatchObject({ categoryId: null, tags: [], source: null, shared: false });
    });

    it('answers 409 with the existing id for the same content up to case, spacing, Unicode form and trailing punctuation', async () => {
      const first = await as(alice, () => knowledge.createFact({ content: 'The sky is blue.' }));
      for (const variant of ['the sky is blue', '  The   SKY is blue!!', 'The sky is blue…', 'Ｔｈｅ ｓｋｙ ｉｓ ｂｌｕｅ', 'The\u00a0sky\tis\nblue ?']) {
        const err = await refusal(as(alice, () => knowledge.createFact({ content: variant })));
        expect({ variant, code: err.code, details: err.details }).toEqual({ variant, code: 'conflict', details: { existingId: first.id } });
      }
      // Different words are a different fact; another owner may say the same thing.
      await as(alice, () => knowledge.createFact({ content: 'The sky is blue at noon.' }));
      const bobs = await as(bob, () => knowledge.createFact({ content: 'The sky is blue.' }));
      expect(bobs.id).not.toBe(first.id);
    });

    it('creates exactly one fact out of concurrent identical creates; the others get 409 naming it', async () => {
      const content = `Concurrent fact ${randomUUID()}`;
      const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => as(alice, () => knowledge.createFact({ content: i % 2 ? content.toUpperCase() : content }))));
      const created = outcomes.filter((o) => o.status === 'fulfilled').map((o) => (o as PromiseFulfilledResult<{ id: string }>).value);
      const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason as Refusal);
      expect(created).toHaveLength(1);
      expect(refused).toHaveLength(19);
      for (const err of refused) expect(err).toMatchObject({ code: 'conflict', details: { existingId: created[0]!.id } });
      const { items } = await as(alice, () => knowledge.listFacts({ q: content, limit: 100 }));
      expect(items.map((f) => f.id)).toEqual([created[0]!.id]);
    });

    it('updates content, category, tags and source; a change to existing content is 409 and changes nothing', async () => {
      const cat = await as(alice, () => knowledge.createCategory({ name: `Update ${randomUUID()}` }));
      const a = await as(alice, () => knowledge.createFact({ content: 'Update target one' }));
      const b = await as(alice, () => knowledge.createFact({ content: 'Update target two' }));
      const updated = await as(alice, () => knowledge.updateFact({ id: a.id, content: 'Update target 1', categoryId: cat.id, tags: ['x'], source: 'me' }));
      expect(updated).toMatchObject({ id: a.id, content: 'Update target 1', categoryId: cat.id, tags: ['x'], source: 'me', createdAt: a.createdAt });
      expect(updated.updatedAt >= a.updatedAt).toBe(true);

      const err = await refusal(as(alice, () => knowledge.updateFact({ id: a.id, content: 'update target two.', tags: ['y'] })));
      expect(err).toMatchObject({ code: 'conflict', details: { existingId: b.id } });
      expect(await as(alice, () => knowledge.getFact({ id: a.id }))).toEqual(updated);

      // The old content is free again; clearing the category and source.
      await as(alice, () => knowledge.createFact({ content: 'Update target one' }));
      const cleared = await as(alice, () => knowledge.updateFact({ id: a.id, categoryId: null, source: null }));
      expect(cleared).toMatchObject({ categoryId: null, source: null });
    });

    it('deletes a fact: gone from reads and lists, and its content may be stated again', async () => {
      const fact = await as(alice, () => knowledge.createFact({ content: 'Short-lived fact', tags: ['ephemeral'] }));
      expect(await as(alice, () => knowledge.deleteFact({ id: fact.id }))).toBeNull();
      expect((await refusal(as(alice, () => knowledge.getFact({ id: fact.id })))).code).toBe('not_found');
      expect((await refusal(as(alice, () => knowledge.deleteFact({ id: fact.id })))).code).toBe('not_found');
      expect((await as(alice, () => knowledge.listFacts({ tag: 'ephemeral', limit: 100 }))).items).toEqual([]);
      await as(alice, () => knowledge.createFact({ content: 'short-lived fact.' }));
    });

    it('refuses bad input naming the field, and writes nothing', async () => {
      const cases: [string, Record<string, unknown>, string][] = [
        ['empty content', { content: '   ' }, 'content'],
        ['punctuation only', { content: '...' }, 'content'],
        ['content over the setting', { content: 'x'.repeat(4001) }, 'content'],
        ['too many tags', { content: 'Tags galore', tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, 'tags'],
        ['a tag too long', { content: 'Long tag', tags: ['x'.repeat(51)] }, 'tags.0'],
        ['unknown category', { content: 'Nowhere', categoryId: 'cat_nope' }, 'categoryId'],
        ['content not a string', { content: 42 }, 'content'],
      ];
      for (const [name, input, field] of cases) {
        const err = await refusal(as(alice, () => knowledge.createFact(input as { content: string })));
        expect({ name, code: err.code, fields: failingFields(err) }).toEqual({ name, code: 'invalid_input', fields: [field] });
      }
      const bobsCategory = await as(bob, () => knowledge.createCategory({ name: 'Bob only' }));
      const err = await refusal(as(alice, () => knowledge.createFact({ content: "Filed in Bob's category", categoryId: bobsCategory.id })));
      expect(failingFields(err)).toEqual(['categoryId']);
      expect((await as(alice, () => knowledge.listFacts({ q: 'Nowhere', limit: 100 }))).items).toEqual([]);
    });

    it('refuses callers that are not signed in', async () => {
      expect((await refusal(knowledge.listFacts({}))).code).toBe('unauthenticated');
      expect((await refusal(knowledge.createFact({ content: 'anonymous' }))).code).toBe('unauthenticated');
    });
  });

  describe('lists', () => {
    it('filters by tag (any case), words of q, and category with its subcategories', async () => {
      const u = await newUser();
      const root = await as(u, () => knowledge.createCategory({ name: 'Animals' }));
      const sub = await as(u, () => knowledge.createCategory({ name: 'Cats', parentId: root.id }));
      const other = await as(u, () => knowledge.createCategory({ name: 'Plants' }));
      const dog = await as(u, () => knowledge.createFact({ content: 'Dogs bark loudly', categoryId: root.id, tags: ['pets'] }));
      const cat = await as(u, () => knowledge.createFact({ content: 'Cats purr softly', categoryId: sub.id, tags: ['Pets', 'quiet'] }));
      const fern = await as(u, () => knowledge.createFact({ content: 'Ferns grow softly in shade', categoryId: other.id }));
      const ids = async (input: Parameters<typeof knowledge.listFacts>[0]) => (await as(u, () => knowledge.listFacts({ limit: 100, ...input }))).items.map((f) => f.id);

      expect(await ids({ tag: 'PETS' })).toEqual([cat.id, dog.id]);
      expect(await ids({ tag: 'quiet' })).toEqual([cat.id]);
      expect(await ids({ q: 'SOFTLY' })).toEqual([fern.id, cat.id]);
      expect(await ids({ q: 'softly purr' })).toEqual([cat.id]);
      expect(await ids({ q: 'softly barks' })).toEqual([]);
      expect(await ids({ categoryId: root.id })).toEqual([cat.id, dog.id]);
      expect(await ids({ categoryId: sub.id })).toEqual([cat.id]);
      expect(await ids({ categoryId: root.id, tag: 'quiet' })).toEqual([cat.id]);
      expect(await ids({ categoryId: root.id, q: 'dogs' })).toEqual([dog.id]);
      expect(await ids({})).toEqual([fern.id, cat.id, dog.id]);
    });

    it('pages newest first with a cursor, each fact once', async () => {
      const u = await newUser();
      const created: string[] = [];
      for (let i = 0; i < 25; i++) created.push((await as(u, () => knowledge.createFact({ content: `Paged fact number ${i}` }))).id);
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await as(u, () => knowledge.listFacts({ limit: 10, ...(cursor ? { cursor } : {}) }));
        expect(page.items.length).toBeLessThanOrEqual(10);
        seen.push(...page.items.map((f) => f.id));
        cursor = page.nextCursor ?? undefined;
        pages++;
      } while (cursor);
      expect(pages).toBe(3);
      expect(seen).toEqual([...created].reverse());
      expect((await refusal(as(u, () => knowledge.listFacts({ limit: 101 })))).code).toBe('invalid_input');
    });
  });

  describe('visibility', () => {
    it("never shows a user another user's private fact, in reads, writes or lists", async () => {
      const secret = await as(alice, () => knowledge.createFact({ content: `Alice's secret ${randomUUID()}`, tags: ['secret'] }));
      for (const [name, call] of [
        ['get', () => knowledge.getFact({ id: secret.id })],
        ['update', () => knowledge.updateFact({ id: secret.id, content: 'mine now' })],
        ['delete', () => knowledge.deleteFact({ id: secret.id })],
      ] as const) {
        expect({ name, code: (await refusal(as(bob, call))).code }).toEqual({ name, code: 'not_found' });
      }
      for (const input of [{}, { tag: 'secret' }, { q: 'secret' }]) {
        const { items } = await as(bob, () => knowledge.listFacts({ limit: 100, ...input }));
        expect(items.filter((f) => f.ownerId !== bob.id && !f.shared)).toEqual([]);
        expect(items.map((f) => f.id)).not.toContain(secret.id);
      }
      // Admins too: lists hold their own facts and the shared ones only.
      const { items } = await as(admin, () => knowledge.listFacts({ limit: 100, tag: 'secret' }));
      expect(items.map((f) => f.id)).not.toContain(secret.id);
      expect(await as(alice, () => knowledge.getFact({ id: secret.id }))).toMatchObject({ id: secret.id });
    });

    it('lets only an admin share a fact; shared facts are read by all and written only by their owner', async () => {
      const fact = await as(alice, () => knowledge.createFact({ content: `Shareable ${randomUUID()}`, tags: ['team'] }));
      // The owner may not share it; nor may anyone create a shared fact but an admin.
      expect((await refusal(as(alice, () => knowledge.updateFact({ id: fact.id, shared: true })))).code).toBe('forbidden');
      expect((await refusal(as(alice, () => knowledge.createFact({ content: 'Self-shared', shared: true })))).code).toBe('forbidden');
      // Restating the current value is not a change.
      expect(await as(alice, () => knowledge.updateFact({ id: fact.id, shared: false }))).toMatchObject({ shared: false });

      // The admin finds it by id (the owner asked), and shares it.
      expect(await as(admin, () => knowledge.getFact({ id: fact.id }))).toMatchObject({ id: fact.id, ownerId: alice.id });
      expect((await refusal(as(admin, () => knowledge.updateFact({ id: fact.id, content: 'Edited by admin' })))).code).toBe('forbidden');
      const shared = await as(admin, () => knowledge.updateFact({ id: fact.id, shared: true }));
      expect(shared).toMatchObject({ shared: true, ownerId: alice.id, content: fact.content });

      expect(await as(bob, () => knowledge.getFact({ id: fact.id }))).toEqual(shared);
      for (const input of [{}, { tag: 'team' }, { q: fact.content }]) {
        expect((await as(bob, () => knowledge.listFacts({ limit: 100, ...input }))).items.map((f) => f.id)).toContain(fact.id);
      }
      expect((await as(admin, () => knowledge.listFacts({ limit: 100, tag: 'team' }))).items.map((f) => f.id)).toContain(fact.id);
      // Read-only for everyone but the owner.
      expect((await refusal(as(bob, () => knowledge.updateFact({ id: fact.id, content: 'Bob was here' })))).code).toBe('forbidden');
      expect((await refusal(as(bob, () => knowledge.updateFact({ id: fact.id, shared: false })))).code).toBe('forbidden');
      expect((await refusal(as(bob, () => knowledge.deleteFact({ id: fact.id })))).code).toBe('forbidden');
      expect((await refusal(as(admin, () => knowledge.deleteFact({ id: fact.id })))).code).toBe('forbidden');
      // The owner still edits it, and it stays shared.
      expect(await as(alice, () => knowledge.updateFact({ id: fact.id, tags: ['team', 'edited'] }))).toMatchObject({ shared: true, tags: ['team', 'edited'] });
      expect((await as(bob, () => knowledge.listFacts({ limit: 100, tag: 'edited' }))).items.map((f) => f.id)).toEqual([fact.id]);

      // Unshared, it is private again.
      await as(admin, () => knowledge.updateFact({ id: fact.id, shared: false }));
      expect((await refusal(as(bob, () => knowledge.getFact({ id: fact.id })))).code).toBe('not_found');
      expect((await as(bob, () => knowledge.listFacts({ limit: 100, tag: 'team' }))).items.map((f) => f.id)).not.toContain(fact.id);
    });

    it("removes a deleted user's facts, categories and entities, shared facts included", async () => {
      const auth = portFor(kind, app, authContract);
      const leaver = await newUser();
      const category = await as(leaver, () => knowledge.createCategory({ name: 'Leaving' }));
      await as(leaver, () => knowledge.createCategory({ name: 'Sub', parentId: category.id }));
      const fact = await as(leaver, () => knowledge.createFact({ content: `Shared by a leaver ${randomUUID()}`, categoryId: category.id }));
      await as(admin, () => knowledge.updateFact({ id: fact.id, shared: true }));
      const [e1, e2] = await Promise.all([
        as(leaver, () => knowledge.createEntity({ name: 'One', type: 'thing' })),
        as(leaver, () => knowledge.createEntity({ name: 'Two', type: 'thing' })),
      ]);
      await as(leaver, () => knowledge.createRelation({ fromId: e1.id, toId: e2.id, type: 'next_to' }));
      await expect.poll(() => fakeEmbeddings.items.get('facts')?.get(fact.id)?.metadata.shared, { timeout: 10_000 }).toBe(true);
      expect((await as(bob, () => knowledge.listFacts({ limit: 100 }))).items.map((f) => f.id)).toContain(fact.id);

      await as(admin, () => auth.deleteUser({ id: leaver.id }));
      await expect.poll(async () => (await refusal(as(bob, () => knowledge.getFact({ id: fact.id })))).code, { timeout: 10_000 }).toBe('not_found');
      expect((await as(bob, () => knowledge.listFacts({ limit: 100 }))).items.map((f) => f.id)).not.toContain(fact.id);
      // Nothing of theirs is left: were the id to come back, it would find an empty store.
      await expect.poll(async () => (await as(leaver, () => knowledge.listCategories({}))).items, { timeout: 10_000 }).toEqual([]);
      await expect.poll(async () => (await as(leaver, () => knowledge.listEntities({}))).items, { timeout: 10_000 }).toEqual([]);
      expect((await eventsOf('knowledge.fact.deleted')).some((e) => e.payload.factId === fact.id)).toBe(true);
      await expect.poll(() => fakeEmbeddings.items.get('facts')?.get(fact.id), { timeout: 10_000 }).toBeUndefined();
    });

    it("keeps categories and entities to their owner: someone else's are not_found", async () => {
      const category = await as(alice, () => knowledge.createCategory({ name: `Private ${randomUUID()}` }));
      const entity = await as(alice, () => knowledge.createEntity({ name: 'Alice Corp', type: 'company' }));
      expect((await refusal(as(bob, () => knowledge.deleteCategory({ id: category.id })))).code).toBe('not_found');
      expect((await as(bob, () => knowledge.listCategories({}))).items.map((c) => c.id)).not.toContain(category.id);
      for (const call of [() => knowledge.getEntity({ id: entity.id }), () => knowledge.updateEntity({ id: entity.id, name: 'Mine' }), () => knowledge.deleteEntity({ id: entity.id })]) {
        expect((await refusal(as(bob, call))).code).toBe('not_found');
      }
      expect((await refusal(as(admin, () => knowledge.getEntity({ id: entity.id })))).code).toBe('not_found');
      expect((await as(bob, () => knowledge.listEntities({ limit: 100 }))).items.map((e) => e.id)).not.toContain(entity.id);
      const bobs = await as(bob, () => knowledge.createEntity({ name: 'Bob Ltd', type: 'company' }));
      const err = await refusal(as(bob, () => knowledge.createRelation({ fromId: bobs.id, toId: entity.id, type: 'competes_with' })));
      expect({ code: err.code, fields: failingFields(err) }).toEqual({ code: 'invalid_input', fields: ['toId'] });
    });
  });

  describe('categories', () => {
    it('returns the tree with direct and subtree counts, and the uncategorised count', async () => {
      const u = await newUser();
      const work = await as(u, () => knowledge.createCategory({ name: 'Work' }));
      const projects = await as(u, () => knowledge.createCategory({ name: 'Projects', parentId: work.id }));
      const apollo = await as(u, () => knowledge.createCategory({ name: 'Apollo', parentId: projects.id }));
      const home = await as(u, () => knowledge.createCategory({ name: 'Home' }));
      await as(u, () => knowledge.createFact({ content: 'Standup at nine', categoryId: work.id }));
      await as(u, () => knowledge.createFact({ content: 'Apollo ships in May', categoryId: apollo.id }));
      await as(u, () => knowledge.createFact({ content: 'Apollo uses Redis', categoryId: apollo.id }));
      await as(u, () => knowledge.createFact({ content: 'Unfiled thought' }));

      const tree = await as(u, () => knowledge.listCategories({}));
      expect(tree.uncategorizedFactCount).toBe(1);
      const shape = (n: { name: string; factCount: number; totalFactCount: number; children: unknown[] }): unknown => ({
        name: n.name,
        factCount: n.factCount,
        totalFactCount: n.totalFactCount,
        children: (n.children as (typeof n)[]).map(shape),
      });
      expect(tree.items.map(shape)).toEqual([
        { name: 'Home', factCount: 0, totalFactCount: 0, children: [] },
        {
          name: 'Work',
          factCount: 1,
          totalFactCount: 3,
          children: [{ name: 'Projects', factCount: 0, totalFactCount: 2, children: [{ name: 'Apollo', factCount: 2, totalFactCount: 2, children: [] }] }],
        },
      ]);
      expect(tree.items[1]!.children[0]).toMatchObject({ id: projects.id, parentId: work.id });
      expect(home.parentId).toBeNull();
    });

    it('keeps sibling names unique regardless of case, and refuses an unknown parent naming it', async () => {
      const u = await newUser();
      const a = await as(u, () => knowledge.createCategory({ name: 'Reading' }));
      expect(await refusal(as(u, () => knowledge.createCategory({ name: 'READING' })))).toMatchObject({ code: 'conflict', details: { existingId: a.id } });
      // The same name elsewhere in the tree is fine.
      await as(u, () => knowledge.createCategory({ name: 'reading', parentId: a.id }));
      const err = await refusal(as(u, () => knowledge.createCategory({ name: 'Orphan', parentId: 'cat_missing' })));
      expect({ code: err.code, fields: failingFields(err) }).toEqual({ code: 'invalid_input', fields: ['parentId'] });
      const blank = await refusal(as(u, () => knowledge.createCategory({ name: '  ' })));
      expect(failingFields(blank)).toEqual(['name']);
    });

    it('renames and moves a category with its subtree; facts stay filed in it', async () => {
      const u = await newUser();
      const a = await as(u, () => knowledge.createCategory({ name: 'A' }));
      const b = await as(u, () => knowledge.createCategory({ name: 'B' }));
      const a1 = await as(u, () => knowledge.createCategory({ name: 'A1', parentId: a.id }));
      const a11 = await as(u, () => knowledge.createCategory({ name: 'A11', parentId: a1.id }));
      const fact = await as(u, () => knowledge.createFact({ content: 'Deep in A11', categoryId: a11.id }));

      expect(await as(u, () => knowledge.updateCategory({ id: a.id, name: 'a' }))).toMatchObject({ id: a.id, name: 'a' });
      expect(await refusal(as(u, () => knowledge.updateCategory({ id: a.id, name: 'b' })))).toMatchObject({ code: 'conflict', details: { existingId: b.id } });
      for (const parentId of [a.id, a11.id, 'cat_missing']) {
        expect(failingFields(await refusal(as(u, () => knowledge.updateCategory({ id: a.id, parentId }))))).toEqual(['parentId']);
      }
      expect(await as(u, () => knowledge.updateCategory({ id: a1.id, parentId: b.id }))).toMatchObject({ id: a1.id, parentId: b.id });
      let tree = await as(u, () => knowledge.listCategories({}));
      expect(tree.items.map((c) => [c.name, c.totalFactCount, c.children.map((x) => x.id)])).toEqual([
        ['a', 0, []],
        ['B', 1, [a1.id]],
      ]);
      expect((await as(u, () => knowledge.getFact({ id: fact.id }))).categoryId).toBe(a11.id);
      expect((await as(u, () => knowledge.listFacts({ categoryId: b.id }))).items.map((f) => f.id)).toEqual([fact.id]);

      await as(u, () => knowledge.updateCategory({ id: a11.id, parentId: null }));
      tree = await as(u, () => knowledge.listCategories({}));
      expect(tree.items.map((c) => c.name)).toEqual(['a', 'A11', 'B']);
      expect((await refusal(as(bob, () => knowledge.updateCategory({ id: a.id, name: 'Hijacked' })))).code).toBe('not_found');
    });

    it('refuses to delete a category holding facts or subcategories unless told where they go', async () => {
      const u = await newUser();
      const old = await as(u, () => knowledge.createCategory({ name: 'Old' }));
      const child = await as(u, () => knowledge.createCategory({ name: 'Child', parentId: old.id }));
      const grandchild = await as(u, () => knowledge.createCategory({ name: 'Grandchild', parentId: child.id }));
      const target = await as(u, () => knowledge.createCategory({ name: 'Target' }));
      const f1 = await as(u, () => knowledge.createFact({ content: 'Filed in old one', categoryId: old.id, tags: ['moved'] }));
      const f2 = await as(u, () => knowledge.createFact({ content: 'Filed in old two', categoryId: old.id }));
      const inChild = await as(u, () => knowledge.createFact({ content: 'Filed in child', categoryId: child.id }));

      const err = await refusal(as(u, () => knowledge.deleteCategory({ id: old.id })));
      expect(err).toMatchObject({ code: 'conflict', details: { facts: 2, categories: 1 } });
      expect(err.message).toContain('moveTo');
      // Not into itself or below itself, not into a category that does not exist.
      for (const moveTo of [old.id, grandchild.id, 'cat_missing']) {
        expect(failingFields(await refusal(as(u, () => knowledge.deleteCategory({ id: old.id, moveTo }))))).toEqual(['moveTo']);
      }
      expect((await as(u, () => knowledge.getFact({ id: f1.id }))).categoryId).toBe(old.id);

      const before = (await eventsOf('knowledge.fact.updated')).length;
      expect(await as(u, () => knowledge.deleteCategory({ id: old.id, moveTo: target.id }))).toBeNull();
      for (const f of [f1, f2]) expect((await as(u, () => knowledge.getFact({ id: f.id }))).categoryId).toBe(target.id);
      expect((await as(u, () => knowledge.getFact({ id: inChild.id }))).categoryId).toBe(child.id);
      const tree = await as(u, () => knowledge.listCategories({}));
      expect(tree.items.map((c) => c.name)).toEqual(['Target']);
      expect(tree.items[0]).toMatchObject({ factCount: 2, totalFactCount: 3, children: [{ id: child.id, parentId: target.id, children: [{ id: grandchild.id }] }] });
      // The moved facts were announced as changed, with their new category.
      const moved = (await eventsOf('knowledge.fact.updated')).slice(before).map((e) => e.payload);
      expect(moved.map((p) => p.factId).sort()).toEqual([f1.id, f2.id].sort());
      for (const p of moved) expect(p).toMatchObject({ categoryId: target.id, changes: ['categoryId'], rev: 2 });

      // To the top level: the facts become uncategorised and the subcategories top-level.
      await as(u, () => knowledge.deleteCategory({ id: target.id, moveTo: 'root' }));
      expect((await as(u, () => knowledge.getFact({ id: f1.id }))).categoryId).toBeNull();
      const after = await as(u, () => knowledge.listCategories({}));
      expect(after.items.map((c) => c.id)).toEqual([child.id]);
      expect(after.uncategorizedFactCount).toBe(2);
      // An empty category goes without being asked.
      await as(u, () => knowledge.deleteCategory({ id: grandchild.id }));
      expect((await refusal(as(u, () => knowledge.deleteCategory({ id: grandchild.id })))).code).toBe('not_found');
    });
  });

  describe('entities and relations', () => {
    it('creates typed entities with attributes; the same name and type twice is 409', async () => {
      const u = await newUser();
      const ada = await as(u, () => knowledge.createEntity({ name: 'Ada Lovelace', type: 'Person', attributes: { born: 1815, field: 'mathematics' } }));
      expect(ada).toMatchObject({ name: 'Ada Lovelace', type: 'person', attributes: { born: 1815, field: 'mathematics' } });
      expect(await refusal(as(u, () => knowledge.createEntity({ name: 'ada lovelace', type: 'person' })))).toMatchObject({ code: 'conflict', details: { existingId: ada.id } });
      // The same name as another type is another entity.
      await as(u, () => knowledge.createEntity({ name: 'Ada Lovelace', type: 'ship' }));
      const err = await refusal(as(u, () => knowledge.createEntity({ name: 'Bad', type: '!!' })));
      expect(failingFields(err)).toEqual(['type']);
      const renamed = await as(u, () => knowledge.updateEntity({ id: ada.id, name: 'Augusta Ada King', attributes: { born: 1815 } }));
      expect(renamed).toMatchObject({ name: 'Augusta Ada King', type: 'person', attributes: { born: 1815 } });
      // The old name is free again.
      await as(u, () => knowledge.createEntity({ name: 'Ada Lovelace', type: 'person' }));
    });

    it('lists entities by type and by part of the name', async () => {
      const u = await newUser();
      const paris = await as(u, () => knowledge.createEntity({ name: 'Paris', type: 'city' }));
      const lyon = await as(u, () => knowledge.createEntity({ name: 'Lyon', type: 'city' }));
      const hugo = await as(u, () => knowledge.createEntity({ name: 'Victor Hugo', type: 'person' }));
      const ids = async (input: Parameters<typeof knowledge.listEntities>[0]) => (await as(u, () => knowledge.listEntities({ limit: 100, ...input }))).items.map((e) => e.id);
      expect(await ids({ type: 'CITY' })).toEqual([lyon.id, paris.id]);
      expect(await ids({ q: 'hug' })).toEqual([hugo.id]);
      expect(await ids({ type: 'city', q: 'PAR' })).toEqual([paris.id]);
      expect(await ids({})).toEqual([hugo.id, lyon.id, paris.id]);
    });

    it('returns relations both ways with the other entity, and deleting an entity removes its relations', async () => {
      const u = await newUser();
      const ada = await as(u, () => knowledge.createEntity({ name: 'Ada', type: 'person' }));
      const charles = await as(u, () => knowledge.createEntity({ name: 'Charles Babbage', type: 'person' }));
      const engine = await as(u, () => knowledge.createEntity({ name: 'Analytical Engine', type: 'machine' }));
      const wrote = await as(u, () => knowledge.createRelation({ fromId: ada.id, toId: engine.id, type: 'wrote_programs_for' }));
      const designed = await as(u, () => knowledge.createRelation({ fromId: charles.id, toId: engine.id, type: 'Designed' }));
      const knew = await as(u, () => knowledge.createRelation({ fromId: ada.id, toId: charles.id, type: 'knew' }));
      expect(designed).toMatchObject({ fromId: charles.id, toId: engine.id, type: 'designed' });
      expect(await refusal(as(u, () => knowledge.createRelation({ fromId: ada.id, toId: charles.id, type: 'KNEW' })))).toMatchObject({
        code: 'conflict',
        details: { existingId: knew.id },
      });
      expect(failingFields(await refusal(as(u, () => knowledge.createRelation({ fromId: ada.id, toId: ada.id, type: 'is' }))))).toEqual(['toId']);
      expect(failingFields(await refusal(as(u, () => knowledge.createRelation({ fromId: 'ent_missing', toId: ada.id, type: 'is' }))))).toEqual(['fromId']);

      const got = await as(u, () => knowledge.getEntity({ id: engine.id }));
      expect(got.relations.outgoing).toEqual([]);
      expect(got.relations.incoming).toEqual([
        { id: wrote.id, type: 'wrote_programs_for', entity: { id: ada.id, name: 'Ada', type: 'person' }, createdAt: wrote.createdAt },
        { id: designed.id, type: 'designed', entity: { id: charles.id, name: 'Charles Babbage', type: 'person' }, createdAt: designed.createdAt },
      ]);
      const adaView = await as(u, () => knowledge.getEntity({ id: ada.id }));
      expect(adaView.relations.outgoing.map((r) => [r.type, r.entity.name])).toEqual([
        ['wrote_programs_for', 'Analytical Engine'],
        ['knew', 'Charles Babbage'],
      ]);

      expect(await as(u, () => knowledge.deleteRelation({ id: knew.id }))).toBeNull();
      expect((await refusal(as(u, () => knowledge.deleteRelation({ id: knew.id })))).code).toBe('not_found');
      expect((await as(u, () => knowledge.getEntity({ id: charles.id }))).relations.incoming).toEqual([]);

      expect(await as(u, () => knowledge.deleteEntity({ id: engine.id }))).toBeNull();
      expect((await refusal(as(u, () => knowledge.getEntity({ id: engine.id })))).code).toBe('not_found');
      expect((await as(u, () => knowledge.getEntity({ id: ada.id }))).relations).toEqual({ outgoing: [], incoming: [] });
      expect((await as(u, () => knowledge.getEntity({ id: charles.id }))).relations).toEqual({ outgoing: [], incoming: [] });
      // Its relations are gone, not just hidden: the same relation can be made again once it exists.
      const engine2 = await as(u, () => knowledge.createEntity({ name: 'Analytical Engine', type: 'machine' }));
      await as(u, () => knowledge.createRelation({ fromId: ada.id, toId: engine2.id, type: 'wrote_programs_for' }));
      expect((await refusal(as(u, () => knowledge.deleteRelation({ id: wrote.id })))).code).toBe('not_found');
    });
  });

  describe('events and the vector index', () => {
    it('publishes created, updated and deleted with thin payloads after the change is stored', async () => {
      const fact = await as(alice, () => knowledge.createFact({ content: `Evented ${randomUUID()}`, tags: ['ev'] }));
      await as(alice, () => knowledge.updateFact({ id: fact.id, tags: ['ev', 'two'] }));
      // A patch that changes nothing announces nothing.
      await as(alice, () => knowledge.updateFact({ id: fact.id, tags: ['two', 'ev'].reverse() }));
      await as(admin, () => knowledge.updateFact({ id: fact.id, shared: true }));
      await as(alice, () => knowledge.deleteFact({ id: fact.id }));
      const of = async (type: string) => (await eventsOf(type)).filter((e) => e.payload.factId === fact.id);

      const [created] = await of('knowledge.fact.created');
      expect(created).toMatchObject({ source: 'knowledge' });
      expect(created!.payload).toEqual({ factId: fact.id, ownerId: alice.id, shared: false, categoryId: null, tags: ['ev'], rev: 1, content: fact.content });
      const updated = (await of('knowledge.fact.updated')).map((e) => e.payload);
      expect(updated.map((p) => [p.rev, p.changes, p.shared])).toEqual([
        [2, ['tags'], false],
        [3, ['shared'], true],
      ]);
      const [deleted] = await of('knowledge.fact.deleted');
      expect(deleted!.payload).toEqual({ factId: fact.id, ownerId: alice.id, shared: true, categoryId: null, tags: ['ev', 'two'], rev: 4 });
    });

    it('indexes each fact into the facts collection, follows metadata changes, and removes it on delete', async () => {
      const cat = await as(alice, () => knowledge.createCategory({ name: `Indexed ${randomUUID()}` }));
      const fact = await as(alice, () => knowledge.createFact({ content: 'Indexed fact about vectors', categoryId: cat.id, tags: ['vec'] }));
      const vector = () => fakeEmbeddings.items.get('facts')?.get(fact.id);
      await expect.poll(vector, { timeout: 10_000 }).toEqual({
        text: 'Indexed fact about vectors',
        metadata: { ownerId: alice.id, documentId: fact.id, categoryId: cat.id, tags: ['vec'], shared: false, title: 'Indexed fact about vectors' },
      });
      // The knowledge module calls as itself, not as the user.
      expect(fakeEmbeddings.calls.find((c) => c.op === 'upsert' && JSON.stringify(c.input).includes(fact.id))?.actor).toBe('service:knowledge');

      await as(admin, () => knowledge.updateFact({ id: fact.id, shared: true }));
      await expect.poll(() => vector()?.metadata.shared, { timeout: 10_000 }).toBe(true);
      expect(fakeEmbeddings.calls.some((c) => c.op === 'setMetadata' && (c.input as { documentId: string }).documentId === fact.id)).toBe(true);

      await as(alice, () => knowledge.updateFact({ id: fact.id, content: 'Indexed fact about embeddings' }));
      await expect.poll(() => vector()?.text, { timeout: 10_000 }).toBe('Indexed fact about embeddings');
      expect(vector()!.metadata).toMatchObject({ shared: true, title: 'Indexed fact about embeddings' });

      await as(alice, () => knowledge.deleteFact({ id: fact.id }));
      await expect.poll(vector, { timeout: 10_000 }).toBeUndefined();
    });

    it('lets an admin rewrite every fact vector, e.g. after the facts collection was reset', async () => {
      const facts = await Promise.all([1, 2, 3].map((i) => as(i === 3 ? bob : alice, () => knowledge.createFact({ content: `Reindexed fact ${i} ${randomUUID()}` }))));
      const vector = (id: string) => fakeEmbeddings.items.get('facts')?.get(id);
      await expect.poll(() => facts.every((f) => vector(f.id)), { timeout: 10_000 }).toBe(true);
      fakeEmbeddings.items.get('facts')!.clear();

      expect((await refusal(as(alice, () => knowledge.reindexFacts({})))).code).toBe('forbidden');
      const { queued } = await as(admin, () => knowledge.reindexFacts({}));
      expect(queued).toBeGreaterThanOrEqual(3);
      await expect.poll(() => fakeEmbeddings.items.get('facts')!.size, { timeout: 20_000 }).toBe(queued);
      expect(facts.map((f) => vector(f.id)?.text)).toEqual(facts.map((f) => f.content));
    });

    it('stores facts while embeddings is down, and indexes them once it is back', async () => {
      fakeEmbeddings.down = true;
      const failedBefore = fakeEmbeddings.calls.filter((c) => c.failed).length;
      const fact = await as(alice, () => knowledge.createFact({ content: `Written while embeddings is down ${randomUUID()}` }));
      expect(await as(alice, () => knowledge.getFact({ id: fact.id }))).toEqual(fact);
      // The sync tried, and failed.
      await expect.poll(() => fakeEmbeddings.calls.filter((c) => c.failed).length, { timeout: 10_000 }).toBeGreaterThan(failedBefore);
      expect(fakeEmbeddings.items.get('facts')?.get(fact.id)).toBeUndefined();
      // Health tells an operator that vectors lag behind (the retry is waiting).
      const health = () => app.runtime.port(knowledgeContract).$health();
      expect(await health()).toMatchObject({ status: 'ok', detail: expect.stringMatching(/^[1-9]\d* fact vector syncs pending$/) });

      fakeEmbeddings.down = false;
      await expect.poll(() => fakeEmbeddings.items.get('facts')?.get(fact.id)?.text, { timeout: 15_000, interval: 200 }).toBe(fact.content);
      await expect.poll(async () => (await health()).detail, { timeout: 10_000 }).toBe('0 fact vector syncs pending');
    });
  });
});

describe('knowledge REST routes', () => {
  let redis: TestRedis;
  let app: TestApp;
  let http: AuthHttp;
  let adminToken: string;
  let aliceToken: string;
  let bobToken: string;

  beforeAll(async () => {
    redis = await startTestRedis();
    app = await startTestApp({ redisUrl: redis.url, credentials: 'module', catalogue });
    http = authHttp(app.url);
    adminToken = (await http.login('admin', ADMIN_PASSWORD)).accessToken;
    const [a, b] = await Promise.all([http.signedInUser(adminToken), http.signedInUser(adminToken)]);
    aliceToken = a.accessToken;
    bobToken = b.accessToken;
  });
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  it('answers 401 to anonymous callers on every route', async () => {
    for (const [method, path] of [
      ['GET', '/knowledge/categories'],
      ['POST', '/knowledge/categories'],
      ['PATCH', '/knowledge/categories/cat_x'],
      ['DELETE', '/knowledge/categories/cat_x'],
      ['GET', '/knowledge/facts'],
      ['POST', '/knowledge/facts'],
      ['GET', '/knowledge/facts/f_x'],
      ['PATCH', '/knowledge/facts/f_x'],
      ['DELETE', '/knowledge/facts/f_x'],
      ['GET', '/knowledge/entities'],
      ['POST', '/knowledge/entities'],
      ['GET', '/knowledge/entities/ent_x'],
      ['DELETE', '/knowledge/entities/ent_x'],
      ['POST', '/knowledge/relations'],
      ['DELETE', '/knowledge/relations/rel_x'],
    ] as const) {
      const res = await http.request(method, path, method === 'POST' || method === 'PATCH' ? { body: {} } : {});
      await expectErrorEnvelope(res, 401, 'unauthenticated');
    }
  });

  it('creates (201), reads, lists, patches and deletes (204) a fact', async () => {
    const created = await http.request('POST', '/knowledge/facts', { token: aliceToken, body: { content: 'REST fact', tags: ['rest'], source: 'curl' } });
    expect(created.status).toBe(201);
    const fact = (await created.json()) as { id: string; content: string };
    expect(fact).toMatchObject({ content: 'REST fact', tags: ['rest'], source: 'curl', shared: false, categoryId: null });

    const got = await http.request('GET', `/knowledge/facts/${fact.id}`, { token: aliceToken });
    expect(await got.json()).toEqual(fact);
    const list = await http.request('GET', '/knowledge/facts?tag=REST&q=fact&limit=5', { token: aliceToken });
    expect(((await list.json()) as { items: { id: string }[]; nextCursor: null }).items.map((f) => f.id)).toEqual([fact.id]);

    const patched = await http.request('PATCH', `/knowledge/facts/${fact.id}`, { token: aliceToken, body: { content: 'REST fact, edited' } });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ id: fact.id, content: 'REST fact, edited' });

    const dup = await http.request('POST', '/knowledge/facts', { token: aliceToken, body: { content: 'rest FACT, edited!' } });
    const err = await expectErrorEnvelope(dup, 409, 'conflict');
    expect(err.details).toEqual({ existingId: fact.id });

    const deleted = await http.request('DELETE', `/knowledge/facts/${fact.id}`, { token: aliceToken });
    expect(deleted.status).toBe(204);
    expect(await deleted.text()).toBe('');
    await expectErrorEnvelope(await http.request('GET', `/knowledge/facts/${fact.id}`, { token: aliceToken }), 404, 'not_found');
  });

  it('makes one fact out of parallel identical POSTs: one 201, the rest 409 naming it', async () => {
    const content = `Parallel REST fact ${randomUUID()}`;
    const responses = await Promise.all(Array.from({ length: 10 }, () => http.request('POST', '/knowledge/facts', { token: bobToken, body: { content } })));
    const created = responses.filter((r) => r.status === 201);
    expect(created).toHaveLength(1);
    const { id } = (await created[0]!.json()) as { id: string };
    for (const res of responses.filter((r) => r.status !== 201)) expect((await expectErrorEnvelope(res, 409, 'conflict')).details).toEqual({ existingId: id });
  });

  it("answers 404 for another user's fact, and 403 to a non-admin sharing", async () => {
    const res = await http.request('POST', '/knowledge/facts', { token: aliceToken, body: { content: 'Private over REST' } });
    const fact = (await res.json()) as { id: string };
    await expectErrorEnvelope(await http.request('GET', `/knowledge/facts/${fact.id}`, { token: bobToken }), 404, 'not_found');
    await expectErrorEnvelope(await http.request('DELETE', `/knowledge/facts/${fact.id}`, { token: bobToken }), 404, 'not_found');
    await expectErrorEnvelope(await http.request('PATCH', `/knowledge/facts/${fact.id}`, { token: aliceToken, body: { shared: true } }), 403, 'forbidden');
    const shared = await http.request('PATCH', `/knowledge/facts/${fact.id}`, { token: adminToken, body: { shared: true } });
    expect(await shared.json()).toMatchObject({ shared: true });
    expect((await http.request('GET', `/knowledge/facts/${fact.id}`, { token: bobToken })).status).toBe(200);
    await expectErrorEnvelope(await http.request('DELETE', `/knowledge/facts/${fact.id}`, { token: bobToken }), 403, 'forbidden');
  });

  it('answers 400 naming the bad field', async () => {
    for (const [method, path, body, field] of [
      ['POST', '/knowledge/facts', { content: '' }, 'content'],
      ['POST', '/knowledge/facts', { content: 'ok', tags: 'not-an-array' }, 'tags'],
      ['POST', '/knowledge/categories', { name: 'x', parentId: 'cat_nope' }, 'parentId'],
      ['POST', '/knowledge/entities', { name: 'Nameless type' }, 'type'],
      ['POST', '/knowledge/relations', { fromId: 'ent_a', toId: 'ent_b' }, 'type'],
    ] as const) {
      const err = await expectErrorEnvelope(await http.request(method, path, { token: aliceToken, body }), 400, 'invalid_input');
      expect({ path, fields: (err.details as { path: string }[]).map((d) => d.path) }).toEqual({ path, fields: [field] });
    }
    const err = await expectErrorEnvelope(await http.request('GET', '/knowledge/facts?limit=1000', { token: aliceToken }), 400, 'invalid_input');
    expect((err.details as { path: string }[]).map((d) => d.path)).toEqual(['limit']);
  });

  it('serves the category tree and deletes a category with ?moveTo', async () => {
    const post = async (body: unknown) => (await (await http.request('POST', '/knowledge/categories', { token: bobToken, body })).json()) as { id: string };
    const from = await post({ name: 'From' });
    const to = await post({ name: 'To' });
    await http.request('POST', '/knowledge/facts', { token: bobToken, body: { content: 'Filed over REST', categoryId: from.id } });
    await expectErrorEnvelope(await http.request('DELETE', `/knowledge/categories/${from.id}`, { token: bobToken }), 409, 'conflict');
    expect((await http.request('DELETE', `/knowledge/categories/${from.id}?moveTo=${to.id}`, { token: bobToken })).status).toBe(204);
    const tree = (await (await http.request('GET', '/knowledge/categories', { token: bobToken })).json()) as { items: { id: string; factCount: number }[] };
    expect(tree.items).toMatchObject([{ id: to.id, factCount: 1, totalFactCount: 1, children: [] }]);
  });

  it('creates entities and relations and serves an entity with its relations', async () => {
    const post = async (path: string, body: unknown) => {
      const res = await http.request('POST', path, { token: aliceToken, body });
      expect(res.status).toBe(201);
      return (await res.json()) as { id: string };
    };
    const a = await post('/knowledge/entities', { name: 'Node.js', type: 'runtime', attributes: { language: 'JavaScript' } });
    const b = await post('/knowledge/entities', { name: 'V8', type: 'engine' });
    const r = await post('/knowledge/relations', { fromId: a.id, toId: b.id, type: 'embeds' });
    const got = (await (await http.request('GET', `/knowledge/entities/${b.id}`, { token: aliceToken })).json()) as { relations: unknown };
    expect(got.relations).toEqual({ outgoing: [], incoming: [{ id: r.id, type: 'embeds', entity: { id: a.id, name: 'Node.js', type: 'runtime' }, createdAt: expect.any(String) }] });
    const list = (await (await http.request('GET', '/knowledge/entities?type=runtime', { token: aliceToken })).json()) as { items: { id: string }[] };
    expect(list.items.map((e) => e.id)).toEqual([a.id]);
    expect((await http.request('DELETE', `/knowledge/relations/${r.id}`, { token: aliceToken })).status).toBe(204);
    expect((await http.request('DELETE', `/knowledge/entities/${a.id}`, { token: aliceToken })).status).toBe(204);
    await expectErrorEnvelope(await http.request('GET', `/knowledge/entities/${a.id}`, { token: bobToken }), 404, 'not_found');
  });

  it('lists the routes in the OpenAPI document', async () => {
    const doc = (await (await http.request('GET', '/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
    for (const path of ['/api/v1/knowledge/facts', '/api/v1/knowledge/facts/{id}', '/api/v1/knowledge/categories', '/api/v1/knowledge/entities/{id}', '/api/v1/knowledge/relations']) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
  });
});
