/**
 * How long one copy-pass read should take: at least TARGET_READ_SECONDS, at most twice that. Short
 * enough that data reaches the image, and a saved map, well within a second at any drive speed,
 * and that a read failing on a bad sector, whose data is all lost, costs the drive little; long
 * enough that a fast drive still gets reads of several MiB, which keep the CPU cost per byte low,
 * and that a drive's fixed cost per request stays a small part of each read.
 */
export const TARGET_READ_SECONDS = 0.1;

/**
 * The size of the copy pass's next read: whole clusters, from one cluster up to `maxBytes`. It
 * starts at one cluster, as the drive's speed is unknown, and doubles while reads take less than
 * TARGET_READ_SECONDS; a read that took more than twice that shrinks it at once to what would have
 * taken TARGET_READ_SECONDS. Reads in between keep it. The band, instead of one target, keeps a
 * drive whose every request costs a fixed time from being held to tiny reads.
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

  return {
    get bytes() {
      return size;
    },
    record(bytes, seconds) {
      // Each read is judged by its own size: reads issued before a change must not change it again.
      if (seconds < targetSeconds) size = Math.max(size, wholeClusters(2 * bytes));
      else if (seconds > 2 * targetSeconds) size = Math.min(size, wholeClusters((bytes * targetSeconds) / seconds));
    },
  };
}
