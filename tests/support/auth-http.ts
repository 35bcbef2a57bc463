// REST helpers for tests that sign in with the real auth module (startTestApp({ credentials: 'module' })
// or a child process running src/main.ts): JSON requests with a bearer token, sign-in and the fixtures
// most tests need (a fresh user, an API key), each checked on the way so a broken fixture fails loudly.
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';

/** A password that satisfies the policy (12 to 256 characters). */
export const USER_PASSWORD = 'correct-horse-battery';

export interface SignedInUser {
  id: string;
  username: string;
  role: 'admin' | 'user';
  createdAt: string;
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  tokenType: 'Bearer';
  user: SignedInUser;
}

export interface ErrorEnvelope {
  code: string;
  message: string;
  requestId: string;
  details?: unknown;
}

export interface CreatedApiKey {
  id: string;
  key: string;
  prefix: string;
}

/** A username no other test in the file uses (the module's Redis is shared by a whole file). */
export function uniqueUsername(prefix = 'user'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Asserts the API's error envelope (API.md): status, code, a message and the request id of the response. */
export async function expectErrorEnvelope(res: Response, status: number, code: string): Promise<ErrorEnvelope> {
  const body = (await res.json()) as { error?: ErrorEnvelope };
  expect({ status: res.status, code: body.error?.code }).toEqual({ status, code });
  expect(body.error?.message).toBeTruthy();
  expect(body.error?.requestId).toBe(res.headers.get('x-request-id'));
  return body.error!;
}

export interface AuthHttp {
  request(method: string, path: string, opts?: { token?: string; body?: unknown }): Promise<Response>;
  login(username: string, password: string): Promise<TokenPair>;
  createUser(adminToken: string, opts?: { role?: 'admin' | 'user'; username?: string }): Promise<SignedInUser & { disabled: boolean }>;
  /** A fresh user, signed in. */
  signedInUser(adminToken: string, role?: 'admin' | 'user'): Promise<TokenPair>;
  createApiKey(token: string, name?: string): Promise<CreatedApiKey>;
}

/** Helpers bound to one AutoBot base URL (`http://127.0.0.1:<port>`). */
export function authHttp(baseUrl: string): AuthHttp {
  const request: AuthHttp['request'] = (method, path, opts = {}) =>
    fetch(`${baseUrl}/api/v1${path}`, {
      method,
      headers: {
        ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
    });

  async function json<T>(res: Response, status: number, what: string): Promise<T> {
    const text = await res.text();
    if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  const login: AuthHttp['login'] = async (username, password) =>
    json<TokenPair>(await request('POST', '/auth/login', { body: { username, password } }), 200, `sign-in as ${username}`);

  const createUser: AuthHttp['createUser'] = async (adminToken, opts = {}) => {
    const body = { username: opts.username ?? uniqueUsername(), password: USER_PASSWORD, role: opts.role ?? 'user' };
    return json(await request('POST', '/auth/users', { token: adminToken, body }), 201, `create user ${body.username}`);
  };

  return {
    request,
    login,
    createUser,
    async signedInUser(adminToken, role = 'user') {
      const user = await createUser(adminToken, { role });
      return login(user.username, USER_PASSWORD);
    },
    async createApiKey(token, name = 'test key') {
      return json(await request('POST', '/auth/api-keys', { token, body: { name } }), 201, 'create an API key');
    },
  };
}
