// Facts reach the real embeddings module's `facts` collection (built-in embedder, no download) with the
// metadata that scopes them: a user's semantic search over facts finds their own and the shared ones,
// never another user's private fact, and follows sharing and deletion.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import type { AnyModule } from '../../../src/kernel/module/define-module.js';
import { acceleratorModule } from '../../../src/modules/accelerator/module.js';
import { authContract } from '../../../src/modules/auth/contract.js';
import { authModule } from '../../../src/modules/auth/module.js';
import { configModule } from '../../../src/modules/config/module.js';
import { embeddingsContract } from '../../../src/modules/embeddings/contract.js';
import { embeddingsModule } from '../../../src/modules/embeddings/module.js';
import { knowledgeContract } from '../../../src/modules/knowledge/contract.js';
import { knowledgeModule } from '../../../src/modules/knowledge/module.js';
import { llmModule } from '../../../src/modules/llm/module.js';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../../support/app.js';
import { USER_PASSWORD, uniqueUsername } from '../../support/auth-http.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';

type UserActor = Extract<Actor, { type: 'user' }>;

const catalogue: readonly AnyModule[] = [configModule, authModule, llmModule, acceleratorModule, embeddingsModule, knowledgeModule];

describe('knowledge facts in the real embeddings module', () => {
  let redis: TestRedis;
  let app: TestApp;
  let admin: UserActor;
  let alice: UserActor;
  let bob: UserActor;
  const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);

  beforeAll(async () => {
    redis = await startTestRedis();
    app = await startTestApp({ redisUrl: redis.url, credentials: 'module', catalogue });
    const auth = app.runtime.port(authContract);
    const actorOf = async (username: string, password: string): Promise<UserActor> =>
      (await auth.authenticate({ token: (await auth.login({ username, password })).accessToken })).actor!;
    admin = await actorOf('admin', ADMIN_PASSWORD);
    const users = await Promise.all([0, 1].map(() => as(admin, () => auth.createUser({ username: uniqueUsername(), password: USER_PASSWORD, role: 'user' }))));
    const [a, b] = await Promise.all(users.map((u) => actorOf(u.username, USER_PASSWORD)));
    alice = a!;
    bob = b!;
  });
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  it('is found by its owner, by others only while shared, and by nobody once deleted', async () => {
    const knowledge = app.runtime.port(knowledgeContract);
    const embeddings = app.runtime.port(embeddingsContract);
    const content = `The lighthouse keeper ${randomUUID().slice(0, 8)} polishes the great lens every Sunday`;
    const fact = await as(alice, () => knowledge.createFact({ content, tags: ['coast'] }));
    const found = async (who: Actor) =>
      (await as(who, () => embeddings.search({ collection: 'facts', query: content, topK: 20 }))).items.find((i) => i.id === fact.id);

    await expect.poll(() => found(alice), { timeout: 15_000 }).toMatchObject({
      metadata: { ownerId: alice.id, documentId: fact.id, shared: false, tags: ['coast'], categoryId: null },
    });
    expect(await found(bob)).toBeUndefined();

    await as(admin, () => knowledge.updateFact({ id: fact.id, shared: true }));
    await expect.poll(async () => (await found(bob))?.metadata.shared, { timeout: 15_000 }).toBe(true);

    await as(alice, () => knowledge.deleteFact({ id: fact.id }));
    await expect.poll(() => found(alice), { timeout: 15_000 }).toBeUndefined();
    expect(await found(bob)).toBeUndefined();
  });
});
