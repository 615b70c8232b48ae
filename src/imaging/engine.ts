import { constants } from 'node:fs';
import { type FileHandle, open, rename, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ConflictError, DomainError, NotFoundError, UnavailableError, ValidationError, errnoCode, errorMessage } from '../errors.js';
import { FILE_MODE, fsyncDirectory, writeFileAtomic } from './atomic-file.js';
import { createFailureJournal } from './failure-journal.js';
import { type Digests, type Hashers, createHashers, hashFile } from './hasher.js';
import { type ImageWriter, createImageWriter } from './image-writer.js';
import { type RescueMap, formatMapfile } from './mapfile.js';
import { inspectOutput, outputSpace, partialPaths, pathExists, removePartials } from './output-state.js';
import { createProgressTracker } from './progress.js';
import { type RescueActivity, copyReadBytes, runRescue } from './rescue.js';
import { type ImageRecord, writeChecksumSidecars, writeImageRecord } from './sidecars.js';
import { createSlotPool } from './slots.js';
import { type SourceReader, openSource } from './source.js';
import {
  type BadSectorSummary,
  CHECKSUM_ALGORITHMS,
  type ImagingPhase,
  type ImagingRequest,
  type ImagingResult,
  type ReadSummary,
  type StopReason,
} from './types.js';
import { verifyImage } from './verify.js';

export { verifyImage } from './verify.js';

const MAP_CREATOR = 'disk2iso';
/**
 * Slots of about 4 MiB (64 MiB in all): the copy pass's reads in flight plus data waiting for the
 * image write and the hash workers. With 8, the MD5 worker (the slowest stage) waited for data for
 * a tenth of a 1 GiB copy whenever the output disk's writes stalled for a moment; with 16 it rarely
 * waits. Slots are reused most-recent first, so a slow drive only ever touches the few it needs.
 */
const SLOT_COUNT = 16;
/**
 * A map save (which first syncs the image data) is also due after this many bytes written, however
 * short the time since the last. Each sync then has little to flush, while the copy goes on;
 * otherwise the one after the copy pass had the whole image to flush from a disk's write cache,
 * about half a second per GiB on a virtual disk.
 */
const MAP_SAVE_BYTES = 128 * 1024 * 1024;
/** The output file system is checked against the stop threshold at least this often. */
const SPACE_CHECK_BYTES = 32 * 1024 * 1024;
const SPACE_CHECK_MS = 1000;
/** Room kept free beyond the image for the map and the sidecars. */
const SPACE_MARGIN_BYTES = 1024 * 1024;
const MAX_REPORTED_AREAS = 256;
const MAX_CLUSTER_BYTES = 16 * 1024 * 1024;
const RESCUE_PHASES: readonly ImagingPhase[] = ['preparing', 'copying', 'trimming', 'scraping', 'retrying'];

function validate(request: ImagingRequest): void {
  const { source, options } = request;
  const problems: string[] = [];
  if (!Number.isSafeInteger(source.sizeBytes) || source.sizeBytes <= 0) problems.push(`source size ${source.sizeBytes} must be a positive integer`);
  const sector = source.sectorSize;
  if (!Number.isInteger(sector) || sector < 512 || sector > 65536 || (sector & (sector - 1)) !== 0)
    problems.push(`sector size ${sector} must be a power of two from 512 to 65536`);
  if (!Number.isInteger(options.clusterSectors) || options.clusterSectors < 1 || options.clusterSectors * sector > MAX_CLUSTER_BYTES)
    problems.push(`cluster of ${options.clusterSectors} sectors is out of range`);
  if (!Number.isInteger(options.readAttempts) || options.readAttempts < 0) problems.push('read attempts must be a non-negative integer');
  if (
    options.checksums.length === 0 ||
    new Set(options.checksums).size !== options.checksums.length ||
    !options.checksums.every((algorithm) => CHECKSUM_ALGORITHMS.includes(algorithm))
  ) {
    problems.push('checksums must be a non-empty list of distinct md5, sha1, sha256');
  }
  if (!(options.mapSaveIntervalMs > 0)) problems.push('map save interval must be positive');
  if (!(options.stopThresholdPercent > 0 && options.stopThresholdPercent <= 100)) problems.push('stop threshold must be 1..100 percent');
  if (!['auto', 'on', 'off'].includes(options.directIo)) problems.push(`direct I/O mode ${String(options.directIo)} is not auto, on or off`);
  if (problems.length > 0) throw new ValidationError('validation_failed', `invalid imaging request: ${problems.join('; ')}`, { problems });
}

async function requireDirectory(dir: string): Promise<void> {
  try {
    if ((await stat(dir)).isDirectory()) return;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') throw new NotFoundError('output_dir_not_found', `output directory ${dir} does not exist`, { path: dir });
    throw error;
  }
  throw new ValidationError('validation_failed', `${dir} is not a directory`, { path: dir });
}

function badSectorSummary(map: RescueMap): BadSectorSummary {
  const bad = map.blocks().filter((block) => block.status === '-');
  return {
    badBytes: map.sums()['-'],
    badAreas: bad.length,
    areas: bad.slice(0, MAX_REPORTED_AREAS).map(({ pos, size }) => ({ pos, size })),
  };
}

function stopReasonOf(signal: AbortSignal | undefined): StopReason {
  return signal?.reason === 'cancel' ? 'cancel' : 'pause';
}

/** A failed write or map save for lack of room becomes the domain's clean stop. */
function asStop(error: unknown, dir: string): unknown {
  const code = errnoCode(error);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new UnavailableError('no_space', `the output file system is full: ${errorMessage(error)}`, { path: dir });
  return error;
}

/**
 * Images `request.source` into `request.outputPath` the way GNU ddrescue does, with checksums, a
 * rescue map and sidecars. Continues from NAME.iso.part + NAME.iso.map when both exist. Resolves
 * 'paused' or 'cancelled' when the signal asks for it (reason 'pause' or 'cancel'). Throws
 * ValidationError, NotFoundError, ConflictError, or UnavailableError (device_gone, no_space,
 * storage_threshold, insufficient_space, source_unreadable); a stop always leaves a resumable state.
 */
export async function runImaging(request: ImagingRequest): Promise<ImagingResult> {
  validate(request);
  const { source: input, outputPath, options, signal } = request;
  const log = request.onLog ?? (() => undefined);
  const startedAt = new Date();
  const size = input.sizeBytes;
  const sectorSize = input.sectorSize;
  const clusterBytes = options.clusterSectors * sectorSize;
  const { partPath, mapPath } = partialPaths(outputPath);
  const dir = dirname(outputPath);

  await requireDirectory(dir);
  const { map, resumed } = await inspectOutput({ outputPath, partPath, mapPath }, size);
  const failures = createFailureJournal(map);
  const stillToWrite = size - map.sums()['+'];
  const { availableBytes } = await outputSpace(dir);
  if (availableBytes < stillToWrite + SPACE_MARGIN_BYTES) {
    throw new UnavailableError('insufficient_space', `${dir} has ${availableBytes} bytes free but the image needs ${stillToWrite} more`, {
      path: dir,
      available_bytes: availableBytes,
      needed_bytes: stillToWrite,
    });
  }

  const slots = createSlotPool(copyReadBytes(clusterBytes), SLOT_COUNT);
  const sectorPool = createSlotPool(sectorSize, 1);
  const sectorSlot = await sectorPool.acquire();
  let buffered = false;
  let source: SourceReader | undefined;
  let part: FileHandle | undefined;
  /** The same .part opened with O_DIRECT for aligned writes, where the file system allows it. */
  let directPart: FileHandle | undefined;
  let hashers: Hashers | undefined;
  let errorCount = 0;
  let probes = 0;
  const activity: RescueActivity = { phase: 'preparing', status: '?', pass: 1, position: 0 };
  const progress = createProgressTracker({ bytesTotal: size, onProgress: request.onProgress });

  function readSummary(): ReadSummary {
    const statistics = source?.statistics ?? { calls: 0, bytes: 0, failed: 0 };
    return { calls: statistics.calls, bytes: statistics.bytes, failed: statistics.failed, probes };
  }

  function reportProgress(bytesDone: number, force = false): void {
    const statistics = source?.statistics;
    progress.update(
      {
        phase: activity.phase,
        bytesDone,
        badBytes: map.sums()['-'],
        errorCount,
        position: activity.position,
        buffered,
        readCalls: statistics?.calls ?? 0,
        readBytes: statistics?.bytes ?? 0,
      },
      force,
    );
  }

  function enterPhase(phase: ImagingPhase, bytesDone: number): void {
    activity.phase = phase;
    reportProgress(bytesDone, true);
  }

  /**
   * Snapshot first, then fdatasync: every '+' in the saved map was written before the sync. Failures
   * no later read has confirmed are left out (see FailureJournal).
   */
  async function saveMap(): Promise<void> {
    const finished = !RESCUE_PHASES.includes(activity.phase);
    const text = formatMapfile(
      failures.confirmedMap(),
      { currentPos: activity.position, currentStatus: finished ? '+' : activity.status, currentPass: activity.pass },
      { creator: MAP_CREATOR, startedAt, now: new Date() },
    );
    if (part !== undefined) await part.datasync();
    await writeFileAtomic(mapPath, text);
  }

  async function closePart(): Promise<void> {
    await directPart?.close();
    directPart = undefined;
    await part?.close();
    part = undefined;
  }

  function result(outcome: ImagingResult['outcome'], fields: Partial<ImagingResult> = {}): ImagingResult {
    return {
      outcome,
      outputPath,
      partPath,
      mapPath,
      sizeBytes: size,
      checksums: {},
      badSectors: badSectorSummary(map),
      verified: null,
      resumed,
      reads: readSummary(),
      timings: { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), copySeconds: 0, hashSeconds: 0, verifySeconds: 0 },
      ...fields,
    };
  }

  try {
    // A worker takes tens of milliseconds to boot: started first, it boots while the source and the
    // output are opened instead of holding up the first hashes.
    const hashing = createHashers(options.checksums, slots);
    hashers = hashing;
    source = await openSource(input.path, {
      directIo: options.directIo,
      probe: sectorSlot.view,
      onFallback: (reason) => {
        buffered = true;
        log('warning', `${reason}; reading buffered through the page cache instead`);
      },
    });
    // With direct_io off the source is buffered from the start, and no fallback says so.
    buffered = source.buffered;
    reportProgress(map.sums()['+'], true);

    if (resumed) {
      part = await open(partPath, 'r+');
      log('info', `resuming from ${basename(mapPath)}: ${map.sums()['+']} of ${size} bytes already rescued`);
    } else {
      await saveMap();
      try {
        part = await open(partPath, 'wx', FILE_MODE);
      } catch (error) {
        if (errnoCode(error) === 'EEXIST')
          throw new ConflictError('part_exists', `${partPath} appeared while starting; is another run using it?`, { path: partPath });
        throw error;
      }
      await part.chmod(FILE_MODE);
    }
    const partHandle = part;
    // A sparse file of the full size: areas never rescued read as zeros, as in ddrescue's output.
    await partHandle.truncate(size).catch((error: unknown) => {
      throw asStop(error, dir);
    });
    directPart = await open(partPath, constants.O_WRONLY | constants.O_DIRECT).catch((error: unknown) => {
      if (errnoCode(error) === 'EINVAL') return undefined;
      throw error;
    });
    const image: ImageWriter = createImageWriter(partHandle, partPath, directPart);

    let lastSave = performance.now();
    let lastSaveBytes = 0;
    /** A new pass began while a save was running: the next save is due as soon as that one is done. */
    let saveWanted = false;
    let saving: Promise<void> | undefined;
    let saveFailure: unknown;
    // The first round looks at once: a job started on an output file system already above the stop
    // threshold writes nothing, instead of up to SPACE_CHECK_BYTES or SPACE_CHECK_MS of image.
    let lastSpaceCheck = Number.NEGATIVE_INFINITY;
    let lastSpaceCheckBytes = 0;

    async function settleSaves(): Promise<void> {
      while (saving !== undefined) await saving;
    }

    /**
     * Between reads: progress, a background map save when one is due, the free-space threshold. A
     * save is due every map save interval, after MAP_SAVE_BYTES and at each new pass; it waits for
     * the writes of the data read so far, so it records all of it. One runs at a time; one that
     * comes due meanwhile starts at the first checkpoint after it. So the data read but not yet in a
     * saved map stays within about one interval of reading, plus the reads in flight and the time a
     * save takes, whatever the speed of the drive. Reading never waits for a save: on a busy output
     * disk a sync can take seconds.
     */
    async function checkpoint(current: RescueActivity): Promise<void> {
      const phaseChanged = current.phase !== activity.phase || current.pass !== activity.pass;
      Object.assign(activity, current);
      reportProgress(map.sums()['+'], phaseChanged);
      const hashFailure = hashing.failure();
      if (hashFailure !== undefined) throw hashFailure;
      if (saveFailure !== undefined) throw asStop(saveFailure, dir);
      if (phaseChanged) saveWanted = true;
      if (
        saving === undefined &&
        (saveWanted || performance.now() - lastSave >= options.mapSaveIntervalMs || image.bytesWritten - lastSaveBytes >= MAP_SAVE_BYTES)
      ) {
        saveWanted = false;
        lastSave = performance.now();
        lastSaveBytes = image.bytesWritten;
        saving = image
          .landed()
          .then(saveMap)
          .catch((error: unknown) => {
            saveFailure = error;
          })
          .finally(() => {
            saving = undefined;
          });
      }
      const now = performance.now();
      if (image.bytesWritten - lastSpaceCheckBytes >= SPACE_CHECK_BYTES || now - lastSpaceCheck >= SPACE_CHECK_MS) {
        lastSpaceCheck = now;
        lastSpaceCheckBytes = image.bytesWritten;
        const { usedPercent } = await outputSpace(dir);
        if (usedPercent > options.stopThresholdPercent) {
          throw new UnavailableError(
            'storage_threshold',
            `${dir} is ${usedPercent.toFixed(1)}% full, above the stop threshold of ${options.stopThresholdPercent}%; free some space and resume`,
            { path: dir, used_percent: usedPercent },
          );
        }
      }
    }

    /** Leaves a resumable state: every write has landed or failed, and the map says exactly what landed. */
    async function saveFinalMap(): Promise<void> {
      await image.drain().catch(() => undefined);
      await settleSaves();
      try {
        await saveMap();
      } catch (error) {
        log('error', `could not save the rescue map (the previous save stays valid): ${errorMessage(error)}`);
      }
    }

    async function stop(reason: StopReason, copySeconds: number): Promise<ImagingResult> {
      if (reason === 'pause') {
        await saveFinalMap();
        // The last event reports what the saved map records, for whoever shows or stores the progress.
        reportProgress(map.sums()['+'], true);
        log('info', `paused; ${map.sums()['+']} of ${size} bytes rescued, map saved to ${basename(mapPath)}`);
        return result('paused', {
          timings: { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), copySeconds, hashSeconds: 0, verifySeconds: 0 },
        });
      }
      await image.drain().catch(() => undefined);
      await settleSaves();
      await closePart();
      if (options.keepPartialOnCancel) {
        log('info', 'cancelled; partial image and map kept');
      } else {
        await removePartials(outputPath);
        log('info', 'cancelled; partial image and map removed');
      }
      return result('cancelled', {
        timings: { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), copySeconds, hashSeconds: 0, verifySeconds: 0 },
      });
    }

    const copyStarted = performance.now();
    let rescueOutcome: 'finished' | 'stopped';
    try {
      rescueOutcome = await runRescue({
        map,
        source,
        image,
        slots,
        hashers: hashing,
        sectorSize,
        clusterBytes,
        readAttempts: options.readAttempts,
        failures,
        probeBuffer: sectorSlot.view,
        devicePresent: () => pathExists(input.path).catch(() => true),
        stopRequested: () => signal?.aborted === true,
        checkpoint,
        onReadError: () => {
          errorCount += 1;
        },
        onProbe: () => {
          probes += 1;
        },
      });
      await image.drain();
    } catch (error) {
      await saveFinalMap();
      throw asStop(error, dir);
    }
    const copySeconds = (performance.now() - copyStarted) / 1000;
    if (rescueOutcome === 'stopped') return await stop(stopReasonOf(signal), copySeconds);
    activity.status = '+';
    await settleSaves();
    const badSectors = badSectorSummary(map);
    if (badSectors.badBytes > 0) {
      log(
        'warning',
        `${badSectors.badBytes} bytes in ${badSectors.badAreas} areas could not be read; they are zeros in the image and listed in ${basename(mapPath)}`,
      );
    }

    // Whatever the copy pass could not feed in order (after the first error, or on a resume) is hashed from the file.
    const hashStarted = performance.now();
    if (hashing.bytes < size) {
      activity.position = hashing.bytes;
      enterPhase('hashing', hashing.bytes);
      await saveMap();
      const complete = await hashFile({
        path: partPath,
        start: hashing.bytes,
        end: size,
        directIo: 'off',
        hashers: hashing,
        slots,
        signal,
        onPosition: (position) => {
          activity.position = position;
          reportProgress(position);
        },
      });
      if (!complete) return await stop(stopReasonOf(signal), copySeconds);
    }
    const checksums: Digests = await hashing.digest();
    const hashSeconds = (performance.now() - hashStarted) / 1000;

    enterPhase('finalizing', size);
    await saveMap();
    await partHandle.sync();
    await closePart();
    await rename(partPath, outputPath);
    await fsyncDirectory(dir);
    await writeChecksumSidecars(outputPath, options.checksums, checksums);
    const record: ImageRecord = {
      imagePath: outputPath,
      mapPath,
      source: input,
      buffered,
      metadata: request.metadata,
      options,
      checksums,
      badSectors,
      readErrors: errorCount,
      reads: readSummary(),
      resumed,
      startedAt,
      finishedAt: new Date(),
      copySeconds,
      hashSeconds,
      verifySeconds: 0,
      verification: null,
    };
    await writeImageRecord(record);

    let verified: boolean | null = null;
    if (options.verify) {
      enterPhase('verifying', 0);
      const verifyStarted = performance.now();
      try {
        const report = await verifyImage(outputPath, {
          signal,
          onProgress: (update) => {
            activity.position = update.position;
            reportProgress(update.bytesDone);
          },
          onLog: log,
        });
        verified = report.ok;
        record.verification = { verifiedAt: new Date(), report };
        if (!report.ok) {
          const differing = report.results.filter((entry) => !entry.ok).map((entry) => entry.algorithm);
          log('error', `verification failed: the ${differing.join(', ')} of ${basename(outputPath)} differ from the checksums taken while reading`);
        }
      } catch (error) {
        if (error instanceof DomainError && error.code === 'verification_stopped') {
          log('warning', `verification of ${basename(outputPath)} was stopped; the image is complete, verify it later`);
        } else {
          // The image is complete and in place; a failed re-read is a failed verification, not a failed run.
          verified = false;
          record.verification = { verifiedAt: new Date(), error: errorMessage(error) };
          log('error', `verification of ${basename(outputPath)} could not re-read the image: ${errorMessage(error)}`);
        }
      }
      record.verifySeconds = (performance.now() - verifyStarted) / 1000;
      record.finishedAt = new Date();
      await writeImageRecord(record);
      reportProgress(size, true);
    }

    return result('completed', {
      checksums,
      badSectors,
      verified,
      timings: {
        startedAt: startedAt.toISOString(),
        finishedAt: record.finishedAt.toISOString(),
        copySeconds,
        hashSeconds,
        verifySeconds: record.verifySeconds,
      },
    });
  } finally {
    sectorSlot.release();
    await hashers?.close();
    await source?.close();
    await closePart();
  }
}
