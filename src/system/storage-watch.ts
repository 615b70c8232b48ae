import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { OutputProbe } from './output-probe.js';

/** How full the output file system is, against storage.warn_threshold_percent and stop_threshold_percent. */
export type StorageLevel = 'ok' | 'warning' | 'stop';

/** A threshold passed upwards or left downwards, with what the file system looked like then. */
export interface StorageCrossing {
  threshold: 'warning' | 'stop';
  direction: 'passed' | 'cleared';
  thresholdPercent: number;
  usedPercent: number;
  freeBytes: number;
  totalBytes: number;
  path: string;
}

export interface StorageWatchDeps {
  config: Config;
  output: Pick<OutputProbe, 'usage'>;
  /** The level the last crossing left (from the durable stream), so a restart announces no crossing twice. */
  initialLevel(): Promise<StorageLevel>;
  /** Awaited: the next crossing is announced after this one. */
  onCrossing(crossing: StorageCrossing): void | Promise<void>;
  onProblem(message: string): void;
  /** How often free space is looked at (default 30 s): one statfs, no drive I/O. */
  intervalMs?: number;
}

export interface StorageWatch {
  start(): Promise<void>;
  /** Stops the timer; resolves once a look under way is done. */
  stop(): Promise<void>;
  /** Looks now (also what each tick does). */
  check(): Promise<void>;
}

/**
 * A level is left only once the use is this many percentage points below its threshold: a file
 * system hovering at the threshold (a job writing, housekeeping removing) announces one crossing,
 * not one per look.
 * @internal exported for its tests
 */
export const STORAGE_HYSTERESIS_PERCENT = 1;
const DEFAULT_INTERVAL_MS = 30_000;

const RANK: Record<StorageLevel, number> = { ok: 0, warning: 1, stop: 2 };

/**
 * The level `usedPercent` is at, coming from `current`: entered at a threshold, left only below it by the hysteresis.
 * @internal exported for its tests
 */
export function nextStorageLevel(current: StorageLevel, usedPercent: number, warnPercent: number, stopPercent: number): StorageLevel {
  const above = (threshold: number, level: StorageLevel) =>
    usedPercent >= threshold || (RANK[current] >= RANK[level] && usedPercent > threshold - STORAGE_HYSTERESIS_PERCENT);
  if (above(stopPercent, 'stop')) return 'stop';
  if (above(warnPercent, 'warning')) return 'warning';
  return 'ok';
}

/**
 * Watches the output file system's free space on a timer and tells each threshold crossing once.
 * Reads go through the output probe, so a hung mount holds no more than its one thread and a look
 * never waits longer than the probe's timeout.
 */
export function createStorageWatch(deps: StorageWatchDeps): StorageWatch {
  const { config } = deps;
  let level: StorageLevel = 'ok';
  let timer: NodeJS.Timeout | null = null;
  let looking: Promise<void> = Promise.resolve();
  let lastProblem: string | null = null;

  async function look(): Promise<void> {
    let usage: Awaited<ReturnType<OutputProbe['usage']>>;
    try {
      usage = await deps.output.usage();
    } catch (error) {
      const message = `free space of ${config.storage.output_dir} could not be read: ${errorMessage(error)}`;
      // Told once per kind of failure, not at every look of a mount that stays away.
      if (message !== lastProblem) deps.onProblem(message);
      lastProblem = message;
      return;
    }
    lastProblem = null;
    const warnPercent = config.storage.warn_threshold_percent;
    const stopPercent = config.storage.stop_threshold_percent;
    const next = nextStorageLevel(level, usage.usedPercent, warnPercent, stopPercent);
    if (next === level) return;
    const crossing = (threshold: StorageCrossing['threshold'], direction: StorageCrossing['direction']): StorageCrossing => ({
      threshold,
      direction,
      thresholdPercent: threshold === 'stop' ? stopPercent : warnPercent,
      usedPercent: Math.round(usage.usedPercent * 100) / 100,
      freeBytes: usage.freeBytes,
      totalBytes: usage.totalBytes,
      path: config.storage.output_dir,
    });
    // A jump over both thresholds is both crossings, in the order they were crossed.
    const crossings: StorageCrossing[] = [];
    if (RANK[next] > RANK[level]) {
      if (RANK[level] < RANK.warning) crossings.push(crossing('warning', 'passed'));
      if (next === 'stop') crossings.push(crossing('stop', 'passed'));
    } else {
      if (level === 'stop') crossings.push(crossing('stop', 'cleared'));
      if (next === 'ok') crossings.push(crossing('warning', 'cleared'));
    }
    level = next;
    for (const each of crossings) await deps.onCrossing(each);
  }

  const check = (): Promise<void> => {
    looking = looking.then(look).catch((error: unknown) => deps.onProblem(`announcing a storage threshold failed: ${errorMessage(error)}`));
    return looking;
  };

  return {
    async start() {
      level = await deps.initialLevel();
      // Not awaited: a hung output mount must not hold up the start (the look ends at the probe's timeout).
      void check();
      timer = setInterval(() => void check(), deps.intervalMs ?? DEFAULT_INTERVAL_MS);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      await looking;
    },
    check,
  };
}
