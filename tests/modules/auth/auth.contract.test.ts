// The auth module's contract, run against the local and the HTTP binding: sign-in, rotating refresh
// tokens, sessions that end, roles and the last admin, API keys, and `authenticate` (what the gateway
// asks for every credential). Operations that need a caller run inside a request context carrying the
// actor, exactly as the gateway (or a remote caller's headers) would set it.
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import { authContract } from '../../../src/modules/auth/contract.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { USER_PASSWORD, uniqueUsername } from '../../support/auth-http.js';

const INVALID_LOGIN = 'invalid username or password';
const NEW_PASSWORD = 'a-brand-new-passphrase';

interface Refusal {
  code: string;
  message: string;
  details?: unknown;
}

/** The error a call fails with; fails the test when it succeeds. */
async function refusal(call: Promise<unknown>): Promise<Refusal> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err: err as Refusal }),
  );
  if (outcome.ok) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value)}`);
  return outcome.err;
}

/** The paths of the fields an invalid_input names. */
function failingFields(err: Refusal): string[] {
  return ((err.details ?? []) as { path: string }[]).map((d) => d.path);
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

type UserActor = Extract<Actor, { type: 'user' }>;

describe.each(bindingKinds)('auth contract (%s binding)', (kind) => {
  let redis: TestRedis;
  let app: TestApp;
  let auth: Port<typeof authContract>;
  let admin: UserActor;

  /** Runs `fn` as `actor`, as the gateway does after authenticating a request. */
  const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);

  async function actorOf(token: string): Promise<UserActor> {
    const { actor } = await auth.authenticate({ token });
    if (!actor) throw new Error('the token was refused');
    return actor;
  }

  const isAccepted = async (token: string) => (await auth.authenticate({ token })).actor !== null;

  async function newUser(role: 'admin' | 'user' = 'user') {
    return as(admin, () => auth.createUser({ username: uniqueUsername(), password: USER_PASSWORD, role }));
  }

  /** A fresh user, signed in: the token pair and the actor its access token stands for. */
  async function signedInUser() {
    const user = await newUser();
    const pair = await auth.login({ username: user.username, password: USER_PASSWORD });
    return { user, pair, actor: await actorOf(pair.accessToken) };
  }

  beforeAll(async () => {
    redis = await startTestRedis();
    app = await startTestApp({ redisUrl: redis.url, credentials: 'module' });
    auth = portFor(kind, app, authContract);
    admin = await actorOf((await auth.login({ username: 'admin', password: ADMIN_PASSWORD })).accessToken);
  });
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  describe('sign-in and sessions', () => {
    it('signs in with a pair: a JWT access token of at most 15 minutes and a refresh token', async () => {
      const pair = await auth.login({ username: 'admin', password: ADMIN_PASSWORD });
      expect(pair.tokenType).toBe('Bearer');
      expect(pair.expiresIn).toBeGreaterThan(0);
      expect(pair.expiresIn).toBeLessThanOrEqual(900);
      const claims = decodeJwt(pair.accessToken);
      // What the client is told is what the token says.
      expect(claims.exp! - claims.iat!).toBe(pair.expiresIn);
      expect(pair.refreshToken).not.toBe(pair.accessToken);
      // The user as the client sees it: no password hash, nothing internal.
      expect(Object.keys(pair.user).sort()).toEqual(['createdAt', 'id', 'role', 'username']);
      expect(pair.user).toMatchObject({ username: 'admin', role: 'admin' });
      const actor = await actorOf(pair.accessToken);
      expect(actor).toMatchObject({ type: 'user', id: pair.user.id, username: 'admin', roles: ['admin'] });
      expect(await as(actor, () => auth.me({}))).toEqual(pair.user);
    });

    it('answers a wrong password and an unknown user with the same code and message', async () => {
      const user = await newUser();
      const wrong = await refusal(auth.login({ username: user.username, password: 'not-the-password' }));
      const unknown = await refusal(auth.login({ username: uniqueUsername('nobody'), password: USER_PASSWORD }));
      expect(wrong).toMatchObject({ code: 'unauthenticated', message: INVALID_LOGIN });
      expect({ code: unknown.code, message: unknown.message }).toEqual({ code: wrong.code, message: wrong.message });
    });

    it('refuses me without a signed-in caller', async () => {
      expect(await refusal(auth.me({}))).toMatchObject({ code: 'unauthenticated' });
    });

    it('rotates the refresh token: the new one works, the old one is refused', async () => {
      const { user, pair: first, actor } = await signedInUser();
      const second = await auth.refresh({ refreshToken: first.refreshToken });
      expect(second.refreshToken).not.toBe(first.refreshToken);
      expect(second.user.id).toBe(user.id);
      expect(second.expiresIn).toBeLessThanOrEqual(900);
      // The same session goes on.
      expect((await actorOf(second.accessToken)).sessionId).toBe(actor.sessionId);
      expect(await refusal(auth.refresh({ refreshToken: first.refreshToken }))).toMatchObject({ code: 'unauthenticated' });
    });

    it('revokes the whole session when a spent refresh token is presented again', async () => {
      const { user, pair: first } = await signedInUser();
      const otherSession = await auth.login({ username: user.username, password: USER_PASSWORD });
      const second = await auth.refresh({ refreshToken: first.refreshToken });
      const third = await auth.refresh({ refreshToken: second.refreshToken });
      expect(await isAccepted(third.accessToken)).toBe(true);

      // The replay of a stolen token: the thief and the owner both lose the session.
      expect(await refusal(auth.refresh({ refreshToken: first.refreshToken }))).toMatchObject({ code: 'unauthenticated' });
      expect(await isAccepted(third.accessToken)).toBe(false);
      expect(await refusal(auth.refresh({ refreshToken: third.refreshToken }))).toMatchObject({ code: 'unauthenticated' });
      // Only that session: the user's other sign-in is untouched.
      expect(await isAccepted(otherSession.accessToken)).toBe(true);
    });

    it('ends the session of the access token on logout, and the one a refresh token names', async () => {
      const { user, pair: a, actor: actorA } = await signedInUser();
      const b = await auth.login({ username: user.username, password: USER_PASSWORD });
      const c = await auth.login({ username: user.username, password: USER_PASSWORD });

      expect(await as(actorA, () => auth.logout({}))).toBeNull();
      expect(await isAccepted(a.accessToken)).toBe(false);
      expect(await refusal(auth.refresh({ refreshToken: a.refreshToken }))).toMatchObject({ code: 'unauthenticated' });
      expect(await isAccepted(b.accessToken)).toBe(true);

      // Signed in with b, ending c by its refresh token (a client that lost c's access token).
      await as(await actorOf(b.accessToken), () => auth.logout({ refreshToken: c.refreshToken }));
      expect(await isAccepted(c.accessToken)).toBe(false);
      expect(await isAccepted(b.accessToken)).toBe(true);
    });

    it('refuses to change the password without the right current one, then revokes every session', async () => {
      const { user, pair: one, actor } = await signedInUser();
      const two = await auth.login({ username: user.username, password: USER_PASSWORD });

      const wrong = await refusal(as(actor, () => auth.changePassword({ currentPassword: 'not-the-password', newPassword: NEW_PASSWORD })));
      expect(wrong.code).toBe('forbidden');
      expect(await isAccepted(one.accessToken)).toBe(true);

      expect(await as(actor, () => auth.changePassword({ currentPassword: USER_PASSWORD, newPassword: NEW_PASSWORD }))).toBeNull();
      expect(await isAccepted(one.accessToken)).toBe(false);
      expect(await isAccepted(two.accessToken)).toBe(false);
      expect(await refusal(auth.refresh({ refreshToken: two.refreshToken }))).toMatchObject({ code: 'unauthenticated' });
      expect(await refusal(auth.login({ username: user.username, password: USER_PASSWORD }))).toMatchObject({ code: 'unauthenticated' });
      const after = await auth.login({ username: user.username, password: NEW_PASSWORD });
      expect(after.user.id).toBe(user.id);
    });

    it('holds passwords to 12..256 characters, naming the field', async () => {
      const create = (password: string) => as(admin, () => auth.createUser({ username: uniqueUsername(), password, role: 'user' }));
      for (const password of ['x'.repeat(11), 'x'.repeat(257)]) {
        const err = await refusal(create(password));
        expect(err.code).toBe('invalid_input');
        expect(failingFields(err)).toEqual(['password']);
      }
      // The bounds themselves are allowed.
      await create('x'.repeat(12));
      await create('x'.repeat(256));

      const { actor } = await signedInUser();
      for (const newPassword of ['y'.repeat(11), 'y'.repeat(257)]) {
        const err = await refusal(as(actor, () => auth.changePassword({ currentPassword: USER_PASSWORD, newPassword })));
        expect(err.code).toBe('invalid_input');
        expect(failingFields(err)).toEqual(['newPassword']);
      }
      // Nothing changed: the old password still signs in.
      await auth.login({ username: actor.username!, password: USER_PASSWORD });
    });
  });

  describe('users and roles', () => {
    it('keeps usernames unique regardless of case', async () => {
      const name = uniqueUsername('Bob');
      await as(admin, () => auth.createUser({ username: name, password: USER_PASSWORD, role: 'user' }));
      for (const variant of [name.toLowerCase(), name.toUpperCase()]) {
        const err = await refusal(as(admin, () => auth.createUser({ username: variant, password: USER_PASSWORD, role: 'user' })));
        expect(err.code).toBe('conflict');
      }
      const { items } = await as(admin, () => auth.listUsers({ limit: 100 }));
      expect(items.filter((u) => u.username.toLowerCase() === name.toLowerCase())).toHaveLength(1);
    });

    it('revokes the sessions of a disabled user and refuses their sign-in, until enabled again', async () => {
      const { user, pair, actor } = await signedInUser();
      const key = await as(actor, () => auth.createApiKey({ name: 'laptop' }));

      const disabled = await as(admin, () => auth.updateUser({ id: user.id, disabled: true }));
      expect(disabled).toMatchObject({ id: user.id, disabled: true });
      expect(await isAccepted(pair.accessToken)).toBe(false);
      expect(await isAccepted(key.key)).toBe(false);
      expect(await refusal(auth.refresh({ refreshToken: pair.refreshToken }))).toMatchObject({ code: 'unauthenticated' });
      // The same answer as a wrong password: a disabled account is not announced.
      expect(await refusal(auth.login({ username: user.username, password: USER_PASSWORD }))).toMatchObject({
        code: 'unauthenticated',
        message: INVALID_LOGIN,
      });

      await as(admin, () => auth.updateUser({ id: user.id, disabled: false }));
      const again = await auth.login({ username: user.username, password: USER_PASSWORD });
      expect(await isAccepted(again.accessToken)).toBe(true);
    });

    it('deletes a user with their sessions and API keys', async () => {
      const { user, pair, actor } = await signedInUser();
      const key = await as(actor, () => auth.createApiKey({ name: 'script' }));
      expect(await isAccepted(key.key)).toBe(true);

      expect(await as(admin, () => auth.deleteUser({ id: user.id }))).toBeNull();
      expect(await isAccepted(pair.accessToken)).toBe(false);
      expect(await isAccepted(key.key)).toBe(false);
      expect(await refusal(auth.refresh({ refreshToken: pair.refreshToken }))).toMatchObject({ code: 'unauthenticated' });
      expect(await refusal(auth.login({ username: user.username, password: USER_PASSWORD }))).toMatchObject({ code: 'unauthenticated' });
      const { items } = await as(admin, () => auth.listUsers({ limit: 100 }));
      expect(items.map((u) => u.id)).not.toContain(user.id);
      expect((await refusal(as(admin, () => auth.deleteUser({ id: user.id })))).code).toBe('not_found');
      expect((await refusal(as(admin, () => auth.updateUser({ id: user.id, disabled: true })))).code).toBe('not_found');
    });

    it('never leaves the system without an active admin', async () => {
      for (const change of [
        () => auth.updateUser({ id: admin.id, disabled: true }),
        () => auth.updateUser({ id: admin.id, role: 'user' }),
        () => auth.deleteUser({ id: admin.id }),
      ]) {
        expect((await refusal(as(admin, change))).code).toBe('conflict');
      }
      // A disabled admin does not count: with the second admin disabled, the first is still the last.
      const second = await newUser('admin');
      await as(admin, () => auth.updateUser({ id: second.id, disabled: true }));
      expect((await refusal(as(admin, () => auth.updateUser({ id: admin.id, role: 'user' })))).code).toBe('conflict');
      // The rule is about the last one only: another admin may be demoted and deleted.
      const third = await newUser('admin');
      expect(await as(admin, () => auth.updateUser({ id: third.id, role: 'user' }))).toMatchObject({ role: 'user' });
      await as(admin, () => auth.deleteUser({ id: second.id }));

      const stillAdmin = await auth.login({ username: 'admin', password: ADMIN_PASSWORD });
      expect(stillAdmin.user.role).toBe('admin');
    });

    it('refuses user administration to a non-admin, including raising their own role', async () => {
      const { actor } = await signedInUser();
      const other = await newUser();
      const attempts: [string, () => Promise<unknown>][] = [
        ['listUsers', () => auth.listUsers({})],
        ['createUser', () => auth.createUser({ username: uniqueUsername(), password: USER_PASSWORD, role: 'user' })],
        ['updateUser (someone else)', () => auth.updateUser({ id: other.id, disabled: true })],
        ['updateUser (own role)', () => auth.updateUser({ id: actor.id, role: 'admin' })],
        ['deleteUser', () => auth.deleteUser({ id: other.id })],
      ];
      const codes = await Promise.all(attempts.map(async ([name, call]) => [name, (await refusal(as(actor, call))).code]));
      expect(Object.fromEntries(codes)).toEqual(Object.fromEntries(attempts.map(([name]) => [name, 'forbidden'])));
      expect((await as(actor, () => auth.me({}))).role).toBe('user');
      const { items } = await as(admin, () => auth.listUsers({ limit: 100 }));
      expect(items.find((u) => u.id === other.id)).toMatchObject({ disabled: false });
    });

    it('gives an actor the current role: a demotion applies to the next request', async () => {
      const promoted = await newUser('admin');
      const pair = await auth.login({ username: promoted.username, password: USER_PASSWORD });
      expect(await actorOf(pair.accessToken)).toMatchObject({ roles: ['admin'] });
      await as(admin, () => auth.updateUser({ id: promoted.id, role: 'user' }));
      expect(await actorOf(pair.accessToken)).toMatchObject({ roles: ['user'] });
    });
  });

  describe('API keys', () => {
    it('creates abk_ keys of 256 random bits, shown once and listed without any secret', async () => {
      const { actor } = await signedInUser();
      const one = await as(actor, () => auth.createApiKey({ name: 'ci' }));
      const two = await as(actor, () => auth.createApiKey({ name: 'backup' }));
      for (const created of [one, two]) {
        expect(created.key).toMatch(/^abk_[A-Za-z0-9_-]{43,}$/);
        expect(Buffer.from(created.key.slice('abk_'.length), 'base64url').length).toBeGreaterThanOrEqual(32);
        // The prefix identifies the key in a list; it must give away only a few characters.
        expect(created.key.startsWith(created.prefix)).toBe(true);
        expect(created.prefix.length).toBeLessThanOrEqual(12);
      }
      expect(one.key).not.toBe(two.key);

      const { items } = await as(actor, () => auth.listApiKeys({}));
      expect(items.map((k) => k.name).sort()).toEqual(['backup', 'ci']);
      for (const item of items) {
        expect(Object.keys(item).sort()).toEqual(['createdAt', 'expiresAt', 'id', 'lastUsedAt', 'name', 'prefix']);
      }
      const listed = JSON.stringify(items);
      for (const created of [one, two]) {
        expect(listed).not.toContain(created.key.slice('abk_'.length));
        expect(listed).not.toContain(sha256(created.key));
      }
    });

    it('authenticates a key as its owner, without a session, and records when it was last used', async () => {
      const { user, actor } = await signedInUser();
      const created = await as(actor, () => auth.createApiKey({ name: 'cli' }));
      const lastUsed = async () => (await as(actor, () => auth.listApiKeys({}))).items.find((k) => k.id === created.id)?.lastUsedAt;
      expect(await lastUsed()).toBeNull();

      const { actor: byKey } = await auth.authenticate({ token: created.key });
      expect(byKey).toEqual({ type: 'user', id: user.id, username: user.username, roles: ['user'], apiKeyId: created.id });
      // The time is written after the answer; poll instead of guessing how long that takes.
      await expect.poll(lastUsed, { timeout: 5000 }).not.toBeNull();
      expect(Date.parse((await lastUsed())!)).not.toBeNaN();
    });

    it("refuses a revoked key; another user's key is not_found and stays valid", async () => {
      const owner = await signedInUser();
      const stranger = await signedInUser();
      const created = await as(owner.actor, () => auth.createApiKey({ name: 'mine' }));

      expect((await refusal(as(stranger.actor, () => auth.deleteApiKey({ id: created.id })))).code).toBe('not_found');
      expect(await isAccepted(created.key)).toBe(true);

      expect(await as(owner.actor, () => auth.deleteApiKey({ id: created.id }))).toBeNull();
      expect(await isAccepted(created.key)).toBe(false);
      expect((await as(owner.actor, () => auth.listApiKeys({}))).items).toEqual([]);
      expect((await refusal(as(owner.actor, () => auth.deleteApiKey({ id: created.id })))).code).toBe('not_found');
    });

    it('refuses a key once it has expired, and a key that would be born expired', async () => {
      const { actor } = await signedInUser();
      const past = new Date(Date.now() - 60_000).toISOString();
      expect((await refusal(as(actor, () => auth.createApiKey({ name: 'stale', expiresAt: past })))).code).toBe('invalid_input');

      const expiresAt = new Date(Date.now() + 2000).toISOString();
      const created = await as(actor, () => auth.createApiKey({ name: 'short', expiresAt }));
      expect(created.expiresAt).toBe(expiresAt);
      expect(await isAccepted(created.key)).toBe(true);
      await expect.poll(() => isAccepted(created.key), { timeout: 10_000, interval: 200 }).toBe(false);
    });
  });

  describe('authenticate', () => {
    it('answers null for anything that is not a live credential', async () => {
      const { pair } = await signedInUser();
      const garbage = [
        'garbage',
        'a.b.c',
        `abk_${'A'.repeat(43)}`,
        // A refresh token is not an access token.
        pair.refreshToken,
        // A token cut short or padded is not the token.
        pair.accessToken.slice(0, -2),
        `${pair.accessToken}x`,
      ];
      for (const token of garbage) expect({ token, actor: (await auth.authenticate({ token })).actor }).toEqual({ token, actor: null });
      // The same call accepts the real one: the refusals above are about the tokens.
      expect(await isAccepted(pair.accessToken)).toBe(true);
    });
  });
});
