import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { UnavailableError, errnoCode, errorMessage } from '../errors.js';

export type DirectIoMode = 'auto' | 'on' | 'off';

/** Every read() of the source so far, as the drive saw them. */
interface ReadStatistics {
  calls: number;
  /** Bytes asked for, failed reads included. */
  bytes: number;
  /** Calls that failed. */
  failed: number;
}

/** A source opened for reading, with O_DIRECT where the file system allows it. */
export interface SourceReader {
  readonly path: string;
  /** True when reads go through the page cache (O_DIRECT off or refused). */
  readonly buffered: boolean;
  /** Counts every read, the probe of `openSource` included. */
  readonly statistics: Readonly<ReadStatistics>;
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

async function countedRead(statistics: ReadStatistics, handle: FileHandle, target: Uint8Array, position: number): Promise<number> {
  statistics.calls += 1;
  statistics.bytes += target.length;
  try {
    return (await handle.read(target, 0, target.length, position)).bytesRead;
  } catch (error) {
    statistics.failed += 1;
    throw error;
  }
}

function wrap(path: string, handle: FileHandle, buffered: boolean, statistics: ReadStatistics): SourceReader {
  return {
    path,
    buffered,
    statistics,
    read: (target, position) => countedRead(statistics, handle, target, position),
    close: () => handle.close(),
  };
}

function openFailure(path: string, error: unknown): UnavailableError {
  return new UnavailableError('source_unreadable', `cannot open ${path}: ${errorMessage(error)}`, { path, errno: errnoCode(error) });
}

async function openBuffered(path: string, statistics: ReadStatistics): Promise<SourceReader> {
  try {
    return wrap(path, await open(path, constants.O_RDONLY), true, statistics);
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
  const statistics: ReadStatistics = { calls: 0, bytes: 0, failed: 0 };
  if (options.directIo === 'off') return openBuffered(path, statistics);

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
      await countedRead(statistics, handle, options.probe, 0);
      return wrap(path, handle, false, statistics);
    } catch (error) {
      // Only EINVAL means "no O_DIRECT here"; a bad first sector is for the rescue passes to find.
      if (errnoCode(error) !== 'EINVAL') return wrap(path, handle, false, statistics);
      refusal = error;
      await handle.close();
    }
  }
  const reason = `O_DIRECT is not supported for ${path} (${errorMessage(refusal)})`;
  if (options.directIo === 'on') throw new UnavailableError('source_unreadable', `${reason}; set direct_io to auto or off`, { path });
  options.onFallback?.(reason);
  return openBuffered(path, statistics);
}
