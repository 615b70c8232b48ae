import { UnavailableError, errnoCode, errorMessage } from '../errors.js';
import type { FailureJournal } from './failure-journal.js';
import type { Hashers } from './hasher.js';
import type { ImageWriter } from './image-writer.js';
import type { BlockStatus, CurrentStatus, RescueMap } from './mapfile.js';
import { type TakenRead, createReadAhead } from './read-ahead.js';
import { createReadSizer } from './read-size.js';
import type { Slot, SlotPool } from './slots.js';
import type { SourceReader } from './source.js';
import type { ImagingPhase } from './types.js';

/** Where the rescue is: feeds the progress events and the mapfile's status line. */
export interface RescueActivity {
  phase: ImagingPhase;
  /** The mapfile's current_status for the phase. */
  status: CurrentStatus;
  pass: number;
  position: number;
}

export interface RescueContext {
  map: RescueMap;
  /** Every mark a failed read makes goes through it, so it can be undone if the drive turns out to be gone. */
  failures: FailureJournal;
  source: SourceReader;
  image: ImageWriter;
  slots: SlotPool;
  /** Fed every read that continues the hashed prefix, so a clean disc is hashed while it is read. */
  hashers: Hashers;
  sectorSize: number;
  clusterBytes: number;
  readAttempts: number;
  /** One aligned sector for probe reads of a sector read fine before. */
  probeBuffer: Uint8Array;
  /** Whether the device node still exists. */
  devicePresent(): Promise<boolean>;
  /** True once the caller asked to stop (pause or cancel). */
  stopRequested(): boolean;
  /** Between reads: progress, map saves, free-space checks. Throws to end the run. */
  checkpoint(activity: RescueActivity): Promise<void>;
  /** Counts failed reads. */
  onReadError(): void;
  /** Counts probe reads of a known-good sector. */
  onProbe(): void;
}

/** Thrown inside the passes when the caller asked to stop; runRescue turns it into 'stopped'. */
class RescueStopped extends Error {}

/** Errors that mean the source itself is gone, not that a sector is unreadable. */
const GONE_CODES = new Set(['ENOMEDIUM', 'ENODEV', 'ENXIO', 'ENOTCONN', 'ENOENT', 'ESHUTDOWN']);

/** The copy pass reads at most this much at once (a fast drive): few large reads keep the CPU cost per byte low. */
const COPY_READ_TARGET_BYTES = 4 * 1024 * 1024;
/**
 * Failed reads in a row, none confirmed by a later good read, after which a probe read of a sector
 * read fine before tells a bad area from a drive that is gone; also once the oldest of them is
 * PROBE_AFTER_MS old. Failures come in long runs (every sector of a scratch fails in the scrape
 * and retry passes), and a probe is a seek on the medium, so it is not done after each one.
 */
const PROBE_AFTER_FAILURES = 32;
const PROBE_AFTER_MS = 10_000;
/**
 * Copy-pass reads in flight at once: one being waited for and the next ones already queued at the
 * source. Three keep a device busy through the gaps between requests. Each holds a thread of
 * libuv's pool while the drive takes its time, so `bin/disk2iso` starts Node with a pool of 64
 * (UV_THREADPOOL_SIZE): 15 drives imaging at once, three reads and a write each; Node's default
 * of four would let one job's reads and writes share it, but not five jobs' (bench:scale).
 * @internal exported for its tests
 */
export const READS_IN_FLIGHT = 3;
/** Upper bound of the skip after consecutive copy-pass errors, besides 1% of the size. */
const MAX_SKIP_BYTES = 8 * 1024 * 1024;

/** The largest copy-pass read, and the slot size: a multiple of the cluster near 4 MiB. */
export function copyReadBytes(clusterBytes: number): number {
  return Math.max(1, Math.round(COPY_READ_TARGET_BYTES / clusterBytes)) * clusterBytes;
}

function deviceGone(path: string, detail: string): UnavailableError {
  return new UnavailableError('device_gone', `the source ${path} stopped responding (${detail}); the rescue map is saved, resume once it is back`, { path });
}

/**
 * The GNU ddrescue algorithm: copy, trim, scrape, retry. Resolves 'finished' when every area is
 * finished or bad, 'stopped' when the caller asked to stop. Every readable sector read ends up
 * written and marked finished; only failed reads mark areas, and those marks stand only once a
 * later read has shown the device still answers (see FailureJournal).
 */
export async function runRescue(ctx: RescueContext): Promise<'finished' | 'stopped'> {
  const { map, failures, source, image, slots, sectorSize, clusterBytes } = ctx;
  const size = map.size;
  const bigBytes = copyReadBytes(clusterBytes);
  const maxSkip = Math.max(clusterBytes, Math.min(MAX_SKIP_BYTES, Math.floor(size / 100 / sectorSize) * sectorSize));
  const activity: RescueActivity = { phase: 'copying', status: '?', pass: 1, position: 0 };
  let lastGood: number | undefined;

  function sectorLength(position: number): number {
    return Math.min(sectorSize, size - position);
  }

  async function pausePoint(position: number): Promise<void> {
    activity.position = position;
    if (ctx.stopRequested()) throw new RescueStopped();
    image.check();
    await ctx.checkpoint(activity);
  }

  /** Reads [position, position + length) into target; false when the source reported an error. */
  async function readArea(target: Uint8Array, position: number, length: number): Promise<boolean> {
    // O_DIRECT needs whole sectors; a source whose size is not a multiple ends inside the last one.
    const request = Math.ceil(length / sectorSize) * sectorSize;
    let filled = 0;
    while (filled < length) {
      let bytesRead: number;
      try {
        bytesRead = await source.read(target.subarray(filled, request), position + filled);
      } catch (error) {
        const code = errnoCode(error);
        if (code !== undefined && GONE_CODES.has(code)) throw deviceGone(source.path, errorMessage(error));
        if (code === 'EINVAL') {
          throw new UnavailableError(
            'source_unreadable',
            `${source.path} refused a read of ${request - filled} bytes at ${position + filled} (${errorMessage(error)}); is the sector size ${sectorSize} right?`,
            { path: source.path },
          );
        }
        return false;
      }
      // End of the source before its expected size, or a partial read we cannot continue aligned.
      if (bytesRead === 0) return false;
      filled += bytesRead;
      if (filled < length && filled % sectorSize !== 0) return false;
    }
    return true;
  }

  /**
   * Re-reads a sector read fine before. When that works, the drive still answers and every
   * unconfirmed failure stands; otherwise they are undone and the run stops with device_gone.
   */
  async function probe(): Promise<void> {
    const known = lastGood ?? map.findForward('+', 0)?.pos;
    if (known === undefined) {
      // Nothing has ever read fine, so nothing can tell the drive from the medium: the failures stand.
      failures.confirm();
      return;
    }
    const length = Math.ceil(sectorLength(known) / sectorSize) * sectorSize;
    ctx.onProbe();
    let bytesRead = 0;
    try {
      bytesRead = await source.read(ctx.probeBuffer.subarray(0, length), known);
    } catch (error) {
      failures.revert();
      throw deviceGone(source.path, `a sector read fine before, at byte ${known}, now fails: ${errorMessage(error)}`);
    }
    if (bytesRead === 0) {
      failures.revert();
      throw deviceGone(source.path, `a sector read fine before, at byte ${known}, now reads nothing`);
    }
    failures.confirm();
  }

  /**
   * A read of [position, position + length) failed: gives the area `status` as an unconfirmed
   * failure. A vanished device node means the drive is gone; a long run of failures, or an old one,
   * gets a probe read.
   */
  async function recordFailure(position: number, length: number, status: BlockStatus): Promise<void> {
    ctx.onReadError();
    if (!(await ctx.devicePresent())) {
      failures.revert();
      throw deviceGone(source.path, 'the device node is gone');
    }
    failures.mark(position, length, status);
    const oldestAt = failures.oldestAt ?? performance.now();
    if (failures.unconfirmed >= PROBE_AFTER_FAILURES || performance.now() - oldestAt >= PROBE_AFTER_MS) await probe();
  }

  /** Good data: write it (the area becomes finished once written) and hash it if it continues the hashed prefix. */
  function deliver(slot: Slot, start: number, length: number, position: number): void {
    if (ctx.hashers.bytes === position) ctx.hashers.update(slot, start, length);
    image.write(slot, start, length, position, () => map.set(position, length, '+'));
    lastGood = position;
    failures.confirm();
  }

  /**
   * Copy pass 1: reads forward over non-tried areas, skipping ahead after errors. Reads are sized to
   * the drive's speed (createReadSizer); up to READS_IN_FLIGHT are in flight, so the source never
   * waits for the write and the hashing of the previous data; near an error only one, of a single
   * cluster, as each read there may cost the drive's retries.
   */
  async function copyForward(): Promise<void> {
    Object.assign(activity, { phase: 'copying', status: '?', pass: 1 });
    const ahead = createReadAhead(slots, readArea);
    const sizer = createReadSizer(clusterBytes, bigBytes);
    let position = 0;
    let consecutiveErrors = 0;
    /** Below this position, read single clusters: an error was near. */
    let carefulUntil = 0;

    /** Issues the next reads of the non-tried areas from where the reads in flight end. */
    async function fillAhead(): Promise<void> {
      while (ahead.inFlight < READS_IN_FLIGHT) {
        const from = ahead.end ?? position;
        if (from < carefulUntil && ahead.inFlight > 0) return;
        const area = map.findForward('?', from);
        if (area === undefined) return;
        await ahead.issue(area.pos, Math.min(area.pos < carefulUntil ? clusterBytes : sizer.bytes, area.size));
      }
    }

    /** A read that succeeded: its data goes to the image. */
    function accept(read: TakenRead): void {
      try {
        deliver(read.slot, 0, read.length, read.position);
      } finally {
        read.slot.release();
      }
      sizer.record(read.length, read.seconds);
    }

    try {
      for (;;) {
        await pausePoint(position);
        await fillAhead();
        const read = await ahead.take();
        if (read === undefined) return;
        if (read.good) {
          accept(read);
          position = read.position + read.length;
          consecutiveErrors = 0;
          continue;
        }
        read.slot.release();
        // The reads behind a failure already cost the drive their time: their data is kept, and
        // those that failed too are narrowed down with the failure itself.
        let narrowUntil = read.position + read.length;
        for (let behind = await ahead.take(); behind !== undefined; behind = await ahead.take()) {
          if (behind.good) {
            accept(behind);
          } else {
            behind.slot.release();
            narrowUntil = behind.position + behind.length;
          }
        }
        // Narrowing looks up the non-tried areas behind the failure in the map, where kept data only shows once written.
        await image.landed();
        position = read.position;
        if (read.length > clusterBytes) {
          // Narrow the failure down to clusters before marking anything.
          carefulUntil = Math.max(carefulUntil, narrowUntil);
          continue;
        }
        await recordFailure(position, read.length, '*');
        consecutiveErrors += 1;
        const skip = Math.min(maxSkip, clusterBytes * 2 ** Math.min(consecutiveErrors - 1, 30));
        position = Math.min(size, position + read.length + skip);
        carefulUntil = Math.max(carefulUntil, narrowUntil, position + sizer.bytes);
      }
    } finally {
      await ahead.discard();
    }
  }

  /** Copy pass 2: clusters backward over the areas pass 1 skipped, without skipping. */
  async function copyBackward(): Promise<void> {
    Object.assign(activity, { phase: 'copying', status: '?', pass: 2 });
    let before = size;
    for (;;) {
      await pausePoint(before);
      const area = map.findBackward('?', before);
      if (area === undefined) return;
      const end = area.pos + area.size;
      // Rounded up to a sector: only the end of the domain may fall inside one.
      const alignedStart = Math.max(area.pos, Math.ceil((end - clusterBytes) / sectorSize) * sectorSize);
      const slot = await slots.acquire();
      let good: boolean;
      try {
        good = await readArea(slot.view, alignedStart, end - alignedStart);
        if (good) deliver(slot, 0, end - alignedStart, alignedStart);
      } finally {
        slot.release();
      }
      if (!good) await recordFailure(alignedStart, end - alignedStart, '*');
      before = alignedStart;
    }
  }

  /**
   * Reads sectors one by one from `start` up to `end`, collecting good ones into slot-sized
   * writes. Returns the position of the first sector that failed, or `end`; the caller records
   * the failure.
   */
  async function readSectorsForward(start: number, end: number): Promise<number> {
    let slot: Slot | undefined;
    let runStart = start;
    let runLength = 0;
    const flush = (): void => {
      if (slot === undefined) return;
      if (runLength > 0) deliver(slot, 0, runLength, runStart);
      slot.release();
      slot = undefined;
    };
    try {
      let position = start;
      while (position < end) {
        await pausePoint(position);
        if (slot === undefined) {
          slot = await slots.acquire();
          runStart = position;
          runLength = 0;
        }
        const length = sectorLength(position);
        if (!(await readArea(slot.view.subarray(runLength), position, length))) {
          flush();
          return position;
        }
        runLength += length;
        position += length;
        if (runLength + sectorSize > slots.slotBytes) flush();
      }
      return end;
    } finally {
      flush();
    }
  }

  /**
   * Reads sectors one by one from the last sector below `end` down to `start`. Returns the
   * position of the first sector that failed, or undefined; the caller records the failure.
   */
  async function readSectorsBackward(start: number, end: number): Promise<number | undefined> {
    const capacity = Math.floor(slots.slotBytes / sectorSize) * sectorSize;
    let slot: Slot | undefined;
    /** Position that maps to offset 0 of the slot; sector p sits at offset p - base. */
    let base = 0;
    let runStart = end;
    let runEnd = end;
    const flush = (): void => {
      if (slot === undefined) return;
      if (runEnd > runStart) deliver(slot, runStart - base, runEnd - runStart, runStart);
      slot.release();
      slot = undefined;
    };
    try {
      let position = start + Math.floor((end - 1 - start) / sectorSize) * sectorSize;
      while (position >= start) {
        await pausePoint(position);
        if (slot === undefined) {
          slot = await slots.acquire();
          base = position + sectorSize - capacity;
          runStart = position + sectorLength(position);
          runEnd = runStart;
        }
        if (!(await readArea(slot.view.subarray(position - base), position, sectorLength(position)))) {
          flush();
          return position;
        }
        runStart = position;
        if (position - sectorSize < base) flush();
        position -= sectorSize;
      }
      return undefined;
    } finally {
      flush();
    }
  }

  /** Trim: from both edges of each non-trimmed area inward, sector by sector, until the first error. */
  async function trim(): Promise<void> {
    Object.assign(activity, { phase: 'trimming', status: '*', pass: 1 });
    let position = 0;
    for (;;) {
      await pausePoint(position);
      const area = map.findForward('*', position);
      if (area === undefined) return;
      const end = area.pos + area.size;
      const failedForward = await readSectorsForward(area.pos, end);
      if (failedForward < end) {
        const afterFailure = failedForward + sectorLength(failedForward);
        await recordFailure(failedForward, afterFailure - failedForward, '-');
        const failedBackward = afterFailure < end ? await readSectorsBackward(afterFailure, end) : undefined;
        if (failedBackward !== undefined) {
          // The middle is left for scraping only if the drive still answered this failure: the same fate.
          if (failedBackward > afterFailure) failures.mark(afterFailure, failedBackward - afterFailure, '/');
          await recordFailure(failedBackward, sectorLength(failedBackward), '-');
        }
      }
      position = end;
    }
  }

  /** Scrape: every sector of each non-scraped area, once. */
  async function scrape(): Promise<void> {
    Object.assign(activity, { phase: 'scraping', status: '/', pass: 1 });
    let position = 0;
    for (;;) {
      await pausePoint(position);
      const area = map.findForward('/', position);
      if (area === undefined) return;
      const failed = await readSectorsForward(area.pos, area.pos + area.size);
      if (failed < area.pos + area.size) {
        await recordFailure(failed, sectorLength(failed), '-');
        position = failed + sectorLength(failed);
      } else {
        position = area.pos + area.size;
      }
    }
  }

  /** Retry pass: every bad sector once more; failures stay bad. */
  async function retry(pass: number): Promise<void> {
    Object.assign(activity, { phase: 'retrying', status: '-', pass });
    // Scraping went forward, so the first retry goes backward, as in GNU ddrescue.
    if (pass % 2 === 1) {
      let before = size;
      for (;;) {
        await pausePoint(before);
        const area = map.findBackward('-', before);
        if (area === undefined) return;
        const failed = await readSectorsBackward(area.pos, area.pos + area.size);
        if (failed !== undefined) await recordFailure(failed, sectorLength(failed), '-');
        before = failed ?? area.pos;
      }
    }
    let position = 0;
    for (;;) {
      await pausePoint(position);
      const area = map.findForward('-', position);
      if (area === undefined) return;
      const failed = await readSectorsForward(area.pos, area.pos + area.size);
      if (failed < area.pos + area.size) await recordFailure(failed, sectorLength(failed), '-');
      position = failed < area.pos + area.size ? failed + sectorLength(failed) : area.pos + area.size;
    }
  }

  /** Between passes every write has landed, so the map shows what the next pass must still do. */
  async function settle(): Promise<void> {
    await image.drain();
  }

  function remaining(status: BlockStatus): boolean {
    return map.sums()[status] > 0;
  }

  try {
    if (remaining('?')) {
      await copyForward();
      await settle();
      await copyBackward();
      await settle();
    }
    if (remaining('*')) {
      await trim();
      await settle();
    }
    if (remaining('/')) {
      await scrape();
      await settle();
    }
    for (let pass = 1; pass <= ctx.readAttempts && remaining('-'); pass++) {
      await retry(pass);
      await settle();
    }
    // The last failures must be confirmed too before the map may call them bad for good.
    if (failures.unconfirmed > 0) await probe();
    activity.status = '+';
    return 'finished';
  } catch (error) {
    // Stopped or failed part-way: failures no read has confirmed are left for the next run to read again.
    failures.revert();
    if (error instanceof RescueStopped) return 'stopped';
    throw error;
  }
}
