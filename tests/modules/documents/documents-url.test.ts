// Web pages as documents (`POST /documents/url`), on both bindings and over REST: a local site
// allow-listed in `browser.allowHosts` is read through the browser module (real Chromium behind its SSRF
// guard) and indexed like an upload; a loopback address that is not allow-listed is refused (403) without
// a single connection to it; a URL that is not http(s) is bad input (400 naming `url`). Chromium starts
// only when a page is read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connect } from 'socket.io-client';
import type { Port } from '../../../src/kernel/contract/define.js';
import { browserContract } from '../../../src/modules/browser/contract.js';
import { documentsContract, type DocumentView } from '../../../src/modules/documents/contract.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { adminActor, bearer, USER_TOKEN, userActor } from '../../support/test-auth.js';
import { startForbiddenServer, startSite, type CountingServer, type SiteServer } from '../browser/web-fixtures.js';
import { as, documentsCatalogue, refusal, setSettings, waitForStatus } from './support/documents-app.js';

let redis: TestRedis;
let app: TestApp;
let site: SiteServer;
let forbidden: CountingServer;
let chromiumBeforeFirstRead: string | undefined;

beforeAll(async () => {
  forbidden = await startForbiddenServer();
  site = await startSite(forbidden.port);
  redis = await startTestRedis();
  app = await startTestApp({ redisUrl: redis.url, catalogue: documentsCatalogue() });
  await setSettings(app, { browser: { allowHosts: [`127.0.0.1:${site.port}`] } });
  chromiumBeforeFirstRead = (await as(adminActor, () => app.runtime.port(browserContract).$health())).detail;
}, 60_000);

afterAll(async () => {
  await app?.stop();
  await redis?.stop();
  await site?.close();
  await forbidden?.close();
});

it('does not start Chromium until a page is read', () => {
  expect(chromiumBeforeFirstRead).toContain('starts on first use');
});

describe.each(bindingKinds)('documents from a URL (%s binding)', (kind) => {
  let docs: Port<typeof documentsContract>;
  beforeAll(() => {
    docs = portFor(kind, app, documentsContract);
  });

  it('reads an allow-listed page and indexes its text under its title', async () => {
    const url = `${site.url}/article?binding=${kind}`;
    const queued = await as(userActor, () => docs.addUrl({ url, tags: ['web'], categoryId: 'reading' }));
    expect(queued).toMatchObject({ name: 'Reading with AutoBot', mediaType: 'text/markdown', status: 'queued', sourceUrl: url, tags: ['web'], categoryId: 'reading' });
    const done = await waitForStatus(docs, userActor, queued.id, ['indexed', 'failed', 'cancelled'], 60_000);
    expect([done.status, done.error]).toEqual(['indexed', undefined]);
    expect(done.chunkCount).toBeGreaterThan(0);
    const { text } = await as(userActor, () => docs.getContent({ id: queued.id }));
    expect(text).toMatch(/^# Reading with AutoBot\n/);
    expect(text).toContain(`Source: <${url}>`);
    expect(text).toContain('Paragraph 8 of the article: AutoBot reads pages as Markdown');
    // Relative links come out absolute, so the text's links work outside the page.
    expect(text).toContain(`(${site.url}/link-0)`);
    const chunks = await as(userActor, () => docs.listChunks({ id: queued.id }));
    expect(chunks.items[0]!.headingPath[0]).toBe('Reading with AutoBot');
    // The same page with the same text again is the same document, not a second copy.
    const again = await as(userActor, () => docs.addUrl({ url }));
    expect(again).toMatchObject({ id: queued.id, status: 'indexed' });
    // Another user's document stays theirs.
    expect((await refusal(as(adminActor, () => docs.getDocument({ id: queued.id })))).code).toBe('not_found');
  }, 90_000);

  it('refuses a loopback address that is not allow-listed (403) without connecting to it, storing nothing', async () => {
    const before = (await as(userActor, () => docs.listDocuments({ limit: 100 }))).items.length;
    for (const url of [`http://127.0.0.1:${forbidden.port}/`, `http://localhost:${forbidden.port}/secret`, `http://[::1]:${forbidden.port}/`, `${site.url}/redirect?to=http://127.0.0.1:${forbidden.port}/`]) {
      const err = await refusal(as(userActor, () => docs.addUrl({ url })));
      expect([url, err.code]).toEqual([url, 'forbidden']);
    }
    expect(forbidden.connections()).toBe(0);
    expect((await as(userActor, () => docs.listDocuments({ limit: 100 }))).items.length).toBe(before);
  }, 60_000);

  it('answers invalid_input naming url for what is not an http(s) URL', async () => {
    for (const url of ['not a url', 'ftp://example.com/file', 'file:///etc/passwd', 'javascript:alert(1)', '', '/relative/path']) {
      const err = await refusal(as(userActor, () => docs.addUrl({ url })));
      expect([url, err.code]).toEqual([url, 'invalid_input']);
      expect(err.details).toEqual([expect.objectContaining({ path: 'url' })]);
    }
  });

  it('fails a page that answers 404 as not_found', async () => {
    expect((await refusal(as(userActor, () => docs.addUrl({ url: `${site.url}/missing?b=${kind}` })))).code).toBe('not_found');
  }, 60_000);
});

describe('POST /documents/url', () => {
  const api = (p: string) => `${app.url}/api/v1${p}`;
  const post = (body: unknown) =>
    fetch(api('/documents/url'), { method: 'POST', headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('answers 202 with the document and pushes document:progress to the owner until indexed', async () => {
    const socket = connect(app.url, { path: '/ws', auth: { token: USER_TOKEN }, transports: ['websocket'] });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    const seen: { documentId: string; status: string; progress: number }[] = [];
    socket.on('document:progress', (p: (typeof seen)[number]) => seen.push(p));
    try {
      const res = await post({ url: `${site.url}/article?via=rest` });
      expect(res.status).toBe(202);
      const doc = (await res.json()) as DocumentView;
      expect(doc).toMatchObject({ name: 'Reading with AutoBot', status: 'queued', mediaType: 'text/markdown' });
      const until = Date.now() + 30_000;
      while (!seen.some((p) => p.documentId === doc.id && p.status === 'indexed') && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
      const mine = seen.filter((p) => p.documentId === doc.id).map((p) => p.status);
      expect(mine).toEqual(expect.arrayContaining(['queued', 'parsing', 'chunking', 'embedding', 'indexed']));
      const content = (await (await fetch(api(`/documents/${doc.id}/content`), { headers: bearer(USER_TOKEN) })).json()) as { text: string };
      expect(content.text).toContain('Paragraph 1 of the article');
    } finally {
      socket.close();
    }
  }, 90_000);

  it('answers 403 forbidden for a loopback address, 400 naming url for a bad one, 401 without a token', async () => {
    const refused = await post({ url: `http://127.0.0.1:${forbidden.port}/` });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    const bad = await post({ url: 'gopher://example.com/' });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: { code: string; details: { path: string }[] } };
    expect(body.error.code).toBe('invalid_input');
    expect(body.error.details.map((d) => d.path)).toContain('url');
    expect((await post({})).status).toBe(400);
    const anonymous = await fetch(api('/documents/url'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: site.url }) });
    expect(anonymous.status).toBe(401);
    expect(forbidden.connections()).toBe(0);
  }, 60_000);
});
