// The documents module's operations. Uploads are parsed here (multipart, with busboy) and each file is
// streamed on to the files module; the 202 answer comes once the files are stored and the documents
// recorded, while the pipeline (pipeline.ts) works in the background.
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Handlers, Port, UploadBody } from '../../kernel/contract/define.js';
import { ContractError, isContractError } from '../../kernel/contract/errors.js';
import { parseInput } from '../../kernel/contract/validation.js';
import { currentContext, type Actor } from '../../kernel/context/request-context.js';
import { ModuleEventsToken, ModuleLogger, type ModuleEvents } from '../../kernel/module/tokens.js';
import { multipartParts } from '../../kernel/transport/multipart.js';
import { browserContract } from '../browser/contract.js';
import { embeddingsContract } from '../embeddings/contract.js';
import { filesContract, type FileView } from '../files/contract.js';
import { documentsContract, SUPPORTED_MEDIA_TYPES, type DocumentStatus, type DocumentView } from './contract.js';
import { DocumentStore, newDocumentId, type StoredDocument } from './document-store.js';
import { COLLECTION, Pipeline } from './pipeline.js';
import { DocumentsSettingsHolder } from './settings.js';

type UserActor = Extract<Actor, { type: 'user' }>;

function signedIn(): UserActor {
  const actor = currentContext()?.actor;
  if (actor?.type !== 'user') throw new ContractError('unauthenticated', 'sign in first');
  return actor;
}

const isAdmin = (a: UserActor) => a.roles.includes('admin');

/** A document name for a page: its title, else its address without the scheme. */
function pageName(title: string, url: string): string {
  const clean = title.replace(/\s+/g, ' ').trim();
  if (clean) return clean.slice(0, 200);
  const u = new URL(url);
  return `${u.host}${u.pathname === '/' ? '' : u.pathname}`.slice(0, 200);
}

export function view(d: StoredDocument): DocumentView {
  return {
    id: d.id,
    name: d.name,
    mediaType: d.mediaType,
    size: d.size,
    sha256: d.sha256,
    fileId: d.fileId,
    shared: d.shared,
    status: d.status,
    stage: d.stage,
    progress: d.progress,
    chunkCount: d.chunkCount,
    categoryId: d.categoryId,
    tags: d.tags,
    ...(d.sourceUrl ? { sourceUrl: d.sourceUrl } : {}),
    ...(d.error ? { error: d.error } : {}),
    createdAt: d.createdAt,
    ...(d.indexedAt ? { indexedAt: d.indexedAt } : {}),
  };
}

const uploadFields = z.object({
  categoryId: z.string().trim().min(1).max(200).optional(),
  tags: z.array(z.string().trim().min(1).max(100)).max(50).default([]),
});

@injectable()
export class DocumentsService implements Handlers<typeof documentsContract> {
  constructor(
    @inject(DocumentStore) private readonly store: DocumentStore,
    @inject(Pipeline) private readonly pipeline: Pipeline,
    @inject(DocumentsSettingsHolder) readonly settings: DocumentsSettingsHolder,
    @inject(ModuleEventsToken) private readonly events: ModuleEvents,
    @inject(ModuleLogger) private readonly logger: Logger,
    @inject(filesContract.token) private readonly files: Port<typeof filesContract>,
    @inject(embeddingsContract.token) private readonly embeddings: Port<typeof embeddingsContract>,
    @inject(browserContract.token) private readonly browser: Port<typeof browserContract>,
  ) {}

  async upload(_input: Record<string, never>, body: UploadBody) {
    const actor = signedIn();
    const { maxRequestBytes } = await this.files.getUsage({});
    const stored: FileView[] = [];
    const raw: { categoryId?: string; tags: string[] } = { tags: [] };
    try {
      for await (const part of multipartParts(body, {
        maxBodyBytes: maxRequestBytes,
        bodyLimitName: 'files.maxRequestBytes',
        maxFiles: this.settings.current().maxFilesPerUpload,
        filesLimitName: 'documents.maxFilesPerUpload',
        maxFields: 100,
      })) {
        if (part.kind === 'field') {
          if (part.field === 'categoryId') raw.categoryId = part.value;
          else if (part.field === 'tags') raw.tags.push(...part.value.split(','));
          continue;
        }
        if (part.field !== 'file') {
          throw new ContractError('invalid_input', `unexpected file part "${part.field}"`, [{ path: part.field, message: 'send files as parts named `file`' }]);
        }
        // Streamed straight on to the files module (which counts, hashes and sniffs it).
        stored.push(await this.files.storeFile({ name: (part.fileName.trim() || 'unnamed').slice(0, 255) }, { stream: part.stream, contentType: 'application/octet-stream' }));
      }
      if (!stored.length) throw new ContractError('invalid_input', 'no file in the form', [{ path: 'file', message: 'required' }]);
      const unsupported = stored.find((f) => !(SUPPORTED_MEDIA_TYPES as readonly string[]).includes(f.mediaType));
      if (unsupported) {
        throw new ContractError('unsupported_media_type', `${unsupported.name} is ${unsupported.mediaType}; supported: txt, md, html, pdf, docx, csv, json`, {
          file: unsupported.name,
          mediaType: unsupported.mediaType,
        });
      }
      const fields = parseInput(uploadFields, { ...raw, tags: raw.tags.map((t) => t.trim()).filter(Boolean) });
      const items = await this.accept(actor, stored, { categoryId: fields.categoryId, tags: fields.tags });
      return { items };
    } catch (err) {
      // Nothing half-done: the files stored by this request go (documents already recorded keep theirs
      // only when the request got as far as recording them, i.e. never on this path before enqueueing).
      for (const f of stored) await this.files.deleteFile({ id: f.id }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Records stored files as documents (independent records; the same bytes twice are settled by the
   * create script, first come first served), queues the new ones, and answers them in the given order.
   */
  private async accept(actor: UserActor, stored: FileView[], meta: { categoryId?: string | undefined; tags: string[]; sourceUrl?: string; names?: string[] }): Promise<DocumentView[]> {
    const tags = [...new Set(meta.tags)];
    const recorded = await Promise.all(
      stored.map(async (f, i): Promise<{ fresh?: StoredDocument; item?: DocumentView }> => {
        const doc: StoredDocument = {
          id: newDocumentId(),
          ownerId: actor.id,
          name: meta.names?.[i] ?? f.name,
          mediaType: f.mediaType,
          size: f.size,
          sha256: f.sha256,
          fileId: f.id,
          shared: false,
          status: 'queued',
          stage: null,
          progress: 0,
          chunkCount: 0,
          categoryId: meta.categoryId ?? null,
          tags,
          ...(meta.sourceUrl ? { sourceUrl: meta.sourceUrl } : {}),
          createdAt: new Date().toISOString(),
          run: 1,
          stageIdx: -1,
          embedded: 0,
        };
        const holder = await this.store.create(doc);
        if (holder === doc.id) return { fresh: doc, item: view(doc) };
        // The same bytes again: the document that has them already answers, and this copy goes.
        await this.files.deleteFile({ id: f.id }).catch(() => undefined);
        const existing = await this.store.get(holder);
        return existing ? { item: view(existing) } : {};
      }),
    );
    const fresh = recorded.flatMap((r) => (r.fresh ? [r.fresh] : []));
    await this.pipeline.enqueueMany('parse', fresh.map((d) => ({ documentId: d.id, ownerId: d.ownerId, run: d.run, size: d.size })));
    for (const d of fresh) this.pipeline.push(d);
    this.logger.info({ count: fresh.length, duplicates: stored.length - fresh.length }, 'documents accepted');
    return recorded.flatMap((r) => (r.item ? [r.item] : []));
  }

  /**
   * A web page as a document: read by the browser module (its SSRF guard refuses private addresses with
   * `forbidden`, and Chromium only starts for this), stored as Markdown under the page's title, then
   * processed like an upload. The same page read twice with the same text is one document.
   */
  async addUrl(input: { url: string; categoryId?: string | undefined; tags?: string[] | undefined }) {
    const actor = signedIn();
    const page = await this.browser.fetchPage({ url: input.url });
    const markdown = page.markdown.trim();
    if (!markdown) throw new ContractError('invalid_input', `the page at ${page.url} has no readable text`, [{ path: 'url', message: 'no readable text on the page' }]);
    const name = pageName(page.title, page.url);
    // The title heads the text (Readability often drops it from the article) and the address follows,
    // so every chunk's heading path names the page and its text can be cited with its source.
    const text = `${markdown.startsWith(`# ${name}\n`) ? '' : `# ${name}\n\n`}Source: <${page.url}>\n\n${markdown}\n`;
    const bytes = Buffer.from(text, 'utf8');
    // `.md`, so the files module reads it as Markdown whatever the page's first characters are.
    const file = await this.files.storeFile({ name: `${name.slice(0, 250)}.md` }, { stream: (async function* () { yield bytes; })(), contentType: 'text/markdown', contentLength: bytes.length });
    try {
      const [item] = await this.accept(actor, [file], { categoryId: input.categoryId, tags: input.tags ?? [], sourceUrl: page.url, names: [name] });
      if (!item) throw new ContractError('conflict', 'the document holding this page was deleted meanwhile; try again');
      return item;
    } catch (err) {
      await this.files.deleteFile({ id: file.id }).catch(() => undefined);
      throw err;
    }
  }

  /** The document if the caller may read it: their own, or a shared one. */
  private async readable(id: string): Promise<StoredDocument> {
    const actor = signedIn();
    const d = await this.store.get(id);
    if (!d || (d.ownerId !== actor.id && !d.shared)) throw new ContractError('not_found', `no document ${id}`);
    return d;
  }

  private async owned(id: string): Promise<StoredDocument> {
    const actor = signedIn();
    const d = await this.store.getOwned(actor.id, id);
    if (!d) throw new ContractError('not_found', `no document ${id}`);
    return d;
  }

  async listDocuments(input: { status?: DocumentStatus | undefined; limit: number; cursor?: string | undefined }) {
    const actor = signedIn();
    const page = await this.store.list(actor.id, input.limit, input.cursor, input.status);
    return { items: page.items.map(view), nextCursor: page.nextCursor };
  }

  async getDocument(input: { id: string }) {
    return view(await this.readable(input.id));
  }

  async updateDocument(input: { id: string; categoryId?: string | null | undefined; tags?: string[] | undefined; shared?: boolean | undefined }) {
    const actor = signedIn();
    if (input.shared !== undefined && !isAdmin(actor)) throw new ContractError('forbidden', 'only admins share documents');
    const d = await this.owned(input.id);
    const patch: { categoryId?: string | null; tags?: string[]; shared?: boolean } = {};
    const fields: Record<string, string> = {};
    if (input.categoryId !== undefined) {
      patch.categoryId = input.categoryId;
      fields.categoryId = input.categoryId ?? '';
    }
    if (input.tags !== undefined) {
      patch.tags = [...new Set(input.tags)];
      fields.tags = JSON.stringify(patch.tags);
    }
    if (input.shared !== undefined) {
      patch.shared = input.shared;
      fields.shared = input.shared ? '1' : '0';
    }
    if (!Object.keys(fields).length) return view(d);
    await this.store.setMetadata(d.id, fields);
    // The vectors carry sharing, category and tags for filtered search: they follow.
    await this.embeddings.setMetadata({ collection: COLLECTION, documentId: d.id, patch });
    const updated = (await this.store.get(d.id))!;
    await this.events.publish('documents.document.updated', {
      documentId: d.id,
      ownerId: d.ownerId,
      categoryId: updated.categoryId,
      tags: updated.tags,
      shared: updated.shared,
    });
    return view(updated);
  }

  async getContent(input: { id: string }) {
    const d = await this.readable(input.id);
    const text = await this.store.text(d.id);
    if (text === undefined) throw new ContractError('conflict', `document ${d.id} has no extracted text yet (status ${d.status})`);
    return { id: d.id, name: d.name, text };
  }

  async listChunks(input: { id: string; ownerId?: string | undefined; limit: number; cursor?: string | undefined }) {
    const actor = currentContext()?.actor;
    let d: StoredDocument | undefined;
    if (actor?.type === 'service') {
      if (!input.ownerId) throw new ContractError('invalid_input', 'a service must name the owner', [{ path: 'ownerId', message: 'required for services' }]);
      d = await this.store.getOwned(input.ownerId, input.id);
      if (!d) throw new ContractError('not_found', `no document ${input.id}`);
    } else {
      if (input.ownerId !== undefined) throw new ContractError('invalid_input', 'only a service names the owner', [{ path: 'ownerId', message: 'not allowed for users' }]);
      d = await this.readable(input.id);
    }
    const offset = input.cursor && /^\d+$/.test(input.cursor) ? Number(input.cursor) : 0;
    const chunks = await this.store.chunks(d.id, d.run, offset, offset + input.limit);
    const page = chunks.slice(0, input.limit);
    return {
      items: page.map((c) => ({ id: `${d.id}:${d.run}:${c.seq}`, documentId: d.id, seq: c.seq, text: c.text, headingPath: c.headingPath, page: c.page })),
      nextCursor: chunks.length > input.limit ? String(offset + input.limit) : null,
    };
  }

  async reindex(input: { id: string }) {
    const d = await this.owned(input.id);
    const run = d.run + 1;
    const outcome = await this.store.restart(d.id, run);
    if (outcome === 'busy') throw new ContractError('conflict', `document ${d.id} is being processed (${d.status}); cancel it first or wait`);
    if (outcome === 'gone') throw new ContractError('not_found', `no document ${d.id}`);
    await this.pipeline.enqueue('parse', { documentId: d.id, ownerId: d.ownerId, run, size: d.size });
    const now = (await this.store.get(d.id))!;
    this.pipeline.push(now);
    return view(now);
  }

  async cancel(input: { id: string }) {
    const d = await this.owned(input.id);
    const outcome = await this.store.cancel(d.id);
    if (outcome === 'indexed') throw new ContractError('conflict', `document ${d.id} is already indexed; delete it instead`);
    if (outcome === 'gone') throw new ContractError('not_found', `no document ${d.id}`);
    if (outcome === 'ok') {
      // Whatever is written so far goes now; a stage still running finds the run cancelled at its next
      // check and removes what it wrote after this.
      await this.pipeline.cleanUp({ documentId: d.id, ownerId: d.ownerId, run: d.run }, 'cancelled');
      this.logger.info({ documentId: d.id }, 'document cancelled');
    }
    const now = (await this.store.get(d.id))!;
    this.pipeline.push(now);
    return view(now);
  }

  async deleteDocument(input: { id: string }) {
    const actor = signedIn();
    const d = await this.store.getOwned(actor.id, input.id);
    const run = d ? await this.store.remove(actor.id, input.id) : undefined;
    if (!d || run === undefined) throw new ContractError('not_found', `no document ${input.id}`);
    // The record is gone first: a stage still running sees that and cleans up after itself too.
    await this.embeddings.remove({ collection: COLLECTION, documentId: d.id });
    await this.store.removeRunData(d.id, Array.from({ length: run }, (_, i) => i + 1));
    await this.store.removeText(d.id);
    await this.files.deleteFile({ id: d.fileId }).catch((err: unknown) => {
      if (!(isContractError(err) && err.code === 'not_found')) throw err;
    });
    await this.events.publish('documents.document.deleted', { documentId: d.id, ownerId: d.ownerId });
    return null;
  }
}

