// The browser contract on both bindings, with real Chromium behind the module's guard proxy and a local
// web site allow-listed by host:port: sessions owned by their user, navigation, every action, screenshot,
// content in three formats, one-shot reads, limits and input validation; and the REST surface.
import { randomUUID } from 'node:crypto';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Download, Port } from '../../../src/kernel/contract/define.js';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import { browserContract } from '../../../src/modules/browser/contract.js';
import { authContract } from '../../../src/modules/auth/contract.js';
import { configContract } from '../../../src/modules/config/contract.js';
import { ADMIN_PASSWORD, startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, adminActor, USER_TOKEN, userActor } from '../../support/test-auth.js';
import { startForbiddenServer, startSite, type CountingServer, type SiteServer } from './web-fixtures.js';

let redis: TestRedis;
let app: TestApp;
let site: SiteServer;
let forbidden: CountingServer;

const bob: Actor = { type: 'user', id: 'u-bob', username: 'bob', roles: ['user'] };
const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);
const alice = <T>(fn: () => Promise<T>) => as(userActor, fn);

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string; details?: unknown }> {
  try {
    await p;
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected a refusal');
}

async function bytesOf(d: Download): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of d.body) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function until(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function setBrowserSettings(settings: Record<string, unknown>): Promise<void> {
  const config = app.runtime.port(configContract);
  await as(adminActor, () => config.updateSettings({ changes: { browser: settings } }));
}

beforeAll(async () => {
  forbidden = await startForbiddenServer();
  site = await startSite(forbidden.port);
  redis = await startTestRedis();
  app = await startTestApp({ redisUrl: redis.url });
  await setBrowserSettings({ allowHosts: [`127.0.0.1:${site.port}`], actionTimeoutMs: 1000, maxSessionsPerUser: 3 });
  const local = app.runtime.port(browserContract);
  // Settings reach the module through config.settings.changed.
  // The first read also starts Chromium, which takes seconds on a busy machine.
  await until(async () => (await alice(() => local.fetchPage({ url: `${site.url}/article` }))).status === 200, 'the allow-list', 60_000);
}, 90_000);

afterAll(async () => {
  await app?.stop();
  await redis?.stop();
  await site?.close();
  await forbidden?.close();
});

describe.each(bindingKinds)('browser contract (%s binding)', (kind) => {
  let browser: Port<typeof browserContract>;
  let id: string;

  beforeAll(async () => {
    browser = portFor(kind, app, browserContract);
    id = (await alice(() => browser.createSession({}))).id;
  });
  afterAll(async () => {
    await alice(() => browser.closeSession({ id })).catch(() => undefined);
  });

  it('opens a session for the caller and lists it as theirs only', async () => {
    const created = await alice(() => browser.createSession({}));
    expect(created.id).toMatch(/^bs_/);
    expect(created.idleTimeoutS).toBeGreaterThan(0);
    const mine = await alice(() => browser.listSessions({}));
    expect(mine.items.map((s) => s.id)).toEqual(expect.arrayContaining([id, created.id]));
    expect((await as(bob, () => browser.listSessions({}))).items).toEqual([]);
    expect(await alice(() => browser.closeSession({ id: created.id }))).toBeNull();
    expect((await alice(() => browser.listSessions({}))).items.map((s) => s.id)).not.toContain(created.id);
  });

  it('navigates and answers the final URL, title and status', async () => {
    const r = await alice(() => browser.navigate({ id, url: `${site.url}/redirect?to=/article` }));
    expect(r).toEqual({ url: `${site.url}/article`, title: 'Reading with AutoBot', status: 200 });
    const missing = await alice(() => browser.navigate({ id, url: `${site.url}/missing` }));
    expect(missing).toMatchObject({ status: 404, title: 'gone' });
  });

  it('refuses a forbidden address with 403, directly and after a redirect, with no connection', async () => {
    for (const url of [`http://127.0.0.1:${forbidden.port}/`, `${site.url}/redirect?to=${encodeURIComponent(`http://localhost:${forbidden.port}/`)}`, 'file:///etc/passwd']) {
      const err = await refusal(alice(() => browser.navigate({ id, url })));
      expect(err.code, url).toBe('forbidden');
    }
    expect(forbidden.connections()).toBe(0);
  });

  it('keeps sessions to their owner: another user gets 404 for every operation', async () => {
    const calls = [
      () => browser.navigate({ id, url: `${site.url}/article` }),
      () => browser.act({ id, action: 'click', selector: 'a' }),
      () => browser.screenshot({ id }),
      () => browser.getContent({ id, format: 'text' }),
      () => browser.closeSession({ id }),
    ] as (() => Promise<unknown>)[];
    for (const call of calls) expect((await refusal(as(bob, call))).code).toBe('not_found');
    // Still Alice's and still open.
    await alice(() => browser.navigate({ id, url: `${site.url}/article` }));
    expect((await alice(() => browser.getContent({ id, format: 'text' }))).title).toBe('Reading with AutoBot');
  });

  it('fills, selects, clicks, hovers, types, presses, waits and scrolls', async () => {
    await alice(() => browser.navigate({ id, url: `${site.url}/form` }));
    await alice(() => browser.act({ id, action: 'fill', selector: '#name', value: 'Ada' }));
    await alice(() => browser.act({ id, action: 'select', selector: '#colour', value: 'blue' }));
    await alice(() => browser.act({ id, action: 'click', selector: '#go' }));
    await alice(() => browser.act({ id, action: 'hover', selector: '#hover-target' }));
    await alice(() => browser.act({ id, action: 'type', selector: '#notes', value: 'typed' }));
    await alice(() => browser.act({ id, action: 'press', selector: '#notes', value: 'Shift+KeyX' }));
    await alice(() => browser.act({ id, action: 'wait_for', selector: '#arrived' }));
    await alice(() => browser.act({ id, action: 'scroll', selector: '#bottom' }));
    await alice(() => browser.act({ id, action: 'scroll', value: '0,-200' }));
    const text = (await alice(() => browser.getContent({ id, format: 'text' }))).content;
    expect(text).toContain('Hello Ada in blue');
    expect(text).toContain('hovered');
    expect(text).toContain('arrived');
    const html = (await alice(() => browser.getContent({ id, format: 'html' }))).content;
    expect(html).toContain('<span id="arrived">arrived</span>');
    const after = await alice(() => browser.act({ id, action: 'click', selector: '#next' }));
    expect(after).toEqual({ url: `${site.url}/article`, title: 'Reading with AutoBot' });
  });

  it('answers not_found for an element that never appears, and invalid_input naming the field', async () => {
    const missing = await refusal(alice(() => browser.act({ id, action: 'click', selector: '#nope' })));
    expect(missing.code).toBe('not_found');
    expect(missing.message).toContain('#nope');
    const bad = [
      [{ id, action: 'click' }, 'selector'],
      [{ id, action: 'fill', selector: '#name' }, 'value'],
      [{ id, action: 'explode', selector: 'a' }, 'action'],
      [{ id: 'not-a-session', action: 'click', selector: 'a' }, 'id'],
    ] as const;
    for (const [input, field] of bad) {
      const err = await refusal(alice(() => browser.act(input as never)));
      expect(err.code, JSON.stringify(input)).toBe('invalid_input');
      expect(JSON.stringify(err.details)).toContain(field);
    }
    expect((await refusal(alice(() => browser.navigate({ id } as never)))).code).toBe('invalid_input');
  });

  it('takes a PNG screenshot of the viewport', async () => {
    await alice(() => browser.navigate({ id, url: `${site.url}/article` }));
    const shot = await alice(() => browser.screenshot({ id }));
    expect(shot.contentType).toBe('image/png');
    const png = PNG.sync.read(await bytesOf(shot));
    expect([png.width, png.height]).toEqual([1280, 800]);
    const full = PNG.sync.read(await bytesOf(await alice(() => browser.screenshot({ id, fullPage: true }))));
    expect(full.width).toBe(1280);
  });

  it('answers content as text, Markdown and HTML', async () => {
    await alice(() => browser.navigate({ id, url: `${site.url}/article` }));
    const md = await alice(() => browser.getContent({ id, format: 'markdown' }));
    expect(md).toMatchObject({ format: 'markdown', title: 'Reading with AutoBot', truncated: false });
    expect(md.content).toContain('# Reading with AutoBot');
    expect(md.content).toContain(`[a relative link](${site.url}/link-0)`);
    const text = await alice(() => browser.getContent({ id, format: 'text' }));
    expect(text.content).toContain('Paragraph 3 of the article');
    expect(text.content).not.toContain('<p>');
  });

  it('reads a page in one shot as Markdown, and refuses what the guard refuses', async () => {
    const page = await alice(() => browser.fetchPage({ url: `${site.url}/article` }));
    expect(page).toMatchObject({ url: `${site.url}/article`, title: 'Reading with AutoBot', status: 200, truncated: false });
    expect(page.markdown).toContain('**bold words**');
    // Readability keeps the article, not the navigation or the footer.
    expect(page.markdown).not.toContain('footer text');
    expect((await refusal(alice(() => browser.fetchPage({ url: `${site.url}/missing` })))).code).toBe('not_found');
    expect((await refusal(alice(() => browser.fetchPage({ url: `http://[::1]:${forbidden.port}/` })))).code).toBe('forbidden');
    const notUrl = await refusal(alice(() => browser.fetchPage({ url: 'not a url' })));
    expect(notUrl.code).toBe('invalid_input');
    expect(JSON.stringify(notUrl.details)).toContain('url');
    expect(forbidden.connections()).toBe(0);
  });

  it('limits sessions per user (409) and needs a signed-in caller', async () => {
    const opened: string[] = [];
    for (;;) {
      const r = await alice(() => browser.createSession({})).catch((err: { code: string; message: string }) => err);
      if ('id' in r) opened.push(r.id);
      else {
        expect(r.code).toBe('conflict');
        expect(r.message).toMatch(/limit is 3/);
        break;
      }
      if (opened.length > 5) throw new Error('no limit');
    }
    for (const s of opened) await alice(() => browser.closeSession({ id: s }));
    expect((await refusal(browser.createSession({}))).code).toBe('unauthenticated');
    expect((await refusal(browser.fetchPage({ url: `${site.url}/article` }))).code).toBe('unauthenticated');
  });
});

describe('browser over REST', () => {
  const api = (path: string, init: RequestInit & { token?: string } = {}) =>
    fetch(`${app.url}/api/v1${path}`, {
      ...init,
      headers: { authorization: `Bearer ${init.token ?? USER_TOKEN}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
    });

  it('drives a session through the routes of API.md', async () => {
    const created = await api('/browser/sessions', { method: 'POST' });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const nav = await api(`/browser/sessions/${id}/navigate`, { method: 'POST', body: JSON.stringify({ url: `${site.url}/form` }) });
    expect(await nav.json()).toEqual({ url: `${site.url}/form`, title: 'Form', status: 200 });
    const act = await api(`/browser/sessions/${id}/actions`, { method: 'POST', body: JSON.stringify({ action: 'fill', selector: '#name', value: 'Rest' }) });
    expect(act.status).toBe(200);
    const shot = await api(`/browser/sessions/${id}/screenshot`);
    expect(shot.headers.get('content-type')).toBe('image/png');
    expect(PNG.sync.read(Buffer.from(await shot.arrayBuffer())).width).toBe(1280);
    const content = await api(`/browser/sessions/${id}/content?format=markdown`);
    expect(((await content.json()) as { content: string }).content).toContain('next page');
    // Someone else's session is not there.
    expect((await api(`/browser/sessions/${id}/screenshot`, { token: ADMIN_TOKEN })).status).toBe(404);
    const refused = await api(`/browser/sessions/${id}/navigate`, { method: 'POST', body: JSON.stringify({ url: 'http://169.254.169.254/latest/meta-data/' }) });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    const badFormat = await api(`/browser/sessions/${id}/content?format=pdf`);
    expect(badFormat.status).toBe(400);
    expect((await api(`/browser/sessions/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await api(`/browser/sessions/${id}`, { method: 'DELETE' })).status).toBe(404);
  });

  it('reads a page with POST /browser/fetch', async () => {
    const res = await api('/browser/fetch', { method: 'POST', body: JSON.stringify({ url: `${site.url}/article` }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ url: `${site.url}/article`, title: 'Reading with AutoBot' });
    const refused = await api('/browser/fetch', { method: 'POST', body: JSON.stringify({ url: `http://2130706433:${forbidden.port}/` }) });
    expect(refused.status).toBe(403);
    expect(forbidden.connections()).toBe(0);
  });
});

describe('sessions end with the sign-in', () => {
  it('closes the browser sessions a sign-in opened when it logs out, and keeps those of another sign-in', async () => {
    const auth = app.runtime.port(authContract);
    const browser = app.runtime.port(browserContract);
    const signIn = async (): Promise<Actor> => {
      const pair = await auth.login({ username: 'admin', password: ADMIN_PASSWORD });
      const { actor } = await auth.authenticate({ token: pair.accessToken });
      return actor!;
    };
    const first = await signIn();
    const second = await signIn();
    const a = (await as(first, () => browser.createSession({}))).id;
    const b = (await as(second, () => browser.createSession({}))).id;
    await as(first, () => auth.logout({}));
    await until(async () => (await as(second, () => browser.listSessions({}))).items.every((s) => s.id !== a), 'the logged-out session to close');
    expect((await as(second, () => browser.listSessions({}))).items.map((s) => s.id)).toContain(b);
    await as(second, () => browser.closeSession({ id: b }));
  });
});

describe('idle sessions', () => {
  it('closes a session nobody used for the idle timeout', async () => {
    const browser = app.runtime.port(browserContract);
    await setBrowserSettings({ sessionIdleS: 1 });
    await until(async () => (await alice(() => browser.createSession({}))).idleTimeoutS === 1, 'the idle setting');
    const { id } = await alice(() => browser.createSession({}));
    await until(async () => (await alice(() => browser.listSessions({}))).items.every((s) => s.id !== id), 'the idle session to close');
    expect((await refusal(alice(() => browser.getContent({ id, format: 'text' })))).code).toBe('not_found');
  });
});
