import type { Slot, SlotPool } from './slots.js';

/**
 * Reads [position, position + length) into `target`. Resolves true when every byte arrived, false
 * on a media error; rejects for errors that end the run (the device is gone, the request is refused).
 */
export type AreaReader = (target: Uint8Array, position: number, length: number) => Promise<boolean>;

/** A finished read handed to the caller, who now holds its slot and must release it. */
export interface TakenRead {
  readonly slot: Slot;
  readonly position: number;
  readonly length: number;
  readonly good: boolean;
  /**
   * Seconds the source spent on this read: from its issue, or from the end of the read before it
   * when that ended later (a drive serves one request at a time), until it ended.
   */
  readonly seconds: number;
}

/**
 * Sequential reads kept in flight ahead of the one being used, so the source always has the next
 * request queued while the previous data is written and hashed. Reads are issued in position
 * order and always taken in that order, whatever order the source completes them in.
 */
export interface ReadAhead {
  /** Reads issued and not yet taken. */
  readonly inFlight: number;
  /** Where the last issued read ends, or undefined when none is in flight. */
  readonly end: number | undefined;
  /** Waits for a free slot, then starts reading into it. */
  issue(position: number, length: number): Promise<void>;
  /**
   * The oldest read once it has finished, or undefined when none is in flight. When that read
   * rejected, its slot is released and the error thrown; the reads behind it stay in flight.
   */
  take(): Promise<TakenRead | undefined>;
  /**
   * Waits for every read in flight to finish, ignoring their results, and releases their slots.
   * A slot must not be reused before: the kernel may still be writing into it.
   */
  discard(): Promise<void>;
}

interface PendingRead {
  slot: Slot;
  position: number;
  length: number;
  done: Promise<boolean>;
  issuedAt: number;
  /** Set when the read settles. */
  endedAt: number | undefined;
}

export function createReadAhead(slots: SlotPool, read: AreaReader, now: () => number = () => performance.now()): ReadAhead {
  const pending: PendingRead[] = [];
  /** When the last read taken ended. */
  let lastEndedAt = -Infinity;

  return {
    get inFlight() {
      return pending.length;
    },
    get end() {
      const last = pending[pending.length - 1];
      return last === undefined ? undefined : last.position + last.length;
    },
    async issue(position, length) {
      if (length > slots.slotBytes) throw new RangeError(`a read of ${length} bytes does not fit a slot of ${slots.slotBytes}`);
      const slot = await slots.acquire();
      const entry: PendingRead = { slot, position, length, done: read(slot.view, position, length), issuedAt: now(), endedAt: undefined };
      // Its rejection is handled when the read is taken or discarded; until then it must not count as unhandled.
      entry.done
        .finally(() => {
          entry.endedAt = now();
        })
        .catch(() => undefined);
      pending.push(entry);
    },
    async take() {
      const head = pending.shift();
      if (head === undefined) return undefined;
      let good: boolean;
      try {
        good = await head.done;
      } catch (error) {
        head.slot.release();
        throw error;
      }
      const endedAt = head.endedAt ?? now();
      const seconds = Math.max(0, endedAt - Math.max(head.issuedAt, lastEndedAt)) / 1000;
      lastEndedAt = endedAt;
      return { slot: head.slot, position: head.position, length: head.length, good, seconds };
    },
    async discard() {
      const reads = pending.splice(0);
      await Promise.allSettled(reads.map((pendingRead) => pendingRead.done));
      for (const pendingRead of reads) pendingRead.slot.release();
    },
  };
}
