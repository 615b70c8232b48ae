import type { ImagingProgress } from '../imaging/types.js';
import { formatBytes, formatDuration, formatRate } from './format.js';

/** What the bar shows: the engine's own progress, or a job's as the database records it. */
export type ProgressLine = Pick<ImagingProgress, 'phase' | 'percent' | 'bytesDone' | 'bytesTotal' | 'rateBps' | 'etaSeconds' | 'badBytes' | 'errorCount'>;

export interface ProgressReporter {
  update(progress: ProgressLine): void;
  /** Ends the live line so following messages start on a fresh line. */
  done(): void;
}

const BAR_WIDTH = 24;
/** Plain (non-terminal) output prints a line at most this often, so logs stay readable. */
const PLAIN_INTERVAL_MS = 5000;

/**
 * A live one-line bar on a terminal; plain, greppable lines (one every few seconds and at each
 * phase change) when the output is a file or pipe.
 */
export function createProgressReporter(stream: NodeJS.WriteStream, now: () => number = Date.now): ProgressReporter {
  const live = stream.isTTY === true;
  let lastPlain = 0;
  let lastPhase = '';
  let drawn = false;

  return {
    update(progress) {
      if (live) {
        const filled = Math.round((progress.percent / 100) * BAR_WIDTH);
        const bar = `${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}`;
        const columns = stream.columns ?? 100;
        const line = `[${bar}] ${progress.percent.toFixed(1).padStart(5)}%  ${formatRate(progress.rateBps)}  ETA ${formatDuration(progress.etaSeconds)}  bad ${formatBytes(progress.badBytes)} (${progress.errorCount} errors)  ${progress.phase}`;
        stream.write(`\r${line.slice(0, columns - 1).padEnd(Math.min(columns - 1, line.length))}\u001b[K`);
        drawn = true;
        return;
      }
      const at = now();
      if (progress.phase === lastPhase && at - lastPlain < PLAIN_INTERVAL_MS && progress.percent < 100) return;
      lastPlain = at;
      lastPhase = progress.phase;
      stream.write(
        `progress phase=${progress.phase} percent=${progress.percent.toFixed(1)} done=${progress.bytesDone} total=${progress.bytesTotal} rate_bps=${Math.round(progress.rateBps)} eta_seconds=${progress.etaSeconds === null ? 'unknown' : Math.round(progress.etaSeconds)} bad_bytes=${progress.badBytes} errors=${progress.errorCount}\n`,
      );
    },
    done() {
      if (live && drawn) stream.write('\n');
      drawn = false;
    },
  };
}
