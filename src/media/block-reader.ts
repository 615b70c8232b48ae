import type { FileHandle } from 'node:fs/promises';
import { errnoCode } from '../errors.js';

/**
 * Positioned reads for the media probe, always of whole device sectors: a device delivers nothing
 * smaller, so a sector that fails with EIO fails alone instead of taking its neighbours with it,
 * and overlapping requests (anchors, directory blocks) are served from the sectors already read.
 */
export interface BlockReader {
  /**
   * `length` bytes from `offset`. Shorter (possibly empty) at the end of the medium; null when
   * the medium could not deliver them (an I/O error), so callers treat them as unreadable.
   */
  read(offset: number, length: number): Promise<Buffer | null>;
  /** A read failed with ENOMEDIUM: the drive is empty (or its tray was opened meanwhile). */
  readonly noMedium: boolean;
}

/** The probe never needs more than this in one read; larger requests come from bad descriptors. */
const MAX_READ_BYTES = 4 * 1024 * 1024;

/** Node's positioned reads take a safe integer; anything beyond is garbage from a descriptor. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER - MAX_READ_BYTES;

export function createBlockReader(handle: FileHandle, sectorSize: number): BlockReader {
  let noMedium = false;
  const cache = new Map<number, Buffer | null>();

  const readSector = async (index: number): Promise<Buffer | null> => {
    const cached = cache.get(index);
    if (cached !== undefined) return cached;
    let sector: Buffer | null;
    try {
      const buffer = Buffer.alloc(sectorSize);
      const { bytesRead } = await handle.read(buffer, 0, sectorSize, index * sectorSize);
      sector = buffer.subarray(0, bytesRead);
    } catch (error) {
      // Any failure of a positioned read on an open handle is the medium's fault (EIO, ENOMEDIUM
      // after the tray opened, EINVAL past the end of a block device): report it as unreadable.
      if (errnoCode(error) === 'ENOMEDIUM') noMedium = true;
      sector = null;
    }
    // Descriptor sectors are re-read often (anchors, directories); a small cache keeps a
    // slow optical drive from seeking back and forth.
    if (cache.size >= 1024) cache.clear();
    cache.set(index, sector);
    return sector;
  };

  return {
    get noMedium() {
      return noMedium;
    },
    async read(offset: number, length: number): Promise<Buffer | null> {
      if (!Number.isSafeInteger(offset) || offset < 0 || offset > MAX_OFFSET) return Buffer.alloc(0);
      const wanted = Math.max(0, Math.min(length, MAX_READ_BYTES));
      if (wanted === 0) return Buffer.alloc(0);
      const first = Math.floor(offset / sectorSize);
      const last = Math.floor((offset + wanted - 1) / sectorSize);
      const parts: Buffer[] = [];
      for (let index = first; index <= last; index += 1) {
        const sector = await readSector(index);
        if (sector === null) return null;
        parts.push(sector);
        if (sector.length < sectorSize) break;
      }
      const joined = Buffer.concat(parts);
      const start = offset - first * sectorSize;
      return joined.subarray(Math.min(start, joined.length), Math.min(start + wanted, joined.length));
    },
  };
}
