import { readFile, stat } from 'node:fs/promises';
import type { HashAlgorithm } from '../config/schema.js';
import { NotFoundError, UnavailableError, ValidationError, errnoCode, errorMessage } from '../errors.js';
import { createHashers, hashFile } from './hasher.js';
import { createProgressTracker } from './progress.js';
import { createSlotPool } from './slots.js';
import type { DirectIoMode } from './source.js';
import type { ReadThrottle } from './throttle.js';
import { CHECKSUM_ALGORITHMS, type ImagingProgress } from './types.js';

interface VerifyResult {
  algorithm: HashAlgorithm;
  expected: string;
  actual: string;
  ok: boolean;
}

export interface VerifyReport {
  /** True when every sidecar's checksum matches the image. */
  ok: boolean;
  results: VerifyResult[];
  bytes: number;
  seconds: number;
}

export interface VerifyOptions {
  /** Aborting ends the run with UnavailableError `verification_stopped`. */
  signal?: AbortSignal | undefined;
  /** Phase `verifying`; bytesDone counts bytes re-hashed. */
  onProgress?: ((progress: ImagingProgress) => void) | undefined;
  /** Default `auto`: read around the page cache where the file system allows it, so the disk is what is checked. */
  directIo?: DirectIoMode;
  onLog?: ((level: 'info' | 'warning' | 'error', message: string) => void) | undefined;
  /** Caps the reading speed (scheduled re-verification must not starve imaging). */
  throttle?: ReadThrottle | undefined;
}

const HEX_LENGTH: Record<HashAlgorithm, number> = { md5: 32, sha1: 40, sha256: 64 };
const SLOT_BYTES = 1024 * 1024;
const SLOT_COUNT = 8;

/** The hex digest of a coreutils checksum file (`<hex>  NAME` or `<hex> *NAME`), or undefined when there is none. */
export async function readSidecar(path: string, algorithm: HashAlgorithm): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw new UnavailableError('sidecar_unreadable', `cannot read ${path}: ${errorMessage(error)}`, { path });
  }
  const line = text.split('\n').find((candidate) => candidate.trim() !== '') ?? '';
  const match = /^\\?([0-9a-fA-F]+) [ *]/.exec(line);
  const hex = match?.[1];
  if (hex === undefined || hex.length !== HEX_LENGTH[algorithm]) {
    throw new ValidationError('sidecar_invalid', `${path} is not a ${algorithm} checksum file`, { path });
  }
  return hex.toLowerCase();
}

/**
 * Re-hashes an image in worker threads and compares it with the `.md5`, `.sha1` and `.sha256`
 * sidecars next to it (whichever exist). NotFoundError when the image or every sidecar is missing.
 */
export async function verifyImage(imagePath: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  let size: number;
  try {
    const info = await stat(imagePath);
    if (!info.isFile()) throw new ValidationError('validation_failed', `${imagePath} is not a file`, { path: imagePath });
    size = info.size;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') throw new NotFoundError('image_not_found', `image ${imagePath} does not exist`, { path: imagePath });
    if (error instanceof ValidationError) throw error;
    throw new UnavailableError('image_unreadable', `cannot read ${imagePath}: ${errorMessage(error)}`, { path: imagePath });
  }

  const expected = new Map<HashAlgorithm, string>();
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const hex = await readSidecar(`${imagePath}.${algorithm}`, algorithm);
    if (hex !== undefined) expected.set(algorithm, hex);
  }
  if (expected.size === 0) {
    throw new NotFoundError('sidecars_not_found', `no checksum sidecar (.md5, .sha1, .sha256) next to ${imagePath}`, { path: imagePath });
  }

  const started = performance.now();
  const slots = createSlotPool(SLOT_BYTES, SLOT_COUNT);
  const hashers = createHashers([...expected.keys()], slots);
  const progress = createProgressTracker({ bytesTotal: size, onProgress: options.onProgress });
  // Verification reads the image, not a source: no source reads to count.
  const snapshot = (bytesDone: number) => ({
    phase: 'verifying' as const,
    bytesDone,
    badBytes: 0,
    errorCount: 0,
    position: bytesDone,
    buffered: false,
    readCalls: 0,
    readBytes: 0,
  });
  try {
    progress.update(snapshot(0), true);
    const complete = await hashFile({
      path: imagePath,
      start: 0,
      end: size,
      directIo: options.directIo ?? 'auto',
      hashers,
      slots,
      signal: options.signal,
      throttle: options.throttle,
      onPosition: (position) => progress.update(snapshot(position)),
      onFallback: (reason) => options.onLog?.('info', `verifying with buffered reads: ${reason}`),
    });
    if (!complete) throw new UnavailableError('verification_stopped', `verification of ${imagePath} was stopped before it finished`, { path: imagePath });
    const digests = await hashers.digest();
    progress.update(snapshot(size), true);
    const results: VerifyResult[] = [...expected].map(([algorithm, hex]) => {
      const actual = digests[algorithm] ?? '';
      return { algorithm, expected: hex, actual, ok: actual === hex };
    });
    return { ok: results.every((result) => result.ok), results, bytes: size, seconds: (performance.now() - started) / 1000 };
  } finally {
    await hashers.close();
  }
}

/**
 * Hashes a whole file with these algorithms at once (one worker thread each, shared buffers).
 * Returns null when the signal stopped it.
 */
export async function hashWholeFile(
  path: string,
  sizeBytes: number,
  algorithms: readonly HashAlgorithm[],
  options: { signal?: AbortSignal; onPosition?: (position: number) => void; directIo?: DirectIoMode } = {},
): Promise<Partial<Record<HashAlgorithm, string>> | null> {
  const slots = createSlotPool(SLOT_BYTES, SLOT_COUNT);
  const hashers = createHashers(algorithms, slots);
  try {
    const complete = await hashFile({
      path,
      start: 0,
      end: sizeBytes,
      directIo: options.directIo ?? 'auto',
      hashers,
      slots,
      signal: options.signal,
      ...(options.onPosition ? { onPosition: options.onPosition } : {}),
    });
    return complete ? await hashers.digest() : null;
  } finally {
    await hashers.close();
  }
}
