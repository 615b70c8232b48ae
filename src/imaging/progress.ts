import type { ImagingPhase, ImagingProgress } from './types.js';

/**
 * The engine's counters at one moment; the tracker adds percent, rate and ETA.
 * @internal exported for its tests
 */
export interface ProgressSnapshot {
  phase: ImagingPhase;
  bytesDone: number;
  badBytes: number;
  errorCount: number;
  position: number;
  buffered: boolean;
  readCalls: number;
  readBytes: number;
}

export interface ProgressTracker {
  /** Emits if the last event is old enough, or always when the phase changed or `force` is set. */
  update(snapshot: ProgressSnapshot, force?: boolean): void;
}

export interface ProgressTrackerOptions {
  bytesTotal: number;
  onProgress?: ((progress: ImagingProgress) => void) | undefined;
  now?: () => number;
  /** Minimum time between events of the same phase. */
  intervalMs?: number;
  /** How far back the rate looks. */
  windowMs?: number;
}

/** Samples closer than this add nothing to a window of seconds; it keeps the sample list short. */
const SAMPLE_SPACING_MS = 100;

interface Sample {
  at: number;
  bytes: number;
}

/**
 * Turns counters into throttled progress events. The rate is measured over a sliding window and
 * restarts with each phase, as bytesDone means something else in each (rescued, hashed, verified).
 */
export function createProgressTracker(options: ProgressTrackerOptions): ProgressTracker {
  const now = options.now ?? (() => performance.now());
  const intervalMs = options.intervalMs ?? 250;
  const windowMs = options.windowMs ?? 5000;
  const total = options.bytesTotal;
  let samples: Sample[] = [];
  let lastPhase: ImagingPhase | undefined;
  let lastEmit = -Infinity;

  function rate(current: Sample): number {
    const first = samples[0];
    if (first === undefined || current.at <= first.at) return 0;
    return Math.max(0, (current.bytes - first.bytes) / ((current.at - first.at) / 1000));
  }

  return {
    update(snapshot, force = false) {
      const at = now();
      const phaseChanged = snapshot.phase !== lastPhase;
      if (phaseChanged) {
        samples = [];
        lastPhase = snapshot.phase;
      }
      const current = { at, bytes: snapshot.bytesDone };
      const newest = samples[samples.length - 1];
      if (newest === undefined || at - newest.at >= SAMPLE_SPACING_MS) samples.push(current);
      // Keep one sample older than the window so the rate always spans the whole window.
      while (samples.length > 2 && (samples[1] as Sample).at <= at - windowMs) samples.shift();

      if (options.onProgress === undefined) return;
      if (!force && !phaseChanged && at - lastEmit < intervalMs) return;
      lastEmit = at;
      const rateBps = rate(current);
      const remaining = Math.max(0, total - snapshot.bytesDone);
      options.onProgress({
        phase: snapshot.phase,
        bytesDone: snapshot.bytesDone,
        bytesTotal: total,
        percent: total === 0 ? 100 : Math.min(100, (snapshot.bytesDone / total) * 100),
        rateBps,
        etaSeconds: remaining === 0 ? 0 : rateBps > 0 ? remaining / rateBps : null,
        badBytes: snapshot.badBytes,
        errorCount: snapshot.errorCount,
        position: snapshot.position,
        buffered: snapshot.buffered,
        readCalls: snapshot.readCalls,
        readBytes: snapshot.readBytes,
      });
    },
  };
}
