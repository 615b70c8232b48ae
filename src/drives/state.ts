import type { ErrorCode } from '../error-codes.js';
import { DomainError, NotFoundError, errorMessage } from '../errors.js';
import { DEVICE_ID_PATTERN, type DriveLogger, type DriveService } from './service.js';
import type { Drive, MediaInfo } from './types.js';

/**
 * What requests know about drives, kept in memory by a refresher in the background, so that no
 * request ever waits on a drive: a probe of a busy or hanging drive can take as long as the drive
 * likes (src/drives/flights.ts bounds what it costs), and the answer is read here once it exists.
 *
 * Each round the refresher lists the drives again (sysfs, udev, the extra sources) and probes the
 * idle drives that need it: those never answered, those asked to be refreshed (after an eject or
 * a job), and, while someone looked at drives within the last INTEREST_MS, those whose answer is
 * older than a round. So the drives are read every few seconds while someone watches them, and
 * are left alone (discs can spin down) while nobody does; a drive whose discs are acted on at
 * insertion (`watched`: automation in notify or automatic mode) is read every round regardless.
 * Every listing and answer is passed on (`onListing`, `onAnswer`) to the disc watch
 * (src/drives/watch.ts), which tells insertions from them. A probe that gets no answer within its
 * timeout marks the drive as not responding; its answer is taken whenever it comes, and no other
 * probe of that drive starts before. A drive with a running job is never probed: the job's record
 * says what is in it (src/system/devices.ts).
 */

/**
 * - `probed`: the answer of a probe younger than FRESH_MS.
 * - `failed`: that probe could not read the medium (`error` says why).
 * - `probing`: there is no answer that fresh; one is being fetched. `media` is the last answer, if any.
 * - `not_responding`: the last probe got no answer within its timeout (`error`); `media` is the last answer, if any.
 */
export type MediaState = 'probed' | 'failed' | 'probing' | 'not_responding';

export interface DriveMediaSnapshot {
  state: MediaState;
  media: MediaInfo | null;
  error: { code: ErrorCode; message: string } | null;
  /** When `media` (or the error of a failed probe) was read; null before the first answer. */
  checkedAt: string | null;
}

export interface DriveStates {
  /** Runs the first round and resolves once its probes answered or timed out; then refreshes every round. */
  start(): Promise<void>;
  /**
   * Starts no more rounds, and resolves once every probe in flight has answered or timed out, so
   * the caller may close what the probes read (a test's loop device) without finding it busy.
   */
  stop(): Promise<void>;
  /** The drives found by the last round. */
  list(): Drive[];
  /** A drive of the last round by id; NotFoundError `unknown_device` otherwise. */
  get(id: string): Drive;
  /** What is known about the medium in a drive. Counts as someone looking at drives. */
  media(id: string): DriveMediaSnapshot;
  /**
   * What is known without counting as someone looking and without starting a probe (a metrics
   * scrape every few seconds must not keep the discs spinning): as `media`, except that an answer of
   * any age keeps its state while no probe of the drive runs (`checkedAt` tells its age).
   */
  peek(id: string): DriveMediaSnapshot;
  /** Someone elsewhere looks at the drives (a web instance of the cluster): they are read every round, as for `media`. */
  noteInterest(): void;
  /** Asks for a new probe of the drive in the next round, which starts now; `forget` drops what is known until then (after an eject). */
  refresh(id: string, options?: { forget?: boolean }): void;
  /** Resolves once a round after this call has run and every probe then in flight has answered or timed out. */
  nextRound(): Promise<void>;
}

export interface DriveStatesDeps {
  drives: Pick<DriveService, 'list' | 'probe' | 'pending'>;
  /** Drives a job reads from now (running or verifying, by any process). */
  busyDeviceIds(): Promise<ReadonlySet<string>>;
  log?: DriveLogger;
  /** Pause between rounds; default ROUND_MS. */
  roundMs?: number;
  /** How old an answer may be to count as current; default FRESH_MS. */
  freshMs?: number;
  /** Drives probed every round even while nobody looks at drives (those whose discs are imaged or announced on insertion). */
  watched?: (id: string) => boolean;
  /** Told every listing that succeeded, so insertion detection sees drives come and go. */
  onListing?: (drives: Drive[]) => void;
  /** Told every answer of a probe (including one that came after its timeout), so insertion detection sees the disc change. */
  onAnswer?: (id: string, answer: { media: MediaInfo | null; error: { code: ErrorCode; message: string } | null }) => void;
}

/** Pause between two rounds. */
const ROUND_MS = 3_000;
/** An answer older than this is not what the drive holds now as far as anyone can tell. */
const FRESH_MS = 15_000;
/** How long after someone looked at drives they keep being probed every round. */
const INTEREST_MS = 120_000;

/** The timeouts of DriveService.probe: the drive (or those ahead of it) did not answer in time. */
const NO_ANSWER_CODES = new Set(['drive_not_responding', 'probe_backlog']);

type Answer = { media: MediaInfo; error: null; at: number } | { media: null; error: { code: ErrorCode; message: string }; at: number };

interface Entry {
  /** The last probe that answered; kept while later ones do not answer. */
  answer: Answer | null;
  /** The refresher's probe in flight, settled once it answered or timed out. */
  probing: Promise<void> | null;
  /** Why the last probe got no answer, until it (or a later one) answers. */
  noAnswer: { code: ErrorCode; message: string } | null;
  /** Waits for the answer of a probe that timed out; no probe starts while it does. */
  late: Promise<void> | null;
  refreshRequested: boolean;
}

const newEntry = (): Entry => ({ answer: null, probing: null, noAnswer: null, late: null, refreshRequested: false });

/** What is known of an entry's medium; `current` tells whether an answer still counts as what the drive holds. */
function snapshotOf(entry: Entry, current: (answer: Answer) => boolean): DriveMediaSnapshot {
  const answer = entry.answer;
  const shown = { media: answer?.media ?? null, checkedAt: answer ? new Date(answer.at).toISOString() : null };
  if (entry.noAnswer) return { state: 'not_responding', ...shown, error: entry.noAnswer };
  if (answer && current(answer)) return { state: answer.error ? 'failed' : 'probed', ...shown, error: answer.error };
  return { state: 'probing', ...shown, error: null };
}

export function createDriveStates(deps: DriveStatesDeps): DriveStates {
  const { drives } = deps;
  const roundMs = deps.roundMs ?? ROUND_MS;
  const freshMs = deps.freshMs ?? FRESH_MS;
  let known: Drive[] = [];
  const entries = new Map<string, Entry>();
  let lastInterest = Date.now();
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let roundRunning = false;
  let roundAgain = false;
  /** Callers of nextRound waiting for the next round to begin (they then wait for the probes in flight). */
  let waiting: Array<() => void> = [];

  const entryFor = (id: string): Entry => {
    let entry = entries.get(id);
    if (!entry) {
      entry = newEntry();
      entries.set(id, entry);
    }
    return entry;
  };

  const record = (id: string, entry: Entry, media: MediaInfo): void => {
    entry.answer = { media, error: null, at: Date.now() };
    entry.noAnswer = null;
    deps.onAnswer?.(id, entry.answer);
  };

  const recordFailure = (id: string, entry: Entry, error: unknown): void => {
    const code = error instanceof DomainError ? error.code : 'media_unreadable';
    entry.answer = { media: null, error: { code, message: errorMessage(error) }, at: Date.now() };
    entry.noAnswer = null;
    deps.onAnswer?.(id, entry.answer);
  };

  const probe = async (id: string, entry: Entry): Promise<void> => {
    entry.refreshRequested = false;
    try {
      record(id, entry, await drives.probe(id));
    } catch (error) {
      if (!(error instanceof DomainError && NO_ANSWER_CODES.has(error.code))) {
        recordFailure(id, entry, error);
        return;
      }
      entry.noAnswer = { code: error.code, message: error.message };
      const late = drives.pending(id);
      if (late !== null) {
        entry.late = late
          .then(
            (media) => record(id, entry, media),
            (failure: unknown) => recordFailure(id, entry, failure),
          )
          .finally(() => {
            entry.late = null;
          });
      }
    } finally {
      entry.probing = null;
    }
  };

  const due = (id: string, entry: Entry, now: number, interested: boolean): boolean =>
    entry.probing === null &&
    entry.late === null &&
    (entry.refreshRequested ||
      entry.answer === null ||
      entry.noAnswer !== null ||
      ((interested || (deps.watched?.(id) ?? false)) && now - entry.answer.at >= roundMs));

  /** Lists the drives and starts the probes this round needs; `probed` settles when every probe in flight has. */
  const startRound = async (): Promise<{ probed: Promise<unknown> }> => {
    try {
      known = await drives.list();
      const ids = new Set(known.map((drive) => drive.id));
      for (const id of entries.keys()) if (!ids.has(id)) entries.delete(id);
      deps.onListing?.(known);
    } catch (error) {
      deps.log?.warn({ error: errorMessage(error) }, 'listing the drives failed; the last listing stays');
    }
    let busy: ReadonlySet<string>;
    try {
      busy = await deps.busyDeviceIds();
    } catch (error) {
      // Without knowing which drives jobs read from, probing any could disturb a job.
      deps.log?.warn({ error: errorMessage(error) }, 'cannot tell which drives are busy; no drive is probed this round');
      return { probed: Promise.resolve() };
    }
    const now = Date.now();
    const interested = now - lastInterest < INTEREST_MS;
    for (const drive of known) {
      const entry = entryFor(drive.id);
      if (!busy.has(drive.id) && due(drive.id, entry, now, interested)) entry.probing = probe(drive.id, entry);
    }
    return { probed: Promise.all([...entries.values()].map((entry) => entry.probing)) };
  };

  const runRounds = async (): Promise<void> => {
    if (roundRunning) {
      roundAgain = true;
      return;
    }
    roundRunning = true;
    if (timer) clearTimeout(timer);
    timer = null;
    try {
      do {
        roundAgain = false;
        const told = waiting;
        waiting = [];
        const { probed } = await startRound();
        // The next round need not wait for a drive that hangs; those waiting for this round do.
        void probed.then(() => {
          for (const resolve of told) resolve();
        });
      } while (roundAgain && !stopped);
    } finally {
      roundRunning = false;
      if (!stopped) {
        timer = setTimeout(() => void runRounds(), roundMs);
        timer.unref();
      }
    }
  };

  const wake = (): void => {
    if (!stopped) void runRounds();
  };

  const nextRound = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (stopped) {
        resolve();
        return;
      }
      waiting.push(resolve);
      wake();
    });

  return {
    async start() {
      lastInterest = Date.now();
      await nextRound();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      for (const resolve of waiting) resolve();
      waiting = [];
      await Promise.allSettled([...entries.values()].map((entry) => entry.probing));
    },
    list() {
      return [...known];
    },
    get(id) {
      const drive = DEVICE_ID_PATTERN.test(id) ? known.find((candidate) => candidate.id === id) : undefined;
      if (!drive) {
        const ids = known.map((candidate) => candidate.id);
        const listing = ids.length > 0 ? `known devices: ${ids.join(', ')}` : 'no devices are available';
        throw new NotFoundError('unknown_device', `unknown device "${id}" (${listing})`, { device: id, known: ids });
      }
      return drive;
    },
    media(id) {
      const now = Date.now();
      const quiet = now - lastInterest >= INTEREST_MS;
      lastInterest = now;
      if (quiet) wake();
      const entry = entries.get(id) ?? newEntry();
      const snapshot = snapshotOf(entry, (answer) => now - answer.at < freshMs);
      if (snapshot.state === 'probing' && entry.probing === null && entry.late === null) wake();
      return snapshot;
    },
    noteInterest() {
      const quiet = Date.now() - lastInterest >= INTEREST_MS;
      lastInterest = Date.now();
      if (quiet) wake();
    },
    peek(id) {
      const entry = entries.get(id) ?? newEntry();
      const inFlight = entry.probing !== null || entry.late !== null;
      const now = Date.now();
      return snapshotOf(entry, (answer) => !inFlight || now - answer.at < freshMs);
    },
    refresh(id, options = {}) {
      const entry = entryFor(id);
      entry.refreshRequested = true;
      if (options.forget) entry.answer = null;
      wake();
    },
    nextRound,
  };
}
