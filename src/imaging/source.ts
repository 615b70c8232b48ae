import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { UnavailableError, errnoCode, errorMessage } from '../errors.js';

export type DirectIoMode = 'auto' | 'on' | 'off';

/** A source opened for reading, with O_DIRECT where the file system allows it. */
export interface SourceReader {
  readonly path: string;
  /** True when reads go through the page cache (O_DIRECT off or refused). */
  readonly buffered: boolean;
  /**
   * One read of `target.length` bytes at `position` into `target`. With O_DIRECT, target's address,
   * length and position must be multiples of the device's logical block size. Resolves with the
   * bytes read (fewer only at the end of the source); rejects with the read's errno error.
   */
  read(target: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

export interface OpenSourceOptions {
  directIo: DirectIoMode;
  /**
   * An aligned buffer of one logical sector, read once at offset 0 to learn whether O_DIRECT works:
   * some file systems accept the O_DIRECT open but refuse the first read with EINVAL.
   */
  probe: Uint8Array;
  /** Told once when `auto` had to fall back to buffered reads. */
  onFallback?: (reason: string) => void;
}

function wrap(path: string, handle: FileHandle, buffered: boolean): SourceReader {
  return {
    path,
    buffered,
    async read(target, position) {
      const { bytesRead } = await handle.read(target, 0, target.length, position);
      return bytesRead;
    },
    close: () => handle.close(),
  };
}

function openFailure(path: string, error: unknown): UnavailableError {
  return new UnavailableError('source_unreadable', `cannot open ${path}: ${errorMessage(error)}`, { path, errno: errnoCode(error) });
}

async function openBuffered(path: string): Promise<SourceReader> {
  try {
    return wrap(path, await open(path, constants.O_RDONLY), true);
  } catch (error) {
    throw openFailure(path, error);
  }
}

/**
 * Opens `path` read-only, with O_DIRECT unless `directIo` is `off`. When the file system refuses
 * O_DIRECT (EINVAL on open or on the probe read), `auto` falls back to buffered reads and `on`
 * fails with `source_unreadable`.
 */
export async function openSource(path: string, options: OpenSourceOptions): Promise<SourceReader> {
  if (options.directIo === 'off') return openBuffered(path);

  let refusal: unknown;
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_DIRECT);
  } catch (error) {
    if (errnoCode(error) !== 'EINVAL') throw openFailure(path, error);
    refusal = error;
  }
  if (handle !== undefined) {
    try {
      await handle.read(options.probe, 0, options.probe.length, 0);
      return wrap(path, handle, false);
    } catch (error) {
      // Only EINVAL means "no O_DIRECT here"; a bad first sector is for the rescue passes to find.
      if (errnoCode(error) !== 'EINVAL') return wrap(path, handle, false);
      refusal = error;
      await handle.close();
    }
  }
  const reason = `O_DIRECT is not supported for ${path} (${errorMessage(refusal)})`;
  if (options.directIo === 'on') throw new UnavailableError('source_unreadable', `${reason}; set direct_io to auto or off`, { path });
  options.onFallback?.(reason);
  return openBuffered(path);
}
