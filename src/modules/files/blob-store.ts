// File bytes on disk under <data dir>/files: written to a temporary name while the SHA-256 is computed
// and the limits are counted, renamed to the file's id once complete. Never the client's name on disk.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ContractError } from '../../kernel/contract/errors.js';

export interface WrittenBlob {
  tmpPath: string;
  size: number;
  sha256: string;
  /** The first bytes (up to the `headBytes` asked for), so sniffing a small file need not read it back. */
  head: Buffer;
}

/** Counts and hashes what passes; fails the pipeline as soon as a limit is crossed. */
class Meter extends Transform {
  size = 0;
  private readonly hash = createHash('sha256');
  private readonly headParts: Buffer[] = [];
  private headSize = 0;

  constructor(
    private readonly check: (size: number) => ContractError | undefined,
    private readonly headBytes: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    const refusal = this.check(this.size);
    if (refusal) {
      done(refusal);
      return;
    }
    this.hash.update(chunk);
    if (this.headSize < this.headBytes) {
      // Copied: the chunk's memory belongs to the stream.
      const part = Buffer.from(chunk.subarray(0, this.headBytes - this.headSize));
      this.headParts.push(part);
      this.headSize += part.length;
    }
    done(null, chunk);
  }

  head(): Buffer {
    return Buffer.concat(this.headParts);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

export class BlobStore {
  readonly root: string;
  private readonly tmpDir: string;
  private readonly blobDir: string;
  /** Blob subdirectories known to exist: each is made once per process, not once per file. */
  private readonly madeDirs = new Set<string>();

  constructor(dataDir: string) {
    this.root = path.resolve(dataDir, 'files');
    this.tmpDir = path.join(this.root, 'tmp');
    this.blobDir = path.join(this.root, 'blobs');
  }

  async init(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.blobDir, { recursive: true });
  }

  /** Temporary files left by a process that died mid-upload; only old ones, another instance may be writing. */
  async sweepTemporary(olderThanMs: number): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const p = path.join(this.tmpDir, name);
      const s = await stat(p).catch(() => undefined);
      if (s && Date.now() - s.mtimeMs > olderThanMs) {
        await unlink(p).catch(() => undefined);
        removed++;
      }
    }
    return removed;
  }

  pathOf(id: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new ContractError('not_found', 'no such file');
    return path.join(this.blobDir, id.slice(-2), id);
  }

  /**
   * Streams `source` to a temporary file. `check` is asked after every chunk and may refuse (a limit):
   * the temporary file is then removed before the refusal is thrown.
   */
  async write(source: Readable, check: (size: number) => ContractError | undefined, headBytes = 0): Promise<WrittenBlob> {
    const tmpPath = path.join(this.tmpDir, `${randomBytes(12).toString('hex')}.part`);
    const meter = new Meter(check, headBytes);
    // The source is piped by hand, not through pipeline(): a refusal must not destroy the client's
    // request (it would reset the connection before the 413 is read); the edge settles what is left.
    const onSourceError = (err: Error) => meter.destroy(err);
    source.once('error', onSourceError);
    const written = pipeline(meter, createWriteStream(tmpPath, { flags: 'wx' }));
    source.pipe(meter);
    try {
      await written;
    } catch (err) {
      source.unpipe(meter);
      await unlink(tmpPath).catch(() => undefined);
      if (err instanceof ContractError) throw err;
      throw new ContractError('invalid_input', 'the upload broke off before it was complete');
    } finally {
      source.off('error', onSourceError);
    }
    return { tmpPath, size: meter.size, sha256: meter.digest(), head: meter.head() };
  }

  /** Moves a complete temporary file to its id. */
  async commit(tmpPath: string, id: string): Promise<void> {
    const target = this.pathOf(id);
    const dir = path.dirname(target);
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    try {
      await rename(tmpPath, target);
    } catch (err) {
      // The directory went away behind our back (cleaned by hand): make it again once.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(dir, { recursive: true });
      await rename(tmpPath, target);
    }
  }

  async discard(tmpPath: string): Promise<void> {
    await unlink(tmpPath).catch(() => undefined);
  }

  open(id: string): Readable {
    return createReadStream(this.pathOf(id));
  }

  async remove(id: string): Promise<void> {
    await unlink(this.pathOf(id)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}
