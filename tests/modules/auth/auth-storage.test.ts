// What the auth module keeps at rest, read straight from Redis as someone with a copy of the database
// would: argon2id password hashes at (at least) the OWASP parameters, and no password, token or API key in
// clear anywhere. And the first start: the first admin, with the configured password or with a generated
// one that is logged exactly once.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../../support/app.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { authHttp, USER_PASSWORD, type AuthHttp, type CreatedApiKey, type TokenPair } from '../../support/auth-http.js';

const NEW_PASSWORD = 'the-second-passphrase';

interface StoredEntry {
  db: number;
  key: string;
  /** The value as text, whatever its type (hash fields and values, set and list members, …). */
  value: string;
}

/** Every key of every database with its value, read according to its type. */
async function dumpRedis(socketPath: string): Promise<StoredEntry[]> {
  const root = new Redis({ path: socketPath });
  const keyspace = await root.info('keyspace');
  root.disconnect();
  const dbs = [...keyspace.matchAll(/^db(\d+):/gm)].map((m) => Number(m[1]));
  const entries: StoredEntry[] = [];
  for (const db of dbs) {
    const client = new Redis({ path: socketPath, db });
    try {
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'COUNT', 500);
        cursor = next;
        for (const key of keys) entries.push({ db, key, value: JSON.stringify(await readAnyType(client, key)) });
      } while (cursor !== '0');
    } finally {
      client.disconnect();
    }
  }
  return entries;
}

async function readAnyType(client: Redis, key: string): Promise<unknown> {
  const type = await client.type(key);
  switch (type) {
    case 'string':
      return client.get(key);
    case 'hash':
      return client.hgetall(key);
    case 'list':
      return client.lrange(key, 0, -1);
    case 'set':
      return client.smembers(key);
    case 'zset':
      return client.zrange(key, '0', '-1', 'WITHSCORES');
    case 'stream':
      return client.xrange(key, '-', '+');
    case 'none':
      // Expired between SCAN and TYPE.
      return null;
    default:
      throw new Error(`a key of type ${type} (${key}): teach dumpRedis to read it`);
  }
}

/** A secret and the other encodings of the same bytes someone might store instead of hashing. */
function encodings(secret: string): string[] {
  const variants = [secret];
  if (/^[A-Za-z0-9_-]{32,}$/.test(secret)) {
    const bytes = Buffer.from(secret, 'base64url');
    variants.push(bytes.toString('hex'), bytes.toString('base64').replace(/=+$/, ''));
  }
  return variants;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface ArgonParams {
  variant: string;
  version: number;
  m: number;
  t: number;
  p: number;
  salt: string;
}

/** Parses a PHC string: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>. */
function parsePhc(phc: string): ArgonParams | undefined {
  const m = /^\$(argon2(?:id|i|d))\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(phc);
  if (!m) return undefined;
  return { variant: m[1]!, version: Number(m[2]), m: Number(m[3]), t: Number(m[4]), p: Number(m[5]), salt: m[6]! };
}

function capturedLogger(): { logger: Logger; text: () => string; records: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  return {
    logger,
    text: () => lines.join(''),
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('auth data at rest', () => {
  let redis: TestRedis;
  let app: TestApp;
  let http: AuthHttp;
  /** Every pair the user was given, by what became of it. */
  let pairs: Record<'ended by the password change' | 'never refreshed' | 'spent by a refresh' | 'live after a refresh', TokenPair>;
  let apiKey: CreatedApiKey;
  let username: string;

  beforeAll(async () => {
    redis = await startTestRedis();
    app = await startTestApp({ redisUrl: redis.url, credentials: 'module' });
    http = authHttp(app.url);
    const admin = await http.login('admin', ADMIN_PASSWORD);
    const user = await http.createUser(admin.accessToken);
    username = user.username;
    // One of everything a user leaves behind: an ended session, a session never refreshed, a spent and a
    // live refresh token, a used API key, a failed sign-in and a changed password.
    const ended = await http.login(username, USER_PASSWORD);
    apiKey = await http.createApiKey(ended.accessToken);
    expect((await http.request('GET', '/auth/me', { token: apiKey.key })).status).toBe(200);
    expect((await http.request('POST', '/auth/login', { body: { username, password: 'a-wrong-password' } })).status).toBe(401);
    const changed = await http.request('POST', '/auth/password', {
      token: ended.accessToken,
      body: { currentPassword: USER_PASSWORD, newPassword: NEW_PASSWORD },
    });
    expect(changed.status).toBe(204);
    const untouched = await http.login(username, NEW_PASSWORD);
    const spent = await http.login(username, NEW_PASSWORD);
    const refreshed = await http.request('POST', '/auth/refresh', { body: { refreshToken: spent.refreshToken } });
    expect(refreshed.status).toBe(200);
    pairs = {
      'ended by the password change': ended,
      'never refreshed': untouched,
      'spent by a refresh': spent,
      'live after a refresh': (await refreshed.json()) as TokenPair,
    };
  });
  afterAll(async () => {
    await app?.stop();
    await redis?.stop();
  });

  it('keeps the module in database 5 under auth:', async () => {
    const entries = await dumpRedis(redis.target.path!);
    const authEntries = entries.filter((e) => e.key.startsWith('auth:'));
    expect(authEntries.length).toBeGreaterThan(0);
    expect(new Set(authEntries.map((e) => e.db))).toEqual(new Set([5]));
  });

  it('hashes every password with argon2id, m >= 19456 KiB, t >= 2, p = 1, each with its own salt', async () => {
    const entries = (await dumpRedis(redis.target.path!)).filter((e) => e.db === 5);
    // Any value that looks like a password hash of any scheme, wherever the store put it.
    const hashes = entries.flatMap((e) => [...e.value.matchAll(/\$(?:argon2[a-z]*|2[aby]|scrypt|pbkdf2[^$]*)\$[^"]+/g)].map((m) => m[0]));
    // At least the admin's and the user's.
    expect(hashes.length).toBeGreaterThanOrEqual(2);
    for (const hash of hashes) {
      const p = parsePhc(hash);
      expect(p, hash).toBeDefined();
      expect({ variant: p!.variant, version: p!.version, p: p!.p }).toEqual({ variant: 'argon2id', version: 19, p: 1 });
      expect(p!.m).toBeGreaterThanOrEqual(19_456);
      expect(p!.t).toBeGreaterThanOrEqual(2);
      expect(Buffer.from(p!.salt, 'base64').length).toBeGreaterThanOrEqual(16);
    }
    const salts = hashes.map((h) => parsePhc(h)!.salt);
    expect(new Set(salts).size).toBe(salts.length);
  });

  it('keeps no password, token or API key in clear, in any key or value of any database', async () => {
    const entries = await dumpRedis(redis.target.path!);
    const stored = entries.map((e) => `${e.db} ${e.key} ${e.value}`).join('\n');
    // The dump is the real thing: it holds the user and the digest of the API key.
    expect(stored).toContain(username);
    expect(stored).toContain(sha256(apiKey.key));

    const secrets: Record<string, string> = {
      'admin password': ADMIN_PASSWORD,
      'first user password': USER_PASSWORD,
      'changed user password': NEW_PASSWORD,
      'API key': apiKey.key,
      'API key secret part': apiKey.key.slice('abk_'.length),
    };
    // A refresh token is `<session id>.<secret>`: the session id may name a key, the secret must not appear.
    const refreshSecrets = Object.values(pairs).map((pair) => pair.refreshToken.split('.').pop()!);
    for (const [what, pair] of Object.entries(pairs)) {
      secrets[`refresh token (${what})`] = pair.refreshToken;
      secrets[`refresh secret (${what})`] = pair.refreshToken.split('.').pop()!;
      secrets[`access token (${what})`] = pair.accessToken;
    }
    const found = Object.entries(secrets).flatMap(([what, secret]) =>
      encodings(secret)
        .filter((variant) => stored.includes(variant))
        .map(() => what),
    );
    // Nor a piece of one: only the few characters of the key's public prefix may be stored. Ten random
    // base64url characters match by chance with odds of 1 in 2^60.
    const keySecret = apiKey.key.slice(apiKey.prefix.length);
    for (const [what, secret] of [['API key', keySecret], ...refreshSecrets.map((s) => ['refresh secret', s] as const)] as const) {
      for (let i = 0; i + 10 <= secret.length; i++) if (stored.includes(secret.slice(i, i + 10))) found.push(`part of the ${what}`);
    }
    expect(found).toEqual([]);
  });

  it('stores an API key as its SHA-256 hex digest (the clear key is checked absent above)', async () => {
    const entries = (await dumpRedis(redis.target.path!)).filter((e) => e.db === 5);
    const digest = sha256(apiKey.key);
    expect(entries.filter((e) => e.key.includes(digest) || e.value.includes(digest)).length).toBeGreaterThan(0);
  });

  it('keeps nothing of a deleted user: no user record, session or API key', async () => {
    const admin = await http.login('admin', ADMIN_PASSWORD);
    const doomed = await http.signedInUser(admin.accessToken);
    const key = await http.createApiKey(doomed.accessToken);
    const sessionId = doomed.refreshToken.split('.')[0]!;
    const traces = async () =>
      (await dumpRedis(redis.target.path!))
        .filter((e) => e.db === 5)
        .filter((e) => [doomed.user.id, sessionId, sha256(key.key)].some((t) => e.key.includes(t) || e.value.includes(t)))
        .map((e) => e.key);
    // Before: the user, the session and the key are all there, so the search below finds what it looks for.
    expect((await traces()).length).toBeGreaterThanOrEqual(3);

    expect((await http.request('DELETE', `/auth/users/${doomed.user.id}`, { token: admin.accessToken })).status).toBe(204);
    // Authentication would refuse leftovers anyway (their user is gone); this is about not keeping them.
    expect(await traces()).toEqual([]);
  });
});

describe('first start', () => {
  it('creates "admin" with AUTOBOT_ADMIN_PASSWORD, does not log it, and ignores the variable once users exist', async () => {
    const redis = await startTestRedis();
    try {
      const logs = capturedLogger();
      const first = await startTestApp({ redisUrl: redis.url, credentials: 'module', logger: logs.logger });
      try {
        const pair = await authHttp(first.url).login('admin', ADMIN_PASSWORD);
        expect(pair.user.role).toBe('admin');
      } finally {
        await first.stop();
      }
      expect(logs.text()).toContain('created the first user');
      expect(logs.text()).not.toContain(ADMIN_PASSWORD);

      const other = 'another-admin-password';
      const second = await startTestApp({ redisUrl: redis.url, credentials: 'module', env: { AUTOBOT_ADMIN_PASSWORD: other } });
      try {
        const http = authHttp(second.url);
        const pair = await http.login('admin', ADMIN_PASSWORD);
        expect((await http.request('POST', '/auth/login', { body: { username: 'admin', password: other } })).status).toBe(401);
        const list = (await (await http.request('GET', '/auth/users', { token: pair.accessToken })).json()) as { items: { username: string }[] };
        expect(list.items.map((u) => u.username)).toEqual(['admin']);
      } finally {
        await second.stop();
      }
    } finally {
      await redis.stop();
    }
  });

  it('without AUTOBOT_ADMIN_PASSWORD, generates one and logs it exactly once, on the first start only', async () => {
    const redis = await startTestRedis();
    try {
      const firstLogs = capturedLogger();
      // An empty variable counts as unset (loadConfig), which overrides the test default.
      const noPassword = { AUTOBOT_ADMIN_PASSWORD: '' };
      const first = await startTestApp({ redisUrl: redis.url, credentials: 'module', env: noPassword, logger: firstLogs.logger });
      let generated: string;
      try {
        const shown = firstLogs.records().filter((r) => 'generatedPassword' in r);
        expect(shown).toHaveLength(1);
        expect(shown[0]).toMatchObject({ level: 40, username: 'admin' });
        generated = String(shown[0]!.generatedPassword);
        expect(generated.length).toBeGreaterThanOrEqual(12);
        // Once in the whole output, not also in some other line.
        expect(firstLogs.text().split(generated)).toHaveLength(2);
        const pair = await authHttp(first.url).login('admin', generated);
        expect(pair.user.role).toBe('admin');
      } finally {
        await first.stop();
      }

      const secondLogs = capturedLogger();
      const second = await startTestApp({ redisUrl: redis.url, credentials: 'module', env: noPassword, logger: secondLogs.logger });
      try {
        // The restart logged (so the capture works) but said nothing about the password.
        expect(secondLogs.text()).toContain('AutoBot is ready');
        expect(secondLogs.records().filter((r) => 'generatedPassword' in r)).toEqual([]);
        expect(secondLogs.text()).not.toContain(generated);
        expect((await authHttp(second.url).login('admin', generated)).user.role).toBe('admin');
      } finally {
        await second.stop();
      }
      const stored = (await dumpRedis(redis.target.path!)).map((e) => `${e.key} ${e.value}`).join('\n');
      expect(stored).not.toContain(generated);
    } finally {
      await redis.stop();
    }
  });
});
