/**
 * How long one copy-pass read should take: at least TARGET_READ_SECONDS, at most twice that. Short
 * enough that data reaches the image, and a saved map, well within a second at any drive speed,
 * and that a read failing on a bad sector, whose data is all lost, costs the drive little; long
 * enough that a fast drive still gets reads of several MiB, which keep the CPU cost per byte low,
 * and that a drive's fixed cost per request stays a small part of each read.
 * @internal exported for its tests
 */
export const TARGET_READ_SECONDS = 0.1;
/**
 * A read of twice the size that takes less than this factor of the time is nearly free: the drive's
 * fixed cost per request, not its speed, sets the time, so reads keep growing.
 */
const FIXED_COST_GROWTH = 1.5;

/**
 * The size of the copy pass's next read: whole clusters, from one cluster up to `maxBytes`. It
 * starts at one cluster, as the drive's speed is unknown, and doubles while reads take less than
 * TARGET_READ_SECONDS, or while doubling hardly adds time (a drive whose every request costs a
 * fixed time, which smaller reads would not save). When reads of a size take more than twice the
 * target, it shrinks at once to what would take the target at their speed, or to half when half
 * took more than the target too (the fixed cost again); in between it stays. The first read, of one
 * cluster, is followed by one of two clusters however long it took, which tells which kind of drive
 * it is. The time of a size is the median of its last three reads.
 */
export interface ReadSizer {
  /** Bytes for the next read. */
  readonly bytes: number;
  /** A read of `bytes` that succeeded after the source spent `seconds` on it. */
  record(bytes: number, seconds: number): void;
}

export function createReadSizer(clusterBytes: number, maxBytes: number, targetSeconds = TARGET_READ_SECONDS): ReadSizer {
  const largest = Math.max(clusterBytes, Math.floor(maxBytes / clusterBytes) * clusterBytes);
  const wholeClusters = (bytes: number): number => Math.min(largest, Math.max(1, Math.floor(bytes / clusterBytes)) * clusterBytes);
  let size = clusterBytes;
  /**
   * The last three times measured for each size (at most one entry per cluster multiple up to
   * `largest`). Two reads that end close together can be taken in the same turn of the event loop,
   * so the first looks too slow and the second too fast: the median of three ignores both.
   */
  const secondsBySize = new Map<number, number[]>();
  const typical = (bytes: number): number | undefined => {
    const seen = [...(secondsBySize.get(bytes) ?? [])].sort((a, b) => a - b);
    if (seen.length === 0) return undefined;
    return seen.length === 3 ? (seen[1] as number) : seen.reduce((sum, seconds) => sum + seconds, 0) / seen.length;
  };

  return {
    get bytes() {
      return size;
    },
    record(bytes, measured) {
      const halfSeconds = typical(bytes / 2);
      const untried = bytes === clusterBytes && !secondsBySize.has(2 * bytes) && 2 * bytes <= largest;
      secondsBySize.set(bytes, [...(secondsBySize.get(bytes) ?? []), measured].slice(-3));
      const seconds = typical(bytes) ?? measured;
      // Each read is judged by its own size: reads issued before a change must not change it again.
      const fixedCost = halfSeconds !== undefined && seconds < FIXED_COST_GROWTH * halfSeconds;
      if (seconds < targetSeconds || fixedCost || untried) {
        size = Math.max(size, wholeClusters(2 * bytes));
      } else if (seconds > 2 * targetSeconds) {
        // When half the size took more than the target too, the time is mostly the fixed cost: halve.
        const halfTooSlow = halfSeconds !== undefined && halfSeconds > targetSeconds;
        size = Math.min(size, wholeClusters(halfTooSlow ? bytes / 2 : (bytes * targetSeconds) / seconds));
      }
    },
  };
}
