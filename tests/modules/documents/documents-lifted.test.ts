// The modules lifted apart, as on the seed's NPU host: one process hosts embeddings and the
// accelerator, another hosts files, a third the documents pipeline and the gateway. Uploads go through
// the third; each file streams over the HTTP binding to the files process, the parse stage downloads
// it back over HTTP, and the vectors are written to (and searched in) the embeddings process.
import path from 'node:path';
import { expect, it } from 'vitest';
import type { DocumentView } from '../../../src/modules/documents/contract.js';
import { formData } from '../../support/fixtures/multipart.js';
import { docxFixture, markdownFixture, pdfFixture } from '../../support/fixtures/documents.js';
import { liftedProcesses } from '../../support/lifted-processes.js';
import { ADMIN_TOKEN, bearer, USER_TOKEN } from '../../support/test-auth.js';

// Each process its own data directory: the files process alone holds the bytes.
const { start, waitUntilSeen } = liftedProcesses(path.resolve(import.meta.dirname, 'support/ingest-server.ts'));

it('ingests through a process that hosts neither files nor embeddings', async () => {
  const npu = await start('embeddings,accelerator');
  const blobs = await start('files');
  const front = await start('config,documents,llm');

  await waitUntilSeen(front, [npu, blobs]);

  const files = [
    { name: 'a.md', content: markdownFixture(1, 4000) },
    { name: 'b.md', content: markdownFixture(2, 4000) },
    { name: 'c.pdf', content: pdfFixture([['lifted pdf page one'], ['page two']]) },
    { name: 'd.docx', content: await docxFixture([{ text: 'Lifted', heading: 1 }, { text: 'docx body text' }]) },
  ];
  const res = await fetch(`${front.url}/api/v1/documents/upload`, { method: 'POST', headers: bearer(USER_TOKEN), body: formData(files) });
  expect(res.status).toBe(202);
  const { items } = (await res.json()) as { items: DocumentView[] };
  expect(items).toHaveLength(4);

  const deadline = Date.now() + 60_000;
  let docs: DocumentView[] = [];
  for (;;) {
    docs = await Promise.all(items.map(async (d) => (await (await fetch(`${front.url}/api/v1/documents/${d.id}`, { headers: bearer(USER_TOKEN) })).json()) as DocumentView));
    if (docs.every((d) => ['indexed', 'failed', 'cancelled'].includes(d.status))) break;
    if (Date.now() > deadline) throw new Error(`not finished: ${JSON.stringify(docs.map((d) => [d.name, d.status]))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(docs.map((d) => [d.name, d.status, d.error])).toEqual(files.map((f) => [f.name, 'indexed', undefined]));

  // The bytes live in the files process (downloadable through the front), the vectors in the NPU process.
  const dl = await fetch(`${front.url}/api/v1/files/${docs[0]!.fileId}/content`, { headers: bearer(USER_TOKEN) });
  expect(dl.headers.get('content-disposition')).toBe('attachment; filename="a.md"');
  expect(await dl.text()).toBe(files[0]!.content);
  for (const d of docs) {
    const found = (await (
      await fetch(`${npu.url}/api/v1/embeddings/search`, {
        method: 'POST',
        headers: { ...bearer(USER_TOKEN), 'content-type': 'application/json' },
        body: JSON.stringify({ collection: 'documents', query: 'lifted river', topK: 200, filter: { documentIds: [d.id] } }),
      })
    ).json()) as { items: unknown[] };
    expect([d.name, found.items.length]).toEqual([d.name, d.chunkCount]);
  }
}, 180_000);
