// Sign-in limits under parallel load: an attempt is taken before the password is checked, so a burst of
// guesses sent at once checks at most the budget's number of passwords, whether it comes from one
// address or is spread over many. A right password gives its attempt back, and a wrong current password
// on POST /auth/password counts against the same per-user budget.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { catalogue } from '../../../src/modules/catalogue.js';
import { Passwords } from '../../../src/modules/auth/passwords.js';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../../support/app.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { authHttp, expectErrorEnvelope, USER_PASSWORD, type AuthHttp } from '../../support/auth-http.js';

// The gateway's own `auth` class would answer 429 first; the module's failed sign-in budget is the subject.
const RATE_LIMITS = JSON.stringify({ auth: { points: 10_000, durationS: 60 } });
const BUDGET = 5;
const BURST = 40;

let redis: TestRedis;
let app: TestApp;
let http: AuthHttp;
let adminToken: string;
let nextAddress = 1;

/** A client address of its own (through the trusted loopback proxy), so each test has fresh address budgets. */
const freshAddress = () => `203.0.113.${nextAddress++}`;

beforeAll(async () => {
  redis = await startTestRedis();
  // X-Forwarded-For from loopback is believed: that is how the tests speak from many addresses.
  app = await startTestApp({ redisUrl: redis.url, credentials: 'module', catalogue, env: { AUTOBOT_RATE_LIMITS: RATE_LIMITS, AUTOBOT_TRUST_PROXY: 'loopback' } });
  http = authHttp(app.url);
  adminToken = (await loginFrom(freshAddress(), 'admin', ADMIN_PASSWORD).then((r) => r.json() as Promise<{ accessToken: string }>)).accessToken;
});

afterAll(async () => {
  await app?.stop();
  await redis?.stop();
});

afterEach(() => {
  vi.restoreAllMocks();
});

function loginFrom(address: string, username: string, password: string): Promise<Response> {
  return fetch(`${app.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
    body: JSON.stringify({ username, password }),
  });
}

/** Counts the passwords the auth module checks from now on. */
function countVerifications(): { readonly count: number } {
  const spy = vi.spyOn(Passwords.prototype, 'verify');
  return {
    get count() {
      return spy.mock.calls.length;
    },
  };
}

async function burst(username: string, addressOf: (i: number) => string): Promise<number[]> {
  const answers = await Promise.all(Array.from({ length: BURST }, (_, i) => loginFrom(addressOf(i), username, `wrong-guess-${i}`)));
  await Promise.all(answers.map((r) => r.text()));
  return answers.map((r) => r.status);
}

const tally = (statuses: number[]) => statuses.reduce<Record<number, number>>((t, s) => ({ ...t, [s]: (t[s] ?? 0) + 1 }), {});

describe('parallel wrong guesses', () => {
  it(`check at most ${BUDGET} passwords when ${BURST} arrive at once from one address`, async () => {
    const user = await http.createUser(adminToken);
    const address = freshAddress();
    const verified = countVerifications();
    const statuses = await burst(user.username, () => address);
    expect(verified.count).toBeLessThanOrEqual(BUDGET);
    expect(tally(statuses)).toEqual({ 401: BUDGET, 429: BURST - BUDGET });
    // And the right password is refused too while the window lasts: the lockout is no oracle.
    await expectErrorEnvelope(await loginFrom(freshAddress(), user.username, USER_PASSWORD), 429, 'rate_limited');
  });

  it(`check at most ${BUDGET} passwords when ${BURST} arrive at once from ${BURST} addresses`, async () => {
    const user = await http.createUser(adminToken);
    const addresses = Array.from({ length: BURST }, freshAddress);
    const verified = countVerifications();
    const statuses = await burst(user.username, (i) => addresses[i]!);
    expect(verified.count).toBeLessThanOrEqual(BUDGET);
    expect(tally(statuses)).toEqual({ 401: BUDGET, 429: BURST - BUDGET });
  });

  it(`check at most ${BUDGET} passwords when one address guesses at ${BURST} usernames at once`, async () => {
    const address = freshAddress();
    const verified = countVerifications();
    const answers = await Promise.all(Array.from({ length: BURST }, (_, i) => loginFrom(address, `someone-${address}-${i}`, 'a-guess')));
    await Promise.all(answers.map((r) => r.text()));
    expect(verified.count).toBeLessThanOrEqual(BUDGET);
    expect(tally(answers.map((r) => r.status))).toEqual({ 401: BUDGET, 429: BURST - BUDGET });
  });
});

describe('a right password', () => {
  it('gives its attempt back: only failures count against the budget', async () => {
    const user = await http.createUser(adminToken);
    const address = freshAddress();
    for (let i = 1; i < BUDGET; i++) expect((await loginFrom(address, user.username, `wrong-${i}`)).status).toBe(401);
    // Several right sign-ins in a row: none of them spends what is left.
    for (let i = 0; i < 3; i++) expect((await loginFrom(address, user.username, USER_PASSWORD)).status).toBe(200);
    expect((await loginFrom(address, user.username, 'wrong-last')).status).toBe(401);
    await expectErrorEnvelope(await loginFrom(address, user.username, 'wrong-over'), 429, 'rate_limited');
  });
});

describe('POST /auth/password with a wrong current password', () => {
  it('counts as a failed sign-in of that user, with the same budget', async () => {
    const user = await http.createUser(adminToken);
    const address = freshAddress();
    const session = (await (await loginFrom(address, user.username, USER_PASSWORD)).json()) as { accessToken: string };
    const change = (currentPassword: string) =>
      fetch(`${app.url}/api/v1/auth/password`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': freshAddress(), authorization: `Bearer ${session.accessToken}` },
        body: JSON.stringify({ currentPassword, newPassword: 'a-new-long-passphrase' }),
      });
    const verified = countVerifications();
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => change(`not-it-${i}`).then(async (r) => (await r.text(), r.status))));
    expect(verified.count).toBeLessThanOrEqual(BUDGET);
    expect(tally(statuses)).toEqual({ 403: BUDGET, 429: 20 - BUDGET });
    // The same budget as sign-in: the right password cannot sign in now either, from anywhere.
    await expectErrorEnvelope(await loginFrom(freshAddress(), user.username, USER_PASSWORD), 429, 'rate_limited');
    await expectErrorEnvelope(await change(USER_PASSWORD), 429, 'rate_limited');
  });
});
