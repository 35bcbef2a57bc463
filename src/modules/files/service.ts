// The files module's operations. A user's files are the actor's; a service (another module, e.g.
// documents running a job) names the owner explicitly. Another owner's file is `not_found`.
import { inject, injectable } from 'tsyringe';
import type { Logger } from 'pino';
import type { Download, Handlers, Port, UploadBody } from '../../kernel/contract/define.js';
import { ContractError } from '../../kernel/contract/errors.js';
import { currentContext } from '../../kernel/context/request-context.js';
import { ModuleLogger, ProcessConfigToken } from '../../kernel/module/tokens.js';
import { SettingsHolder } from '../../kernel/module/settings-holder.js';
import type { AppConfig } from '../../kernel/config/app-config.js';
import { readableOf } from '../../kernel/transport/binary-wire.js';
import { multipartParts } from '../../kernel/transport/multipart.js';
import { configContract } from '../config/contract.js';
import { BlobStore } from './blob-store.js';
import { filesContract, filesSettings, type FileView } from './contract.js';
import { FileStore, newFileId, type StoredFile } from './file-store.js';
import { SNIFF_HEAD_BYTES, sniffMediaType } from './media-type.js';
import type { Readable } from 'node:stream';

function view(f: StoredFile): FileView {
  return { id: f.id, name: f.name, mediaType: f.mediaType, size: f.size, sha256: f.sha256, createdAt: f.createdAt };
}

/** Whose files a call is about. */
export function ownerOf(ownerId: string | undefined): string {
  const actor = currentContext()?.actor;
  if (actor?.type === 'user') {
    if (ownerId !== undefined && ownerId !== actor.id) {
      throw new ContractError('invalid_input', 'only a service names the owner', [{ path: 'ownerId', message: 'not allowed for users' }]);
    }
    return actor.id;
  }
  if (actor?.type === 'service') {
    if (!ownerId) throw new ContractError('invalid_input', 'a service must name the owner', [{ path: 'ownerId', message: 'required for services' }]);
    return ownerId;
  }
  throw new ContractError('unauthenticated', 'sign in first');
}

function tooLarge(limit: string, bytes: number, what: string): ContractError {
  return new ContractError('payload_too_large', `${what} exceeds ${limit} (${bytes} bytes)`, { limit, maxBytes: bytes });
}

@injectable()
export class FilesService implements Handlers<typeof filesContract> {
  readonly settings: SettingsHolder<typeof filesSettings>;
  readonly blobs: BlobStore;

  constructor(
    @inject(FileStore) private readonly files: FileStore,
    @inject(ModuleLogger) private readonly logger: Logger,
    @inject(ProcessConfigToken) config: AppConfig,
    @inject(configContract.token) settingsPort: Port<typeof configContract>,
  ) {
    this.blobs = new BlobStore(config.AUTOBOT_DATA_DIR);
    this.settings = new SettingsHolder(filesSettings, async () => (await settingsPort.getModuleSettings({ module: filesContract.id })).settings, logger);
  }

  /**
   * Streams one file to disk under the limits, sniffs it and records it; on any refusal nothing is left
   * behind (no temporary file, no record, no quota used).
   */
  private async store(ownerId: string, name: string, source: Readable, declaredSize?: number): Promise<StoredFile> {
    const { maxFileBytes, quotaBytes } = this.settings.current();
    if (declaredSize !== undefined && declaredSize > maxFileBytes) throw tooLarge('files.maxFileBytes', maxFileBytes, 'the file');
    const used = await this.files.usedBytes(ownerId);
    const overQuota = () => tooLarge('files.quotaBytes', quotaBytes, `the file with the ${used} bytes already stored`);
    if (declaredSize !== undefined && used + declaredSize > quotaBytes) throw overQuota();
    const blob = await this.blobs.write(
      source,
      (size) => (size > maxFileBytes ? tooLarge('files.maxFileBytes', maxFileBytes, 'the file') : used + size > quotaBytes ? overQuota() : undefined),
      SNIFF_HEAD_BYTES,
    );
    const id = newFileId();
    try {
      const mediaType = await sniffMediaType(blob.tmpPath, blob.size, name, blob.head);
      const file: StoredFile = { id, ownerId, name, mediaType, size: blob.size, sha256: blob.sha256, createdAt: new Date().toISOString() };
      // Renamed before the record exists: a crash in between leaves an unreferenced blob, never a record without bytes.
      await this.blobs.commit(blob.tmpPath, id);
      if (!(await this.files.add(file, quotaBytes))) {
        await this.blobs.remove(id);
        throw overQuota();
      }
      return file;
    } catch (err) {
      await this.blobs.discard(blob.tmpPath);
      throw err;
    }
  }

  async uploadFile(_input: Record<string, never>, body: UploadBody) {
    const ownerId = ownerOf(undefined);
    const { maxRequestBytes } = this.settings.current();
    let stored: StoredFile | undefined;
    try {
      for await (const part of multipartParts(body, {
        maxBodyBytes: maxRequestBytes,
        bodyLimitName: 'files.maxRequestBytes',
        maxFiles: 1,
        filesLimitName: 'one file per request',
      })) {
        if (part.kind !== 'file') continue;
        if (part.field !== 'file') {
          throw new ContractError('invalid_input', `unexpected file part "${part.field}"`, [{ path: part.field, message: 'send the file as the part `file`' }]);
        }
        stored = await this.store(ownerId, safeName(part.fileName), part.stream);
      }
    } catch (err) {
      if (stored) await this.remove(ownerId, stored.id);
      throw err;
    }
    if (!stored) throw new ContractError('invalid_input', 'no file in the form', [{ path: 'file', message: 'required' }]);
    this.logger.info({ fileId: stored.id, size: stored.size, mediaType: stored.mediaType }, 'file stored');
    return view(stored);
  }

  async storeFile(input: { name: string; ownerId?: string | undefined }, body: UploadBody) {
    const ownerId = ownerOf(input.ownerId);
    return view(await this.store(ownerId, safeName(input.name), readableOf(body.stream), body.contentLength));
  }

  async listFiles(input: { limit: number; cursor?: string | undefined }) {
    const page = await this.files.list(ownerOf(undefined), input.limit, input.cursor);
    return { items: page.items.map(view), nextCursor: page.nextCursor };
  }

  private async found(ownerId: string, id: string): Promise<StoredFile> {
    const f = await this.files.get(ownerId, id);
    if (!f) throw new ContractError('not_found', `no file ${id}`);
    return f;
  }

  async getFile(input: { id: string; ownerId?: string | undefined }) {
    return view(await this.found(ownerOf(input.ownerId), input.id));
  }

  async getContent(input: { id: string; ownerId?: string | undefined }): Promise<Download> {
    const f = await this.found(ownerOf(input.ownerId), input.id);
    const stream = this.blobs.open(f.id);
    // Opened before answering: a missing blob is a clear error, not a broken download.
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', () => reject(new ContractError('not_found', `the bytes of file ${f.id} are missing`)));
    });
    return { contentType: f.mediaType, size: f.size, fileName: f.name, disposition: 'attachment', body: stream };
  }

  private async remove(ownerId: string, id: string): Promise<boolean> {
    const removed = await this.files.remove(ownerId, id);
    if (removed) await this.blobs.remove(id);
    return removed;
  }

  async deleteFile(input: { id: string; ownerId?: string | undefined }) {
    if (!(await this.remove(ownerOf(input.ownerId), input.id))) throw new ContractError('not_found', `no file ${input.id}`);
    return null;
  }

  async getUsage(input: { ownerId?: string | undefined }) {
    const ownerId = ownerOf(input.ownerId);
    const s = this.settings.current();
    const [usedBytes, fileCount] = await Promise.all([this.files.usedBytes(ownerId), this.files.count(ownerId)]);
    return { maxFileBytes: s.maxFileBytes, maxRequestBytes: s.maxRequestBytes, quotaBytes: s.quotaBytes, usedBytes, fileCount };
  }
}

/** The client's name is kept as a label only (never a path): no directories, no control characters. */
function safeName(name: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what is removed
  const base = (name.split(/[\\/]/).pop() ?? '').replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 255);
  return base || 'unnamed';
}
