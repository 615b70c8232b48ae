import { type BlockStatus, type RescueMap, rescueMapFromBlocks } from './mapfile.js';

/**
 * The marks that failed reads made in the rescue map, kept until a later read confirms them.
 *
 * A failed read alone does not show that the sector is bad: the whole drive may have gone. Any read
 * that succeeds afterwards shows the drive was still answering, so it confirms every failure before
 * it. Until then the marks count as unconfirmed: a saved map leaves them out, and when the drive
 * turns out to be gone they are undone, so its areas keep the status they had and a later run
 * reads them again.
 */
export interface FailureJournal {
  /** Marks not confirmed yet: one per failed read, and one per area trimming leaves for scraping. */
  readonly unconfirmed: number;
  /** performance.now() of the oldest unconfirmed failure; undefined when there is none. */
  readonly oldestAt: number | undefined;
  /**
   * Records a failed read of [pos, pos + size), which must have one status now, and gives it
   * `status` (which may be the status it already has, as in a retry pass).
   */
  mark(pos: number, size: number, status: BlockStatus): void;
  /** A read succeeded: every mark so far stands. */
  confirm(): void;
  /** The drive is gone: every unconfirmed area gets back the status it had. */
  revert(): void;
  /** The map as a saved mapfile shows it: without the unconfirmed marks. */
  confirmedMap(): RescueMap;
}

interface Mark {
  pos: number;
  size: number;
  previous: BlockStatus;
}

export function createFailureJournal(map: RescueMap, now: () => number = () => performance.now()): FailureJournal {
  let marks: Mark[] = [];
  let oldestAt: number | undefined;

  function undo(target: RescueMap): void {
    for (let index = marks.length - 1; index >= 0; index--) {
      const { pos, size, previous } = marks[index] as Mark;
      target.set(pos, size, previous);
    }
  }

  return {
    get unconfirmed() {
      return marks.length;
    },
    get oldestAt() {
      return oldestAt;
    },
    mark(pos, size, status) {
      const previous = map.statusAt(pos);
      const area = map.findForward(previous, pos);
      if (area === undefined || area.pos !== pos || area.size < size) throw new RangeError(`[${pos}, ${pos + size}) does not have one status`);
      marks.push({ pos, size, previous });
      oldestAt ??= now();
      map.set(pos, size, status);
    },
    confirm() {
      marks = [];
      oldestAt = undefined;
    },
    revert() {
      undo(map);
      marks = [];
      oldestAt = undefined;
    },
    confirmedMap() {
      if (marks.length === 0) return map;
      const copy = rescueMapFromBlocks(map.blocks());
      undo(copy);
      return copy;
    },
  };
}
