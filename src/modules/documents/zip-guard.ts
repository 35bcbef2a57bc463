// What a zip (a docx) expands to, measured before any library unzips it: the sizes its directory
// declares, then the real output of inflating every entry with a hard cap (zlib's maxOutputLength),
// since a crafted archive may lie about its sizes. Memory stays bounded by the budget either way.
import { inflateRawSync } from 'node:zlib';

export class ZipRefused extends Error {}

interface Entry {
  name: string;
  method: number;
  compressedSize: number;
  declaredSize: number;
  localOffset: number;
}

function entries(buf: Buffer): Entry[] {
  const from = Math.max(0, buf.length - 66_000);
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]), buf.length - 22);
  if (eocd < from || eocd < 0) throw new ZipRefused('not a zip archive (no central directory)');
  const count = buf.readUInt16LE(eocd + 10);
  const cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new ZipRefused('zip64 archives are not supported');
  const out: Entry[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) throw new ZipRefused('corrupt zip central directory');
    const nameLen = buf.readUInt16LE(p + 28);
    out.push({
      name: buf.toString('utf8', p + 46, p + 46 + nameLen),
      method: buf.readUInt16LE(p + 10),
      compressedSize: buf.readUInt32LE(p + 20),
      declaredSize: buf.readUInt32LE(p + 24),
      localOffset: buf.readUInt32LE(p + 42),
    });
    p += 46 + nameLen + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32);
  }
  return out;
}

/** Throws ZipRefused when the archive is malformed or would expand past `budget` bytes. */
export function checkZip(buf: Buffer, budget: number, maxEntries = 10_000): void {
  const list = entries(buf);
  if (list.length > maxEntries) throw new ZipRefused(`the archive has ${list.length} entries (more than ${maxEntries})`);
  const declared = list.reduce((n, e) => n + e.declaredSize, 0);
  if (declared > budget) throw new ZipRefused(`it would expand to ${declared} bytes (more than ${budget}): a zip bomb?`);
  let left = budget;
  for (const e of list) {
    const p = e.localOffset;
    if (p + 30 > buf.length || buf.readUInt32LE(p) !== 0x04034b50) throw new ZipRefused(`corrupt zip entry ${e.name}`);
    const start = p + 30 + buf.readUInt16LE(p + 26) + buf.readUInt16LE(p + 28);
    const data = buf.subarray(start, start + e.compressedSize);
    let size: number;
    if (e.method === 0) size = data.length;
    else if (e.method === 8) {
      try {
        size = inflateRawSync(data, { maxOutputLength: Math.max(1, left) }).length;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
          throw new ZipRefused(`it expands to more than ${budget} bytes: a zip bomb?`);
        }
        throw new ZipRefused(`corrupt zip entry ${e.name}`);
      }
    } else throw new ZipRefused(`unsupported zip compression in ${e.name}`);
    left -= size;
    if (left < 0) throw new ZipRefused(`it expands to more than ${budget} bytes: a zip bomb?`);
  }
}
