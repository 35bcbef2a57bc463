// An AutoBot for the search tests: documents (with files and the real embeddings module, built-in
// embedder), knowledge, and search. Helpers to upload through the REST route and wait until search
// shows what was uploaded.
import { randomUUID } from 'node:crypto';
import type { AnyModule } from '../../../../src/kernel/module/define-module.js';
import { runWithContext, type Actor } from '../../../../src/kernel/context/request-context.js';
import type { DocumentView } from '../../../../src/modules/documents/contract.js';
import { knowledgeModule } from '../../../../src/modules/knowledge/module.js';
import { searchModule } from '../../../../src/modules/search/module.js';
import { documentsCatalogue } from '../../documents/support/documents-app.js';
import { formData, type FormFile } from '../../../support/fixtures/multipart.js';
import { bearer } from '../../../support/test-auth.js';

export function searchCatalogue(): AnyModule[] {
  return [...documentsCatalogue(), knowledgeModule, searchModule];
}

export const as = <T>(actor: Actor, fn: () => Promise<T>): Promise<T> => runWithContext({ requestId: randomUUID(), actor }, fn);

export async function api<T = unknown>(url: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: { ...bearer(token), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

/** Uploads files through POST /documents/upload and waits until every one is indexed. */
export async function uploadIndexed(url: string, token: string, files: FormFile[], fields: Record<string, string | string[]> = {}): Promise<DocumentView[]> {
  const res = await fetch(`${url}/api/v1/documents/upload`, { method: 'POST', headers: bearer(token), body: formData(files, fields) });
  if (res.status !== 202) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
  const { items } = (await res.json()) as { items: DocumentView[] };
  const until = Date.now() + 30_000;
  for (;;) {
    const docs = await Promise.all(items.map(async (d) => (await api<DocumentView>(url, token, 'GET', `/documents/${d.id}`)).body));
    if (docs.every((d) => d.status === 'indexed')) return docs;
    if (docs.some((d) => d.status === 'failed' || d.status === 'cancelled')) throw new Error(`not indexed: ${JSON.stringify(docs)}`);
    if (Date.now() > until) throw new Error(`still processing: ${JSON.stringify(docs.map((d) => d.status))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls until `check` holds (search follows events, so it is eventually current). */
export async function eventually<T>(fn: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (check(v)) return v;
    if (Date.now() > until) throw new Error(`condition not met in time; last value: ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
