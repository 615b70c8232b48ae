import type { Config } from '../config/schema.js';
import type { ArchiveRepository } from '../db/archive-repository.js';
import type { VerificationTaskRepository } from '../db/verification-task-repository.js';
import { DomainError } from '../errors.js';
import { type ReadThrottle, createReadThrottle } from '../imaging/throttle.js';
import type { Logger } from '../log.js';
import type { ArchiveService } from './service.js';
import type { VerificationTaskRecord } from './verification-task.js';

export interface ReverifyScheduleDeps {
  /** Shared and updated in place: a changed setting applies from the next check (and, for the cap, the next read). */
  config: Pick<Config, 'archive'>;
  archives: Pick<ArchiveRepository, 'dueForVerification'>;
  tasks: Pick<VerificationTaskRepository, 'active'>;
  /** Queues through the same path a user's verification takes, so its result is recorded the same way. */
  startVerification: ArchiveService['startVerification'];
  /** Whether a disc is being imaged now. */
  imagingRunning: () => Promise<boolean>;
  log: Logger;
  /** Local time: the window is in the server's time zone. */
  now?: () => Date;
  /** How often the schedule looks whether an image is due (default one minute). */
  checkMs?: number;
}

export interface ReverifySchedule {
  start(): void;
  stop(): Promise<void>;
  /** One look: queues the image verified longest ago when one is due and the schedule allows it now; returns its id. */
  check(): Promise<string | null>;
  /** A job started (true) or ended (undefined: asks the database), so a scheduled verification holds or goes on at once. */
  imagingChanged(running?: boolean): void;
  /** The cap a task the schedule queued reads under (none for others). */
  throttleFor(task: VerificationTaskRecord): ReadThrottle | undefined;
}

const MiB = 1024 * 1024;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Due archives one check tries, so a run of refused ones (outside the output directory) cannot stall the schedule. */
const CANDIDATES = 20;
/** An archive that could not be queued is left alone this long before the schedule tries it again. */
const REFUSED_BACKOFF_MS = DAY_MS;

/**
 * Whether `hour` lies in [start, end), a window that may span midnight; start = end is the whole day.
 * @internal exported for its tests
 */
export function insideWindow(hour: number, start: number, end: number): boolean {
  if (start === end) return true;
  return start < end ? hour >= start && hour < end : hour >= start || hour < end;
}

/**
 * Re-verification on a schedule: when an image's last verification is older than the interval,
 * and the time of day lies inside the window, it queues a verification task for the image verified
 * longest ago, one at a time. The task runs on the verification worker like any other (a restart
 * gives it back to the queue and runs it again), reads under the bandwidth cap, and holds (reads
 * nothing, keeps its place) outside the window and, if so set, while a disc is being imaged.
 */
export function createReverifySchedule(deps: ReverifyScheduleDeps): ReverifySchedule {
  const { config, log } = deps;
  const now = deps.now ?? (() => new Date());
  const refusedUntil = new Map<string, number>();
  let imaging = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> = Promise.resolve();

  const settings = () => config.archive;
  const inWindow = () => insideWindow(now().getHours(), settings().reverify_window_start_hour, settings().reverify_window_end_hour);

  const throttle = createReadThrottle(() => {
    if (!inWindow() || (settings().reverify_pause_while_imaging && imaging)) return 0;
    const cap = settings().reverify_max_mib_per_second;
    return cap === 0 ? Number.POSITIVE_INFINITY : cap * MiB;
  });

  async function check(): Promise<string | null> {
    imaging = await deps.imagingRunning();
    const days = settings().reverify_interval_days;
    if (days === 0 || !inWindow()) return null;
    if (settings().reverify_pause_while_imaging && imaging) return null;
    if ((await deps.tasks.active()).some((task) => task.origin === 'schedule')) return null;
    const at = now().getTime();
    for (const [id, until] of refusedUntil) if (until <= at) refusedUntil.delete(id);
    const due = await deps.archives.dueForVerification(new Date(at - days * DAY_MS), { limit: CANDIDATES, excludeIds: [...refusedUntil.keys()] });
    for (const archive of due) {
      try {
        await deps.startVerification(archive.id, null, 'schedule');
        log.info({ archiveId: archive.id, lastVerifiedAt: archive.lastVerifiedAt }, 'scheduled verification queued');
        return archive.id;
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        // A verification someone else queued records the result just as well; a missing image is
        // marked so and left out from now on; anything else (outside the image folders) waits a day.
        if (error.code !== 'verification_running' && error.code !== 'archive_file_missing') refusedUntil.set(archive.id, at + REFUSED_BACKOFF_MS);
      }
    }
    return null;
  }

  let checking = false;
  const tick = () => {
    // One look at a time: two at once could both find no scheduled task and queue two.
    if (checking) return;
    checking = true;
    running = check()
      .catch((error: unknown) => log.error({ err: error }, 'the re-verification schedule failed'))
      .finally(() => {
        checking = false;
      });
  };

  return {
    start() {
      if (timer !== null) return;
      tick();
      timer = setInterval(tick, deps.checkMs ?? 60_000);
      timer.unref();
    },
    async stop() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      await running;
    },
    check,
    imagingChanged(runningNow) {
      if (runningNow === true) imaging = true;
      else
        void deps.imagingRunning().then(
          (answer) => {
            imaging = answer;
          },
          (error: unknown) => log.error({ err: error }, 'could not tell whether a disc is being imaged'),
        );
    },
    throttleFor: (task) => (task.origin === 'schedule' ? throttle : undefined),
  };
}
