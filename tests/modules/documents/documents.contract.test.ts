// The documents contract over both bindings, and its REST surface: uploads answered 202 at once, every
// supported format through parse → chunk → embed → index (chunks with heading paths and pages, vectors
// in the embeddings module), failures that name the stage and the reason (corrupt and encrypted PDFs,
// docx zip bombs) without harming the process, duplicates recognised, cancel, reindex and delete that
// leave nothing behind, sharing, owner scoping, and document:progress pushed live to the owner.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connect } from 'socket.io-client';
import type { Port } from '../../../src/kernel/contract/define.js';
import type { Actor } from '../../../src/kernel/context/request-context.js';
import { documentsContract, type DocumentView } from '../../../src/modules/documents/contract.js';
import { embeddingsContract } from '../../../src/modules/embeddings/contract.js';
import { filesContract } from '../../../src/modules/files/contract.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { adminActor, bearer, USER_TOKEN, userActor } from '../../support/test-auth.js';
import { formData, multipartBody } from '../../support/fixtures/multipart.js';
import {
  corruptPdf,
  csvFixture,
  docxFixture,
  docxZipBomb,
  encryptedPdf,
  htmlFixture,
  jsonFixture,
  markdownFixture,
  pdfFixture,
} from '../../support/fixtures/documents.js';
import { as, documentsCatalogue, refusal, setSettings, vectorCount, waitForStatus } from './support/documents-app.js';

const service: Actor = { type: 'service', name: 'search' };

let redis: TestRedis;
let app: TestApp;
let embeddings: Port<typeof embeddingsContract>;

beforeAll(async () => {
  redis = await startTestRedis();
  app = await startTestApp({ redisUrl: redis.url, catalogue: documentsCatalogue() });
  embeddings = app.runtime.port(embeddingsContract);
  // Small limits so the zip bomb tests stay fast; small chunks so documents have several.
  await setSettings(app, { documents: { maxUnzippedBytes: 8 * 1024 * 1024, chunkSize: 400, chunkOverlap: 80 } });
});
afterAll(async () => {
  await app?.stop();
  await redis?.stop();
});

describe.each(bindingKinds)('documents contract (%s binding)', (kind) => {
  let docs: Port<typeof documentsContract>;
  const upload = async (actor: Actor, files: Parameters<typeof multipartBody>[0], fields: Record<string, string | string[]> = {}) =>
    as(actor, async () => docs.upload({}, await multipartBody(files, fields)));
  beforeAll(() => {
    docs = portFor(kind, app, documentsContract);
  });

  it('answers at once with queued documents and indexes every supported format', async () => {
    const unique = `${kind}-${Date.now()}`;
    const { items } = await upload(
      userActor,
      [
        { name: 'notes.md', content: `# Title ${unique}\n\n## Part one\n\n${'alpha words here. '.repeat(40)}\n\n## Part two\n\nbeta words.` },
        { name: 'plain.txt', content: `plain text ${unique}\n\nsecond paragraph` },
        { name: 'page.html', content: htmlFixture.replace('Growing tomatoes', `Growing tomatoes ${unique}`) },
        { name: 'cities.csv', content: csvFixture + `Lyon,${unique},500000\n` },
        { name: 'data.json', content: JSON.stringify({ ...JSON.parse(jsonFixture), unique }) },
        { name: 'paper.pdf', content: pdfFixture([[`First page ${unique}`, 'more words'], ['Second page text']]) },
        { name: 'letter.docx', content: await docxFixture([{ text: `Heading ${unique}`, heading: 1 }, { text: 'Body of the letter.' }]) },
      ],
      { categoryId: 'cat-1', tags: ['alpha, beta', 'gamma'] },
    );
    expect(items).toHaveLength(7);
    for (const d of items) expect(d).toMatchObject({ status: 'queued', progress: 0, categoryId: 'cat-1', tags: ['alpha', 'beta', 'gamma'], shared: false });
    const done: Record<string, DocumentView> = {};
    for (const d of items) done[d.name] = await waitForStatus(docs, userActor, d.id);
    for (const d of Object.values(done)) {
      expect([d.name, d.status, d.error]).toEqual([d.name, 'indexed', undefined]);
      expect(d.progress).toBe(1);
      expect(d.chunkCount).toBeGreaterThan(0);
      expect(await vectorCount(embeddings, d.id)).toBe(d.chunkCount);
    }
    expect(done['notes.md']!.chunkCount).toBeGreaterThan(1);
    const md = await as(userActor, () => docs.listChunks({ id: done['notes.md']!.id }));
    expect(md.items[0]!.headingPath).toEqual([`Title ${unique}`, 'Part one']);
    expect(md.items.at(-1)!.headingPath).toEqual([`Title ${unique}`, 'Part two']);
    const pdf = await as(userActor, () => docs.listChunks({ id: done['paper.pdf']!.id }));
    expect(pdf.items.map((c) => c.page)).toEqual([1, 2]);
    const html = await as(userActor, () => docs.getContent({ id: done['page.html']!.id }));
    expect(html.text).toContain(`Growing tomatoes ${unique}`);
    expect(html.text).toContain('## Pruning');
    expect(html.text).not.toContain('tracking');
    const docx = await as(userActor, () => docs.getContent({ id: done['letter.docx']!.id }));
    expect(docx.text).toContain(`# Heading ${unique}`);
    const csv = await as(userActor, () => docs.getContent({ id: done['cities.csv']!.id }));
    expect(csv.text).toContain(`city: Lyon; country: ${unique}; population: 500000`);
    const json = await as(userActor, () => docs.getContent({ id: done['data.json']!.id }));
    expect(json.text).toContain(`unique: "${unique}"`);
    // A service (the keyword index) reads the chunks naming the owner.
    const bySvc = await as(service, () => docs.listChunks({ id: done['notes.md']!.id, ownerId: 'u-user' }));
    expect(bySvc.items.length).toBe(done['notes.md']!.chunkCount);
  });

  it('fails unreadable files with the stage and the reason, and keeps working', async () => {
    const { items } = await upload(userActor, [
      { name: 'corrupt.pdf', content: corruptPdf() },
      { name: 'locked.pdf', content: encryptedPdf() },
      { name: 'bomb.docx', content: await docxZipBomb(64 * 1024 * 1024) },
      { name: 'lying-bomb.docx', content: await docxZipBomb(64 * 1024 * 1024, { lie: true }) },
      { name: 'fine.md', content: `# Still fine ${kind}\n\ntext ${Date.now()}` },
    ]);
    const byName = Object.fromEntries(await Promise.all(items.map(async (d) => [d.name, await waitForStatus(docs, userActor, d.id)] as const)));
    expect(byName['corrupt.pdf']).toMatchObject({ status: 'failed', error: expect.stringMatching(/^parse: not a readable PDF/) });
    expect(byName['locked.pdf']).toMatchObject({ status: 'failed', error: 'parse: the PDF is encrypted (password-protected)' });
    expect(byName['bomb.docx']).toMatchObject({ status: 'failed', error: expect.stringMatching(/^parse: the docx cannot be unpacked safely: .*zip bomb/) });
    expect(byName['lying-bomb.docx']).toMatchObject({ status: 'failed', error: expect.stringMatching(/^parse: the docx cannot be unpacked safely: .*zip bomb/) });
    expect(byName['fine.md']!.status).toBe('indexed');
    for (const d of Object.values(byName)) if (d.status === 'failed') expect(await vectorCount(embeddings, d.id)).toBe(0);
  });

  it('recognises the same content uploaded twice by one user and does not process it again', async () => {
    const content = `# Same ${kind} ${Date.now()}\n\nidentical bytes`;
    const files = app.runtime.port(filesContract);
    const before = await as(userActor, () => files.getUsage({}));
    const first = (await upload(userActor, [{ name: 'one.md', content }])).items[0]!;
    await waitForStatus(docs, userActor, first.id);
    const second = await upload(userActor, [{ name: 'two.md', content }, { name: 'three.md', content }]);
    expect(second.items.map((d) => d.id)).toEqual([first.id, first.id]);
    expect(second.items[0]!.status).toBe('indexed');
    expect((await as(userActor, () => files.getUsage({}))).fileCount).toBe(before.fileCount + 1);
    // Another user's identical bytes are their own document.
    const other = (await upload(adminActor, [{ name: 'mine.md', content }])).items[0]!;
    expect(other.id).not.toBe(first.id);
  });

  it('reindexes without duplicating chunks or vectors, and deletes leaving nothing behind', async () => {
    const d = (await upload(userActor, [{ name: 'r.md', content: markdownFixture(Date.now() % 100000, 3000) }])).items[0]!;
    const first = await waitForStatus(docs, userActor, d.id);
    expect(first.status).toBe('indexed');
    expect((await refusal(as(adminActor, () => docs.reindex({ id: d.id })))).code).toBe('not_found');
    const again = await as(userActor, () => docs.reindex({ id: d.id }));
    expect(again.status).toBe('queued');
    const second = await waitForStatus(docs, userActor, d.id);
    expect(second).toMatchObject({ status: 'indexed', chunkCount: first.chunkCount });
    expect(await vectorCount(embeddings, d.id)).toBe(first.chunkCount);
    expect((await as(userActor, () => docs.listChunks({ id: d.id }))).items).toHaveLength(first.chunkCount);

    await as(userActor, () => docs.deleteDocument({ id: d.id }));
    expect((await refusal(as(userActor, () => docs.getDocument({ id: d.id })))).code).toBe('not_found');
    expect(await vectorCount(embeddings, d.id)).toBe(0);
    const files = app.runtime.port(filesContract);
    expect((await refusal(as(userActor, () => files.getFile({ id: d.fileId })))).code).toBe('not_found');
    expect((await refusal(as(userActor, () => docs.deleteDocument({ id: d.id })))).code).toBe('not_found');
  });

  it('cancels a queued document and one being embedded, removing what was written', async () => {
    await setSettings(app, { documents: { embedBatchSize: 1, chunkSize: 200, chunkOverlap: 0 } });
    try {
      const big = markdownFixture(Date.now() % 100000, 60_000);
      const { items } = await upload(userActor, [{ name: 'long.md', content: big }]);
      const d = items[0]!;
      await waitForStatus(docs, userActor, d.id, ['embedding', 'indexed', 'failed']);
      const cancelled = await as(userActor, () => docs.cancel({ id: d.id }));
      expect(cancelled.status).toBe('cancelled');
      // Whatever batch was in flight lands, is seen by its stage and removed again.
      await new Promise((r) => setTimeout(r, 500));
      expect(await vectorCount(embeddings, d.id)).toBe(0);
      expect((await as(userActor, () => docs.listChunks({ id: d.id }))).items).toEqual([]);
      expect((await as(userActor, () => docs.getDocument({ id: d.id }))).status).toBe('cancelled');
      // Cancelling again changes nothing; an indexed document cannot be cancelled.
      expect((await as(userActor, () => docs.cancel({ id: d.id }))).status).toBe('cancelled');
      const back = await as(userActor, () => docs.reindex({ id: d.id }));
      expect(back.status).toBe('queued');
      await as(userActor, () => docs.cancel({ id: d.id }));
      expect((await waitForStatus(docs, userActor, d.id)).status).toBe('cancelled');
    } finally {
      await setSettings(app, { documents: { embedBatchSize: null, chunkSize: 400, chunkOverlap: 80 } });
    }
    const small = (await upload(userActor, [{ name: 'small.md', content: `# s ${kind} ${Date.now()}\n\nx` }])).items[0]!;
    const indexed = await waitForStatus(docs, userActor, small.id);
    expect((await refusal(as(userActor, () => docs.cancel({ id: indexed.id })))).code).toBe('conflict');
  });

  it('keeps documents owner-scoped; sharing is for admins and makes a document readable by all', async () => {
    const mine = (await upload(adminActor, [{ name: 'admin.md', content: `# admin ${kind} ${Date.now()}\n\ntext` }])).items[0]!;
    await waitForStatus(docs, adminActor, mine.id);
    expect((await refusal(as(userActor, () => docs.getDocument({ id: mine.id })))).code).toBe('not_found');
    const own = await as(userActor, () => docs.listDocuments({ limit: 100 }));
    expect(own.items.map((d) => d.id)).not.toContain(mine.id);
    const theirs = (await upload(userActor, [{ name: 'u.md', content: `# user ${kind} ${Date.now()}\n\ntext` }])).items[0]!;
    expect((await refusal(as(userActor, () => docs.updateDocument({ id: theirs.id, shared: true })))).code).toBe('forbidden');
    const patched = await as(userActor, () => docs.updateDocument({ id: theirs.id, categoryId: 'c2', tags: ['x', 'y'] }));
    expect(patched).toMatchObject({ categoryId: 'c2', tags: ['x', 'y'] });
    const shared = await as(adminActor, () => docs.updateDocument({ id: mine.id, shared: true }));
    expect(shared.shared).toBe(true);
    expect((await as(userActor, () => docs.getDocument({ id: mine.id }))).id).toBe(mine.id);
    expect((await refusal(as(userActor, () => docs.deleteDocument({ id: mine.id })))).code).toBe('not_found');
    const failed = await as(userActor, () => docs.listDocuments({ status: 'failed', limit: 100 }));
    for (const d of failed.items) expect(d.status).toBe('failed');
    expect((await refusal(as(userActor, () => docs.listDocuments({ status: 'nope' as never, limit: 10 })))).details).toEqual([expect.objectContaining({ path: 'status' })]);
  });

  it('refuses unsupported formats (415) and too many files (413 naming the setting), storing nothing', async () => {
    const files = app.runtime.port(filesContract);
    const before = (await as(userActor, () => files.getUsage({}))).fileCount;
    const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
    const unsupported = await refusal(upload(userActor, [{ name: 'ok.md', content: `# ok ${Date.now()}` }, { name: 'pic.png', content: png }]));
    expect(unsupported.code).toBe('unsupported_media_type');
    expect(unsupported.message).toContain('pic.png');
    await setSettings(app, { documents: { maxFilesPerUpload: 2 } });
    try {
      const many = await refusal(upload(userActor, [1, 2, 3].map((i) => ({ name: `${i}.md`, content: `# ${i} ${Date.now()}` }))));
      expect(many.code).toBe('payload_too_large');
      expect(many.message).toContain('documents.maxFilesPerUpload');
    } finally {
      await setSettings(app, { documents: { maxFilesPerUpload: null } });
    }
    expect((await as(userActor, () => files.getUsage({}))).fileCount).toBe(before);
  });
});

describe('documents REST surface', () => {
  const api = (p: string) => `${app.url}/api/v1${p}`;

  it('POST /documents/upload answers 202 and pushes document:progress to the owner until indexed', async () => {
    const socket = connect(app.url, { path: '/ws', auth: { token: USER_TOKEN }, transports: ['websocket'] });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    const seen: { documentId: string; status: string; stage: string | null; progress: number }[] = [];
    socket.on('document:progress', (p: (typeof seen)[number]) => seen.push(p));
    try {
      const res = await fetch(api('/documents/upload'), {
        method: 'POST',
        headers: bearer(USER_TOKEN),
        body: formData([{ name: 'rest.md', content: `# REST ${Date.now()}\n\n${'words '.repeat(300)}` }], { tags: 'a,b' }),
      });
      expect(res.status).toBe(202);
      const { items } = (await res.json()) as { items: DocumentView[] };
      const id = items[0]!.id;
      const until = Date.now() + 15_000;
      while (!seen.some((p) => p.documentId === id && p.status === 'indexed') && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
      const mine = seen.filter((p) => p.documentId === id);
      expect(mine.map((p) => p.status)).toEqual(expect.arrayContaining(['queued', 'parsing', 'chunking', 'embedding', 'indexed']));
      expect(mine.at(-1)).toMatchObject({ status: 'indexed', stage: 'index', progress: 1 });
      const progress = mine.map((p) => p.progress);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      const got = (await (await fetch(api(`/documents/${id}`), { headers: bearer(USER_TOKEN) })).json()) as DocumentView;
      expect(got).toMatchObject({ status: 'indexed', tags: ['a', 'b'] });
      const content = await fetch(api(`/documents/${id}/content`), { headers: bearer(USER_TOKEN) });
      expect(((await content.json()) as { text: string }).text).toContain('# REST');
      expect((await fetch(api(`/documents?status=indexed`), { headers: bearer(USER_TOKEN) })).status).toBe(200);
      expect((await fetch(api(`/documents/${id}`), { method: 'DELETE', headers: bearer(USER_TOKEN) })).status).toBe(204);
    } finally {
      socket.close();
    }
  });

  it('authenticates before reading the body and names the request limit in a 413', async () => {
    expect((await fetch(api('/documents/upload'), { method: 'POST', body: formData([{ name: 'x.md', content: 'x' }]) })).status).toBe(401);
    await setSettings(app, { files: { maxRequestBytes: 100_000 } });
    try {
      const res = await fetch(api('/documents/upload'), { method: 'POST', headers: bearer(USER_TOKEN), body: formData([{ name: 'big.md', content: Buffer.alloc(300_000, 'q') }]) });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain('files.maxRequestBytes');
    } finally {
      await setSettings(app, { files: { maxRequestBytes: null } });
    }
  });
});
