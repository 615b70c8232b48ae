import { setTimeout as sleep } from 'node:timers/promises';

/** Holds a reader back to a rate that may change while it reads. */
export interface ReadThrottle {
  /** Resolves once `bytes` may be read; at once when the signal is (or becomes) aborted. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/**
 * Bytes per second a reader may use now: Infinity for no limit, 0 to hold it until the rate
 * rises again (outside a time window, while imaging runs).
 */
export type ReadRate = () => number;

/** How often a held reader asks again whether it may go on. */
const PAUSED_POLL_MS = 1000;

/**
 * A token bucket: a second's worth of bytes may be read at once, then the reader waits for what
 * it took beyond that. A changed rate applies from the next read.
 */
export function createReadThrottle(
  rate: ReadRate,
  options: { now?: () => number; wait?: (ms: number, signal: AbortSignal | undefined) => Promise<void> } = {},
): ReadThrottle {
  const now = options.now ?? (() => performance.now());
  let tokens = 0;
  let last = now();

  const wait =
    options.wait ??
    ((ms: number, signal: AbortSignal | undefined) =>
      sleep(ms, undefined, signal === undefined ? {} : { signal }).catch((error: unknown) => {
        if (!signal?.aborted) throw error;
      }));

  return {
    async take(bytes, signal) {
      for (;;) {
        if (signal?.aborted) return;
        const bytesPerSecond = rate();
        const at = now();
        if (bytesPerSecond === Number.POSITIVE_INFINITY) {
          last = at;
          tokens = 0;
          return;
        }
        if (bytesPerSecond <= 0) {
          last = at;
          tokens = 0;
          await wait(PAUSED_POLL_MS, signal);
          continue;
        }
        tokens = Math.min(bytesPerSecond, tokens + ((at - last) / 1000) * bytesPerSecond);
        last = at;
        tokens -= bytes;
        if (tokens >= 0) return;
        await wait((-tokens / bytesPerSecond) * 1000, signal);
        return;
      }
    },
  };
}
