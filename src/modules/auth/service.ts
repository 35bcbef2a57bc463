// The auth module's operations. The gateway gates routes by role, and these operations check the actor
// again, because other modules (and remote callers) reach them without the gateway.
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { Handlers, Port } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext, type Actor } from '../../kernel/context/request-context.js';
import { ModuleEventsToken, ModuleLogger, RealtimeToken, type ModuleEvents } from '../../kernel/module/tokens.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import type { Realtime } from '../../kernel/realtime/realtime.js';
import { configContract } from '../config/contract.js';
import { API_KEY_PREFIX, authContract, authSettings } from './contract.js';
import { AccessTokens } from './access-tokens.js';
import { ApiKeyStore } from './api-key-store.js';
import { LoginLimiter } from './login-limiter.js';
import { Passwords } from './passwords.js';
import { formatRefreshToken, parseRefreshToken, SessionStore } from './session-store.js';
import { UserStore, type Role, type StoredUser } from './user-store.js';

type UserActor = Extract<Actor, { type: 'user' }>;
type RevokeReason = 'logout' | 'password' | 'disabled' | 'deleted' | 'reuse';

const INVALID_LOGIN = 'invalid username or password';

function view(u: StoredUser) {
  return { id: u.id, username: u.username, role: u.role, disabled: u.disabled, createdAt: u.createdAt };
}

function meView(u: StoredUser) {
  return { id: u.id, username: u.username, role: u.role, createdAt: u.createdAt };
}

function signedIn(): UserActor {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  return actor;
}

function admin(): UserActor {
  const actor = signedIn();
  if (!actor.roles.includes('admin')) throw new ContractError('forbidden', 'this needs the admin role');
  return actor;
}

@injectable()
export class AuthService implements Handlers<typeof authContract> {
  readonly settings: SettingsHolder<typeof authSettings>;

  constructor(
    @inject(UserStore) private readonly users: UserStore,
    @inject(SessionStore) private readonly sessions: SessionStore,
    @inject(ApiKeyStore) private readonly apiKeys: ApiKeyStore,
    @inject(AccessTokens) private readonly tokens: AccessTokens,
    @inject(LoginLimiter) private readonly limiter: LoginLimiter,
    @inject(Passwords) private readonly passwords: Passwords,
    @inject(ModuleEventsToken) private readonly events: ModuleEvents,
    @inject(RealtimeToken) private readonly realtime: Realtime,
    @inject(ModuleLogger) private readonly logger: Logger,
    @inject(configContract.token) config: Port<typeof configContract>,
  ) {
    this.settings = new SettingsHolder(authSettings, async () => (await config.getModuleSettings({ module: authContract.id })).settings, logger);
  }

  private loginBudget() {
    const s = this.settings.current();
    return { maxFailures: s.loginMaxFailures, windowS: s.loginWindowS };
  }

  private async issue(user: StoredUser, sessionId: string, secret: string) {
    const ttl = this.settings.current().accessTokenTtlS;
    return {
      accessToken: await this.tokens.sign({ userId: user.id, sessionId }, ttl),
      refreshToken: formatRefreshToken({ sessionId, secret }),
      expiresIn: ttl,
      tokenType: 'Bearer' as const,
      user: meView(user),
    };
  }

  async login({ username, password }: { username: string; password: string }) {
    // The attempt is taken before the password is looked at, so parallel guesses cannot all pass a check
    // made before any of them failed; a right password gives it back.
    const attempt = await this.limiter.take(username, currentContext()?.clientAddress, this.loginBudget());
    const user = await this.users.findByUsername(username);
    // Unknown users are checked against a decoy hash: the same work, the same answer, the same time.
    const ok = await this.passwords.verify(user?.passwordHash, password);
    if (!ok || !user || user.disabled) throw new ContractError('unauthenticated', INVALID_LOGIN);
    await attempt.giveBack();
    const { sessionId, secret } = await this.sessions.create(user.id, this.settings.current().refreshTokenTtlDays * 86_400_000);
    this.logger.info({ userId: user.id, sessionId }, 'signed in');
    return this.issue(user, sessionId, secret);
  }

  async refresh({ refreshToken }: { refreshToken: string }) {
    const parsed = parseRefreshToken(refreshToken);
    if (!parsed) throw new ContractError('unauthenticated', 'invalid refresh token');
    const userId = await this.sessions.userOf(parsed.sessionId);
    const rotated = await this.sessions.rotate(parsed);
    if (rotated.outcome === 'reused' && userId) {
      this.logger.warn({ userId, sessionId: parsed.sessionId }, 'a spent refresh token was presented: session revoked');
      await this.revokeSession(userId, parsed.sessionId, 'reuse');
    }
    if (rotated.outcome !== 'rotated' || !userId) throw new ContractError('unauthenticated', 'invalid refresh token');
    const user = await this.users.get(userId);
    if (!user || user.disabled) {
      await this.revokeSession(userId, parsed.sessionId, user ? 'disabled' : 'deleted');
      throw new ContractError('unauthenticated', 'invalid refresh token');
    }
    return this.issue(user, parsed.sessionId, rotated.secret);
  }

  async logout({ refreshToken }: { refreshToken?: string }) {
    const actor = signedIn();
    // A refresh token names its session; without one, the session of the access token used is ended.
    const sessionId = refreshToken ? parseRefreshToken(refreshToken)?.sessionId : actor.sessionId;
    if (sessionId && (await this.sessions.userOf(sessionId)) === actor.id) await this.revokeSession(actor.id, sessionId, 'logout');
    return null;
  }

  async me() {
    const actor = signedIn();
    const user = await this.users.get(actor.id);
    if (!user) throw new ContractError('unauthenticated', 'the user no longer exists');
    return meView(user);
  }

  async changePassword({ currentPassword, newPassword }: { currentPassword: string; newPassword: string }) {
    const actor = signedIn();
    const user = await this.users.get(actor.id);
    if (!user) throw new ContractError('unauthenticated', 'the user no longer exists');
    // A wrong current password is a failed sign-in: with a stolen access token or API key, this would
    // otherwise be a password oracle limited only by the route's rate class.
    const attempt = await this.limiter.take(user.username, currentContext()?.clientAddress, this.loginBudget());
    if (!(await this.passwords.verify(user.passwordHash, currentPassword))) {
      throw new ContractError('forbidden', 'the current password is wrong');
    }
    await attempt.giveBack();
    await this.users.setPasswordHash(user.id, await this.passwords.hash(newPassword));
    await this.revokeAllSessions(user.id, 'password');
    return null;
  }

  async listUsers({ limit, cursor }: { limit: number; cursor?: string }) {
    admin();
    const page = await this.users.list(limit, cursor);
    return { items: page.items.map(view), nextCursor: page.nextCursor };
  }

  async createUser(input: { username: string; password: string; role: Role }) {
    admin();
    const user = await this.users.create({ username: input.username, role: input.role, passwordHash: await this.passwords.hash(input.password) });
    await this.events.publish('auth.user.created', { userId: user.id, role: user.role });
    return view(user);
  }

  async updateUser({ id, role, disabled }: { id: string; role?: Role; disabled?: boolean }) {
    admin();
    const user = await this.users.get(id);
    if (!user) throw new ContractError('not_found', 'no such user');
    const updated = await this.users.update(user, { role: role ?? user.role, disabled: disabled ?? user.disabled });
    if (updated.disabled && !user.disabled) await this.revokeAllSessions(id, 'disabled');
    // Open sockets joined the rooms of the old role at their handshake (e.g. admins hear approvals
    // only admins decide): they reconnect and are judged again.
    else if (updated.role !== user.role) this.realtime.disconnectUser(id);
    await this.events.publish('auth.user.updated', { userId: id, role: updated.role, disabled: updated.disabled });
    return view(updated);
  }

  async deleteUser({ id }: { id: string }) {
    admin();
    const user = await this.users.get(id);
    if (!user) throw new ContractError('not_found', 'no such user');
    await this.users.delete(user);
    await this.apiKeys.revokeAll(id);
    await this.revokeAllSessions(id, 'deleted');
    await this.events.publish('auth.user.deleted', { userId: id });
    return null;
  }

  async createApiKey({ name, expiresAt }: { name: string; expiresAt?: string }) {
    const actor = signedIn();
    if (expiresAt && Date.parse(expiresAt) <= Date.now()) {
      throw new ContractError('invalid_input', 'expiresAt must be in the future', [{ path: 'expiresAt', message: 'must be in the future' }]);
    }
    const iso = expiresAt ? new Date(expiresAt).toISOString() : null;
    const { key, stored } = await this.apiKeys.create(actor.id, name, iso);
    return { id: stored.id, name: stored.name, prefix: stored.prefix, createdAt: stored.createdAt, expiresAt: stored.expiresAt, key };
  }

  async listApiKeys() {
    const actor = signedIn();
    const keys = await this.apiKeys.list(actor.id);
    return {
      items: keys.map((k) => ({ id: k.id, name: k.name, prefix: k.prefix, createdAt: k.createdAt, expiresAt: k.expiresAt, lastUsedAt: k.lastUsedAt })),
      nextCursor: null,
    };
  }

  async deleteApiKey({ id }: { id: string }) {
    await this.apiKeys.revoke(signedIn().id, id);
    this.realtime.disconnectApiKey(id);
    return null;
  }

  async rotateSigningKey() {
    const actor = admin();
    const rotation = await this.tokens.rotate();
    this.logger.warn({ by: actor.id, keyId: rotation.keyId, previousKeyId: rotation.previousKeyId }, 'access-token signing key rotated');
    return rotation;
  }

  /** The actor behind a credential, with the user's current role; null for anything not valid now. */
  async authenticate({ token }: { token: string }) {
    if (token.startsWith(API_KEY_PREFIX)) {
      const key = await this.apiKeys.find(token);
      const user = key ? await this.users.brief(key.userId) : undefined;
      if (!key || !user || user.disabled) return { actor: null };
      return { actor: { type: 'user' as const, id: key.userId, username: user.username, roles: [user.role], apiKeyId: key.id } };
    }
    const claims = await this.tokens.verify(token);
    if (!claims) return { actor: null };
    const [owner, user] = await Promise.all([this.sessions.userOf(claims.sessionId), this.users.brief(claims.userId)]);
    if (owner !== claims.userId || !user || user.disabled) return { actor: null };
    return { actor: { type: 'user' as const, id: claims.userId, username: user.username, roles: [user.role], sessionId: claims.sessionId } };
  }

  private async revokeSession(userId: string, sessionId: string, reason: RevokeReason) {
    await this.sessions.revoke(sessionId, userId);
    this.realtime.disconnectSession(sessionId);
    await this.events.publish('auth.session.revoked', { userId, sessionId, reason });
  }

  private async revokeAllSessions(userId: string, reason: RevokeReason) {
    await this.sessions.revokeAll(userId);
    this.realtime.disconnectUser(userId);
    await this.events.publish('auth.session.revoked', { userId, sessionId: null, reason });
  }
}
