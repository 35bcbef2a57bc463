// Who is calling: users with roles, password sign-in with short-lived access tokens and rotating
// refresh tokens, API keys, and the `authenticate` operation the gateway asks for every credential.
import { z } from 'zod';
import { defineContract, event, operation } from '../../kernel/contract/index.js';

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;
export const API_KEY_PREFIX = 'abk_';

const role = z.enum(['admin', 'user']);
const password = z.string().min(PASSWORD_MIN, `at least ${PASSWORD_MIN} characters`).max(PASSWORD_MAX, `at most ${PASSWORD_MAX} characters`);
const username = z
  .string()
  .trim()
  .min(3)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, dot, dash and underscore; starting with a letter or digit');

export const userView = z.object({
  id: z.string(),
  username: z.string(),
  role,
  disabled: z.boolean(),
  createdAt: z.string(),
});

const me = userView.pick({ id: true, username: true, role: true, createdAt: true });

const tokenPair = z.object({
  accessToken: z.string(),
  refreshToken: z.string(),
  /** Seconds until the access token expires. */
  expiresIn: z.number().int(),
  tokenType: z.literal('Bearer'),
  user: me,
});

const apiKeyView = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
});

const actorOut = z.object({
  type: z.literal('user'),
  id: z.string(),
  username: z.string(),
  roles: z.array(z.string()),
  sessionId: z.string().optional(),
  apiKeyId: z.string().optional(),
});

const page = { limit: z.coerce.number().int().min(1).max(100).default(20), cursor: z.string().max(200).optional() };

export const authSettings = z.object({
  accessTokenTtlS: z.number().int().min(60).max(900).default(900).describe('Access token lifetime (at most 15 minutes)'),
  refreshTokenTtlDays: z.number().int().min(1).max(365).default(30).describe('Refresh token (session) lifetime'),
  loginMaxFailures: z.number().int().min(1).max(100).default(5).describe('Failed sign-ins allowed per username and per address'),
  loginWindowS: z.number().int().min(60).max(86_400).default(900).describe('Window over which failed sign-ins count'),
});

export const authContract = defineContract({
  id: 'auth',
  summary: 'Users and roles, sign-in with access and refresh tokens, API keys.',
  operations: {
    login: operation({ input: z.object({ username: z.string().max(256), password: z.string().max(PASSWORD_MAX) }), output: tokenPair }),
    refresh: operation({ input: z.object({ refreshToken: z.string().min(1).max(512) }), output: tokenPair }),
    logout: operation({ input: z.object({ refreshToken: z.string().max(512).optional() }), output: z.null() }),
    me: operation({ input: z.object({}), output: me, idempotent: true }),
    changePassword: operation({ input: z.object({ currentPassword: z.string().max(PASSWORD_MAX), newPassword: password }), output: z.null() }),
    listUsers: operation({ input: z.object(page), output: z.object({ items: z.array(userView), nextCursor: z.string().nullable() }), idempotent: true }),
    createUser: operation({ input: z.object({ username, password, role: role.default('user') }), output: userView }),
    updateUser: operation({
      input: z.object({ id: z.string().min(1), role: role.optional(), disabled: z.boolean().optional() }),
      output: userView,
    }),
    deleteUser: operation({ input: z.object({ id: z.string().min(1) }), output: z.null() }),
    createApiKey: operation({
      input: z.object({ name: z.string().trim().min(1).max(100), expiresAt: z.iso.datetime({ offset: true }).optional() }),
      output: apiKeyView.pick({ id: true, name: true, prefix: true, createdAt: true, expiresAt: true }).extend({ key: z.string() }),
    }),
    listApiKeys: operation({ input: z.object({}), output: z.object({ items: z.array(apiKeyView), nextCursor: z.null() }), idempotent: true }),
    deleteApiKey: operation({ input: z.object({ id: z.string().min(1) }), output: z.null() }),
    rotateSigningKey: operation({
      input: z.object({}),
      output: z.object({ keyId: z.string(), previousKeyId: z.string().nullable(), previousValidUntil: z.string().nullable() }),
      summary: 'Signs new access tokens with a new key; tokens signed with the previous one keep working until they expire',
    }),
    authenticate: operation({
      input: z.object({ token: z.string().min(1).max(4096) }),
      output: z.object({ actor: actorOut.nullable() }),
      idempotent: true,
      timeoutMs: 3000,
      summary: 'The actor behind an access token or API key, or null',
    }),
  },
  events: {
    'auth.user.created': event({ payload: z.object({ userId: z.string(), role }) }),
    'auth.user.updated': event({ payload: z.object({ userId: z.string(), role, disabled: z.boolean() }) }),
    'auth.user.deleted': event({ payload: z.object({ userId: z.string() }) }),
    'auth.session.revoked': event({
      payload: z.object({ userId: z.string(), sessionId: z.string().nullable(), reason: z.enum(['logout', 'password', 'disabled', 'deleted', 'reuse']) }),
    }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'not_found', 'conflict', 'rate_limited'],
  settings: authSettings,
  routes: [
    { method: 'POST', path: '/auth/login', operation: 'login', auth: 'public', rateLimit: 'auth' },
    { method: 'POST', path: '/auth/refresh', operation: 'refresh', auth: 'public', rateLimit: 'auth' },
    { method: 'POST', path: '/auth/logout', operation: 'logout', auth: 'user', status: 204 },
    { method: 'GET', path: '/auth/me', operation: 'me', auth: 'user' },
    { method: 'POST', path: '/auth/password', operation: 'changePassword', auth: 'user', rateLimit: 'auth', status: 204 },
    { method: 'GET', path: '/auth/users', operation: 'listUsers', auth: 'admin' },
    { method: 'POST', path: '/auth/keys/rotate', operation: 'rotateSigningKey', auth: 'admin' },
    { method: 'POST', path: '/auth/users', operation: 'createUser', auth: 'admin', status: 201 },
    { method: 'PATCH', path: '/auth/users/:id', operation: 'updateUser', auth: 'admin' },
    { method: 'DELETE', path: '/auth/users/:id', operation: 'deleteUser', auth: 'admin', status: 204 },
    { method: 'POST', path: '/auth/api-keys', operation: 'createApiKey', auth: 'user', status: 201 },
    { method: 'GET', path: '/auth/api-keys', operation: 'listApiKeys', auth: 'user' },
    { method: 'DELETE', path: '/auth/api-keys/:id', operation: 'deleteApiKey', auth: 'user', status: 204 },
  ],
});
