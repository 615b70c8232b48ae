import type { FileHandle } from 'node:fs/promises';
import { UnavailableError, errnoCode, errorMessage } from '../errors.js';
import type { Slot } from './slots.js';

/**
 * Writes rescued data into NAME.iso.part in the background, so the next read overlaps the write.
 * Only a completed write calls back, and only that callback marks the area finished.
 */
export interface ImageWriter {
  /** Queues a write of `length` bytes at `start` within `slot` to `position`; retains the slot until done. */
  write(slot: Slot, start: number, length: number, position: number, onWritten: () => void): void;
  /** Throws the first failed write's error (`no_space` or `output_unwritable`). */
  check(): void;
  /** Waits for every queued write; then throws like check(). */
  drain(): Promise<void>;
  /** Resolves once the writes queued so far have landed or failed, without waiting for later ones; never throws. */
  landed(): Promise<void>;
  /** Number of bytes written so far. */
  readonly bytesWritten: number;
}

const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT']);

function writeFailure(path: string, position: number, error: unknown): UnavailableError {
  const code = errnoCode(error);
  if (code !== undefined && NO_SPACE_CODES.has(code)) {
    return new UnavailableError('no_space', `the output file system is full (writing ${path} at byte ${position})`, { path, errno: code });
  }
  return new UnavailableError('output_unwritable', `cannot write ${path} at byte ${position}: ${errorMessage(error)}`, { path, errno: code });
}

/** O_DIRECT writes must be aligned to the file system's block size; 4096 satisfies every Linux file system. */
const DIRECT_ALIGNMENT = 4096;

/**
 * `direct`, when given, is a second handle of the same file opened with O_DIRECT: aligned writes
 * (the copy pass's large ones) go through it, straight from the shared memory to the disk, which
 * saves copying every byte into the page cache and writing it back later. Unaligned writes (sector
 * runs) use the buffered handle; their pages never overlap an aligned write's whole pages.
 */
export function createImageWriter(handle: FileHandle, path: string, direct?: FileHandle): ImageWriter {
  const pending = new Set<Promise<void>>();
  let directHandle = direct;
  let failure: UnavailableError | undefined;
  let bytesWritten = 0;

  function aligned(view: Uint8Array, position: number): boolean {
    return position % DIRECT_ALIGNMENT === 0 && view.length % DIRECT_ALIGNMENT === 0 && view.byteOffset % DIRECT_ALIGNMENT === 0;
  }

  async function writeAll(view: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < view.length) {
      const target = directHandle !== undefined && aligned(view.subarray(done), position + done) ? directHandle : handle;
      let written: number;
      try {
        // A short write means the file system ran out mid-way; the next call reports why.
        ({ bytesWritten: written } = await target.write(view, done, view.length - done, position + done));
      } catch (error) {
        if (target === handle || errnoCode(error) !== 'EINVAL') throw error;
        // The file system wants another alignment after all: write buffered from now on.
        directHandle = undefined;
        continue;
      }
      if (written === 0) throw Object.assign(new Error('write made no progress'), { code: 'ENOSPC' });
      done += written;
    }
  }

  return {
    write(slot, start, length, position, onWritten) {
      slot.retain();
      const task = writeAll(slot.view.subarray(start, start + length), position)
        .then(
          () => {
            bytesWritten += length;
            onWritten();
          },
          (error: unknown) => {
            failure ??= writeFailure(path, position, error);
          },
        )
        .finally(() => {
          slot.release();
          pending.delete(task);
        });
      pending.add(task);
    },
    check() {
      if (failure !== undefined) throw failure;
    },
    async drain() {
      while (pending.size > 0) await Promise.all([...pending]);
      if (failure !== undefined) throw failure;
    },
    async landed() {
      // The tasks themselves never reject: a failure is kept in `failure` for check() and drain().
      await Promise.all([...pending]);
    },
    get bytesWritten() {
      return bytesWritten;
    },
  };
}
