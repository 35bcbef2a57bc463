// The files module's contract over both bindings (local, and HTTP to the process hosting it), and its
// REST surface: streamed multipart uploads stored by id with SHA-256 and a sniffed media type, limits
// answering 413 naming the limit with no temporary file left behind, owner scoping, downloads.
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Port } from '../../../src/kernel/contract/define.js';
import { runWithContext, type Actor } from '../../../src/kernel/context/request-context.js';
import { configContract } from '../../../src/modules/config/contract.js';
import { filesContract } from '../../../src/modules/files/contract.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { bindingKinds, portFor } from '../../support/bindings.js';
import { startTestRedis, type TestRedis } from '../../support/redis.js';
import { ADMIN_TOKEN, adminActor, bearer, USER_TOKEN, userActor } from '../../support/test-auth.js';
import { formData, multipartBody, rawBody, readAll } from '../../support/fixtures/multipart.js';
import { docxFixture, pdfFixture } from '../../support/fixtures/documents.js';

const sha256 = (b: string | Uint8Array) => createHash('sha256').update(b).digest('hex');
const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);
const service: Actor = { type: 'service', name: 'documents' };

async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string; details?: unknown }> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err: err as { code: string; message: string; details?: unknown } }),
  );
  if (outcome.ok) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value)}`);
  return outcome.err;
}

let redis: TestRedis;
let app: TestApp;

beforeAll(async () => {
  redis = await startTestRedis();
  app = await startTestApp({ redisUrl: redis.url });
});
afterAll(async () => {
  await app?.stop();
  await redis?.stop();
});

const tmpFiles = () => readdirSync(path.join(app.dataDir, 'files', 'tmp'));

async function setLimits(limits: Record<string, number | null>) {
  const config = app.runtime.port(configContract);
  await as(adminActor, () => config.updateSettings({ changes: { files: limits } }));
  const files = app.runtime.port(filesContract);
  // The module reloads on config.settings.changed: wait until it answers with the new limits.
  for (let i = 0; i < 100; i++) {
    const usage = await as(userActor, () => files.getUsage({}));
    if (Object.entries(limits).every(([k, v]) => v === null || usage[k as keyof typeof usage] === v)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('limits not applied');
}

describe.each(bindingKinds)('files contract (%s binding)', (kind) => {
  let files: Port<typeof filesContract>;
  beforeAll(() => {
    files = portFor(kind, app, filesContract);
  });

  it('stores a multipart upload by id with its SHA-256 and a media type sniffed from the bytes', async () => {
    const content = '# Notes\n\nSome *markdown* text.\n';
    // The client claims a PDF: the bytes say otherwise.
    const file = await as(userActor, async () => files.uploadFile({}, await multipartBody([{ name: 'notes.md', content, type: 'application/pdf' }])));
    expect(file).toMatchObject({ name: 'notes.md', mediaType: 'text/markdown', size: Buffer.byteLength(content), sha256: sha256(content) });
    expect(file.id).toMatch(/^f_/);
    const got = await as(userActor, () => files.getFile({ id: file.id }));
    expect(got).toEqual(file);
    const download = await as(userActor, () => files.getContent({ id: file.id }));
    expect(download).toMatchObject({ contentType: 'text/markdown', size: file.size, fileName: 'notes.md', disposition: 'attachment' });
    expect((await readAll(download.body)).toString()).toBe(content);
  });

  it('sniffs PDF, docx, HTML, CSV and JSON from their content', async () => {
    const cases: [string, Uint8Array | string, string][] = [
      ['a.bin', pdfFixture([['Hello PDF']]), 'application/pdf'],
      ['b.bin', await docxFixture([{ text: 'Hello docx' }]), 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
      ['c.txt', '<!DOCTYPE html><html><body><p>hi</p></body></html>', 'text/html'],
      ['d.csv', 'a,b\n1,2\n', 'text/csv'],
      ['e.txt', '{"a": [1, 2]}', 'application/json'],
      ['f.txt', 'just words', 'text/plain'],
    ];
    for (const [name, content, mediaType] of cases) {
      const f = await as(userActor, () => files.storeFile({ name }, rawBody(content)));
      expect([name, f.mediaType]).toEqual([name, mediaType]);
    }
  });

  it('keeps files owner-scoped: another user gets not_found, a service names the owner', async () => {
    const f = await as(userActor, () => files.storeFile({ name: 'private.txt' }, rawBody('mine')));
    expect((await refusal(as(adminActor, () => files.getFile({ id: f.id })))).code).toBe('not_found');
    expect((await refusal(as(adminActor, () => files.getContent({ id: f.id })))).code).toBe('not_found');
    expect((await refusal(as(adminActor, () => files.deleteFile({ id: f.id })))).code).toBe('not_found');
    expect((await refusal(as(adminActor, () => files.getFile({ id: f.id, ownerId: userActor.type === 'user' ? userActor.id : '' })))).code).toBe('invalid_input');
    const bySvc = await as(service, () => files.getFile({ id: f.id, ownerId: 'u-user' }));
    expect(bySvc.id).toBe(f.id);
    expect((await refusal(as(service, () => files.getFile({ id: f.id })))).details).toEqual([expect.objectContaining({ path: 'ownerId' })]);
    await as(userActor, () => files.deleteFile({ id: f.id }));
    expect((await refusal(as(userActor, () => files.getFile({ id: f.id })))).code).toBe('not_found');
  });

  it('answers 413 naming files.maxFileBytes and leaves no temporary file', async () => {
    await setLimits({ maxFileBytes: 100_000 });
    try {
      const before = await as(userActor, () => files.getUsage({}));
      const big = Buffer.alloc(150_000, 'x');
      const err = await refusal(as(userActor, async () => files.uploadFile({}, await multipartBody([{ name: 'big.txt', content: big }]))));
      expect(err.code).toBe('payload_too_large');
      expect(err.message).toContain('files.maxFileBytes');
      const raw = await refusal(as(userActor, () => files.storeFile({ name: 'big.txt' }, rawBody(big))));
      expect(raw.message).toContain('files.maxFileBytes');
      expect(tmpFiles()).toEqual([]);
      expect((await as(userActor, () => files.getUsage({}))).usedBytes).toBe(before.usedBytes);
    } finally {
      await setLimits({ maxFileBytes: null });
    }
  });

  it('answers 413 naming files.quotaBytes when the owner would exceed it', async () => {
    const used = (await as(userActor, () => files.getUsage({}))).usedBytes;
    await setLimits({ quotaBytes: used + 50_000 });
    try {
      const ok = await as(userActor, () => files.storeFile({ name: 'fits.txt' }, rawBody(Buffer.alloc(30_000, 'a'))));
      const err = await refusal(as(userActor, () => files.storeFile({ name: 'over.txt' }, rawBody(Buffer.alloc(30_000, 'b')))));
      expect(err.code).toBe('payload_too_large');
      expect(err.message).toContain('files.quotaBytes');
      expect(tmpFiles()).toEqual([]);
      // Space comes back when a file is deleted.
      await as(userActor, () => files.deleteFile({ id: ok.id }));
      await as(userActor, () => files.storeFile({ name: 'fits-now.txt' }, rawBody(Buffer.alloc(30_000, 'b'))));
    } finally {
      await setLimits({ quotaBytes: null });
    }
  });

  it('refuses a body that is not multipart (415) and a form without a file (400)', async () => {
    const err = await refusal(as(userActor, () => files.uploadFile({}, rawBody('x', 'text/plain'))));
    expect(err.code).toBe('unsupported_media_type');
    const none = await refusal(as(userActor, async () => files.uploadFile({}, await multipartBody([], { note: 'no file' }))));
    expect(none.code).toBe('invalid_input');
    expect(none.details).toEqual([expect.objectContaining({ path: 'file' })]);
  });

  it('lists the owner\'s files newest first, paged', async () => {
    const made = [];
    for (let i = 0; i < 3; i++) made.push(await as(adminActor, () => files.storeFile({ name: `list-${i}.txt` }, rawBody(`n${i}`))));
    const first = await as(adminActor, () => files.listFiles({ limit: 2 }));
    expect(first.items.map((f) => f.name).slice(0, 2)).toEqual(['list-2.txt', 'list-1.txt']);
    expect(first.nextCursor).not.toBeNull();
    const second = await as(adminActor, () => files.listFiles({ limit: 2, cursor: first.nextCursor! }));
    expect(second.items.map((f) => f.id)).toContain(made[0]!.id);
  });
});

describe('files REST surface', () => {
  const api = (p: string) => `${app.url}/api/v1${p}`;

  it('POST /files streams a multipart upload → 201; the download is an attachment with a safe name', async () => {
    const content = 'report body\n';
    const res = await fetch(api('/files'), { method: 'POST', headers: bearer(USER_TOKEN), body: formData([{ name: '../../etc/"quarterly" résumé.txt', content }]) });
    expect(res.status).toBe(201);
    const file = (await res.json()) as { id: string; name: string; sha256: string; mediaType: string };
    expect(file.sha256).toBe(sha256(content));
    expect(file.name).not.toContain('/');
    const dl = await fetch(api(`/files/${file.id}/content`), { headers: bearer(USER_TOKEN) });
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-type')).toBe('text/plain');
    expect(dl.headers.get('content-length')).toBe(String(Buffer.byteLength(content)));
    const disposition = dl.headers.get('content-disposition')!;
    expect(disposition).toMatch(/^attachment; filename="[^"/\\]+"; filename\*=UTF-8''[^/]+$/);
    expect(decodeURIComponent(disposition.split("''")[1]!)).toMatch(/quarterly.*résumé\.txt$/);
    expect(disposition).not.toMatch(/[\u0000-\u001f]/);
    expect(await dl.text()).toBe(content);
    expect((await fetch(api(`/files/${file.id}/content`), { headers: bearer(ADMIN_TOKEN) })).status).toBe(404);
    expect((await fetch(api(`/files/${file.id}`), { method: 'DELETE', headers: bearer(USER_TOKEN) })).status).toBe(204);
    expect((await fetch(api(`/files/${file.id}`), { headers: bearer(USER_TOKEN) })).status).toBe(404);
  });

  it('authenticates before reading the body', async () => {
    const res = await fetch(api('/files'), { method: 'POST', body: formData([{ name: 'x.txt', content: 'x' }]) });
    expect(res.status).toBe(401);
  });

  it('answers 413 naming files.maxRequestBytes for a too large request, with no temporary file left', async () => {
    await setLimits({ maxRequestBytes: 200_000 });
    try {
      const res = await fetch(api('/files'), { method: 'POST', headers: bearer(USER_TOKEN), body: formData([{ name: 'big.txt', content: Buffer.alloc(400_000, 'z') }]) });
      expect(res.status).toBe(413);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.message).toContain('files.maxRequestBytes');
      // A stream of unknown length is cut while it streams, too.
      const chunks = [Buffer.alloc(150_000, 'a'), Buffer.alloc(150_000, 'b')];
      const fd = await new Response(formData([{ name: 'streamed.txt', content: Buffer.concat(chunks) }]));
      const streamed = await fetch(api('/files'), {
        method: 'POST',
        headers: { ...bearer(USER_TOKEN), 'content-type': fd.headers.get('content-type')! },
        body: fd.body,
        duplex: 'half',
      } as RequestInit);
      expect(streamed.status).toBe(413);
      expect(tmpFiles()).toEqual([]);
    } finally {
      await setLimits({ maxRequestBytes: null });
    }
  });

  it('describes the upload and the download in OpenAPI', async () => {
    const doc = (await (await fetch(`${app.url}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> }; responses: Record<string, { content?: Record<string, unknown> }> }>> };
    expect(Object.keys(doc.paths['/api/v1/files']!.post!.requestBody!.content)).toEqual(['multipart/form-data']);
    expect(doc.paths['/api/v1/files/{id}/content']!.get!.responses['200']!.content).toHaveProperty('application/octet-stream');
  });
});
