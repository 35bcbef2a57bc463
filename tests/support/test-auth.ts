// A stand-in for the auth module's port in tests (it does not exist yet): fixed tokens for an admin and a
// plain user. Everything else is refused, as the real one would.
import type { Actor } from '../../src/kernel/context/request-context.js';
import type { Authenticator } from '../../src/gateway/authenticator.js';

export const ADMIN_TOKEN = 'test-admin-token';
export const USER_TOKEN = 'test-user-token';

export const adminActor: Actor = { type: 'user', id: 'u-admin', username: 'admin', roles: ['admin'] };
export const userActor: Actor = { type: 'user', id: 'u-user', username: 'alice', roles: ['user'] };

export const testAuthenticator: Authenticator = async (token) =>
  token === ADMIN_TOKEN ? adminActor : token === USER_TOKEN ? userActor : undefined;

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
