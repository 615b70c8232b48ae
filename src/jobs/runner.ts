import { link, mkdir, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { allocateImagePath } from '../archive/naming.js';
import { imagingOptionsFrom } from '../config/imaging-options.js';
import type { Config } from '../config/schema.js';
import type { ArchiveRepository } from '../db/archive-repository.js';
import type { JobRepository } from '../db/job-repository.js';
import type { DriveService } from '../drives/service.js';
import type { MediaInfo } from '../drives/types.js';
import { ConflictError, DomainError, UnavailableError, errnoCode, errorMessage } from '../errors.js';
import { removePartials } from '../imaging/output-state.js';
import type { ImagingProgress, ImagingRequest, ImagingResult } from '../imaging/types.js';
import type { Logger } from '../log.js';
import type { JobEventBus } from './events.js';
import { insideOutputDir, shouldEject } from './intake.js';
import { type JobOptions, type JobRecord, type LeaseHolder, waitsForSpace } from './model.js';
import type { FinishPatch, JobQueue } from './queue.js';

export interface JobRunnerDeps {
  config: Config;
  queue: JobQueue;
  jobs: JobRepository;
  archives: ArchiveRepository;
  drives: DriveService;
  events: JobEventBus;
  log: Logger;
  runImaging: (request: ImagingRequest) => Promise<ImagingResult>;
  workerId: string;
  /** The process this runner works in, recorded with each lease it takes. */
  leaseHolder: LeaseHolder;
  /** Whether another lease holder has died (on this host), so its jobs can be taken over before their leases run out. */
  holderGone: (holder: LeaseHolder) => Promise<boolean>;
  /** How often the runner looks for new work when nothing woke it. */
  pollMs?: number;
  /**
   * Whether this runner may write a job's image file. The service writes only inside its output
   * directory; a job the CLI made elsewhere (`create --output /backup/…`) fails here, reading
   * nothing, and is continued by that CLI command. Default: inside storage.output_dir.
   */
  outputAllowed?: (file: string) => Promise<boolean>;
  /**
   * In a cluster whose nodes keep their images on their own disks: a job made on another node (a
   * web instance, whose output folder is not this one's) gets its image's path in this node's output
   * folder when it first runs, under the name it was given (numbered when taken). Default false.
   */
  placesOwnImages?: boolean;
}

export interface JobRunner {
  start(): Promise<void>;
  /** Looks for work now (after a job was created or a drive freed up). */
  wake(): void;
  /**
   * Pauses every running job (maps saved) and puts it back in the queue, so the next start
   * continues it; then stops claiming work.
   */
  stop(): Promise<void>;
  /** Ids of the jobs this runner is working on. */
  active(): string[];
  /**
   * Runs one job this worker already holds (taken with `enqueue` and a claim, or `claimJob`),
   * outside the claim loop, and resolves once it has stopped: the CLI's own run.
   */
  runClaimed(job: JobRecord): Promise<void>;
  /**
   * A delivery of the cluster's dispatch: claims work now and resolves once `jobId` runs, ended or
   * was taken elsewhere; UnavailableError while it still waits (its drive is busy), so it is
   * delivered again later.
   */
  offer(jobId: string): Promise<void>;
  /** When the claim loop last looked for work (it does every poll interval); null while it is not running. */
  lastPoll(): Date | null;
}

/** What a stopped job records of its last progress (rate and time left end with the run). */
function stoppedAt(latest: Pick<JobRecord, 'phase' | 'progress' | 'bytesDone' | 'badBytes' | 'errorCount'> | null): FinishPatch {
  if (latest === null) return {};
  return { phase: latest.phase, progress: latest.progress, bytesDone: latest.bytesDone, badBytes: latest.badBytes, errorCount: latest.errorCount };
}

/** Progress goes to the database at most this often; live events follow the engine's own pace. */
const DB_PROGRESS_INTERVAL_MS = 1000;

/** The first wait before recording a run's end again while the database is out of reach; it doubles up to the longest. */
const RECORD_RETRY_FIRST_MS = 250;
const RECORD_RETRY_LONGEST_MS = 5000;

interface ActiveRun {
  controller: AbortController;
  deviceId: string;
  done: Promise<void>;
}

/**
 * A job that already has an archive entry runs again only to read its bad areas once more: its
 * finished image goes back to NAME.iso.part beside the kept map, and the engine continues from
 * there. Moved (linked, then unlinked), not copied: no second image's worth of space, and the good
 * data never moves on disk.
 */
async function reopenImage(outputFile: string): Promise<void> {
  try {
    // link() refuses to replace an existing .part, where rename() would silently overwrite it.
    await link(outputFile, `${outputFile}.part`);
  } catch (error) {
    // Already moved by an earlier attempt of this retry that was paused or stopped.
    if (errnoCode(error) === 'ENOENT') return;
    throw error;
  }
  await unlink(outputFile);
}

/** True when the disc now in the drive is not the one the job started on (a retry must not mix discs). */
function differentDisc(options: JobOptions, media: MediaInfo): boolean {
  const disc = options.disc;
  if (!disc) return false;
  return (
    (disc.size_bytes !== undefined && disc.size_bytes !== media.imageSizeBytes) ||
    (disc.volume_id ?? null) !== media.volumeId ||
    (disc.created_at ?? null) !== media.createdAt
  );
}

export function createJobRunner(deps: JobRunnerDeps): JobRunner {
  const { config, queue, jobs, archives, drives, events, log, workerId } = deps;
  const leaseMs = config.jobs.lease_seconds * 1000;
  /**
   * A run whose lease could not be renewed stops reading this long before the lease it last renewed
   * runs out: time for the engine to save the map, before the job's recovery (on this node, once it
   * reaches the database again) may hand it to a new run.
   */
  const leaseMarginMs = Math.floor(leaseMs / 3);
  /** Several renewals fit before that point, so one slow or failed heartbeat does not pause a run. */
  const heartbeatMs = Math.max(1000, Math.floor(leaseMs / 6));
  const runs = new Map<string, ActiveRun>();
  const outputAllowed = deps.outputAllowed ?? ((file: string) => insideOutputDir(config, file));
  let stopping = false;
  let started = false;
  let loop: Promise<void> = Promise.resolve();
  let wakeUp: (() => void) | null = null;
  let lastPollAt: number | null = null;
  /** Aborted by stop(): waits between attempts to reach the database end at once. */
  const stopSignal = new AbortController();

  async function appendLog(jobId: string, level: 'info' | 'warning' | 'error', message: string): Promise<void> {
    const line = await jobs.appendLog(jobId, level, message);
    events.emit('job.log', { jobId, level, message, at: line.at });
  }

  async function finish(job: JobRecord, status: 'completed' | 'failed' | 'cancelled' | 'paused', patch: FinishPatch = {}): Promise<void> {
    // A shutdown pause is not the user's: put the job back so the next start continues it. Whether
    // the user asked for a pause is read before finish(), which clears the request with the lease.
    const shutdownPause = status === 'paused' && stopping && patch.errorCode === undefined && (await queue.get(job.id))?.requestedAction === null;
    const finished = await queue.finish(job.id, workerId, status, patch);
    const final = shutdownPause ? await queue.requeue(job.id) : finished;
    events.emit('job.finished', { job: final });
  }

  /**
   * `step` again and again, waiting longer each time, while it fails for want of the database (any
   * error but a DomainError, which is the database's answer and is thrown); null once the runner
   * stops, which leaves the job to the recovery of its lease.
   */
  async function persistently<T>(jobId: string, what: string, step: () => Promise<T>): Promise<T | null> {
    for (let delayMs = RECORD_RETRY_FIRST_MS; ; delayMs = Math.min(delayMs * 2, RECORD_RETRY_LONGEST_MS)) {
      try {
        return await step();
      } catch (error) {
        if (error instanceof DomainError) throw error;
        if (stopping) return null;
        log.warn({ err: error, jobId, retryInMs: delayMs }, `${what} failed; trying again`);
        await sleep(delayMs, undefined, { signal: stopSignal.signal }).catch(() => undefined);
        if (stopping) return null;
      }
    }
  }

  /**
   * The end of a run stopped because its lease could not be renewed (the database out of reach) or
   * was lost. Recorded as a pause, and put back in the queue so that this node (the only one that
   * claims the job) continues it from the map; kept paused if the user asked for a pause meanwhile.
   * When the job is no longer this worker's (its expired lease was recovered, by this node or
   * another), it is left as it is: that recovery has decided what happens to it.
   */
  async function recordLeasePause(job: JobRecord, patch: FinishPatch): Promise<void> {
    const current = await persistently(job.id, 'reading the job', () => queue.get(job.id));
    if (current === null) return;
    let paused: JobRecord | null;
    try {
      paused = await persistently(job.id, 'recording the pause', () => queue.finish(job.id, workerId, 'paused', patch));
    } catch (error) {
      if (!(error instanceof DomainError && error.code === 'lease_lost')) throw error;
      log.warn({ jobId: job.id }, 'the job was recovered while its run was stopping; leaving it to that recovery');
      return;
    }
    if (paused === null) return;
    let final = paused;
    if (current.requestedAction === null) {
      // A job the user cancelled meanwhile stays as they left it.
      const requeued = await persistently(job.id, 'queueing the job again', () => queue.requeue(job.id)).catch((error: unknown) => {
        if (!(error instanceof DomainError)) throw error;
        log.warn({ err: error, jobId: job.id }, 'the paused job was not queued again');
        return null;
      });
      final = requeued ?? paused;
    }
    events.emit('job.finished', { job: final });
    await appendLog(job.id, 'info', 'paused: the job lease could not be renewed; it continues from the rescue map').catch(() => undefined);
  }

  /** The job's image in this node's output folder, the name kept; recorded on the job before anything is read. */
  async function placeImageHere(job: JobRecord): Promise<JobRecord> {
    const name = basename(job.outputFile).replace(/\.iso$/iu, '');
    await mkdir(config.storage.output_dir, { recursive: true, mode: 0o755 });
    const outputFile = await allocateImagePath(config.storage.output_dir, name, await jobs.unfinishedOutputFiles());
    const placed = await queue.update(job.id, workerId, { outputFile });
    if (placed === null) throw new ConflictError('lease_lost', `Worker ${workerId} no longer holds job ${job.id}`, { job_id: job.id });
    await appendLog(job.id, 'info', `the image goes to this node's output folder: ${outputFile}`);
    return placed;
  }

  async function recordArchive(job: JobRecord, media: MediaInfo, result: ImagingResult): Promise<string> {
    const damaged = result.badSectors.badBytes > 0 || result.verified === false;
    const archive =
      job.archiveId !== null
        ? await archives.replaceImage(job.archiveId, {
            sizeBytes: result.sizeBytes,
            checksums: result.checksums,
            badBytes: result.badSectors.badBytes,
            status: damaged ? 'damaged' : 'ok',
          })
        : await archives.create({
            jobId: job.id,
            filename: basename(result.outputPath),
            path: result.outputPath,
            sizeBytes: result.sizeBytes,
            checksums: result.checksums,
            // The name the user gave the job is the entry's title; the volume label stays in the source.
            metadata: { label: job.name, tags: [], notes: '' },
            source: {
              deviceId: job.deviceId,
              devicePath: job.devicePath,
              discKind: media.kind,
              volumeLabel: media.volumeLabel,
              volumeId: media.volumeId,
              mediaType: media.mediaType,
              fileSystems: media.fileSystems,
            },
            badBytes: result.badSectors.badBytes,
            status: damaged ? 'damaged' : 'ok',
            // In the cluster the image lies in the output folder of the node that ran the job.
            nodeId: job.nodeId,
          });
    if (result.verified !== null) {
      const finishedAt = new Date(result.timings.finishedAt);
      await archives.recordVerification(archive.id, {
        startedAt: new Date(finishedAt.getTime() - result.timings.verifySeconds * 1000),
        finishedAt,
        ok: result.verified,
        results: { checksums: result.checksums, source: 'after imaging' },
        seconds: result.timings.verifySeconds,
        requestedBy: null,
        archiveStatus: result.verified && result.badSectors.badBytes === 0 ? 'ok' : 'damaged',
      });
    }
    return archive.id;
  }

  /** Removes a cancelled run's partial image and map, unless the user kept them or they hold an archived image. */
  async function discardIfAsked(job: JobRecord, result: ImagingResult): Promise<void> {
    const current = (await queue.get(job.id)) ?? job;
    const keep = current.options.keep_partial_on_cancel ?? config.storage.keep_partial_on_cancel;
    if (keep || job.archiveId !== null) {
      await appendLog(job.id, 'info', `partial image and map kept: ${basename(result.partPath)}, ${basename(result.mapPath)}`);
      return;
    }
    await removePartials(job.outputFile);
    await appendLog(job.id, 'info', 'partial image and map removed');
  }

  async function run(claimed: JobRecord, controller: AbortController): Promise<void> {
    // Replaced once when this node chooses the image's path itself (placesOwnImages).
    let job = claimed;
    /** Set when the run stops because its lease ran short or was lost: its end is then recorded as recordLeasePause does. */
    let leaseStop = false;
    const stopForLease = (message: string): void => {
      if (controller.signal.aborted) return;
      leaseStop = true;
      log.warn({ jobId: job.id }, message);
      controller.abort('pause');
    };
    /** When the lease this run last renewed runs out, on this process's monotonic clock; the claim's lease to begin with. */
    let leaseEndsAt = performance.now() + (job.leaseExpiresAt === null ? leaseMs : Date.parse(job.leaseExpiresAt) - Date.now());
    let leaseShort: NodeJS.Timeout | undefined;
    const watchLease = (): void => {
      clearTimeout(leaseShort);
      leaseShort = setTimeout(
        () => stopForLease('the job lease could not be renewed; pausing the job before it runs out'),
        Math.max(0, leaseEndsAt - leaseMarginMs - performance.now()),
      );
      leaseShort.unref();
    };
    watchLease();
    const heartbeat = setInterval(() => {
      const sentAt = performance.now();
      queue.heartbeat(job.id, workerId, leaseMs).then(
        (held) => {
          if (!held) {
            stopForLease('lease lost; stopping the job here');
            return;
          }
          // The database set the new end at or after the moment the renewal was sent.
          leaseEndsAt = Math.max(leaseEndsAt, sentAt + leaseMs);
          watchLease();
        },
        (error: unknown) => log.error({ err: error, jobId: job.id }, 'heartbeat failed'),
      );
    }, heartbeatMs);
    heartbeat.unref();

    let lastDbWrite = 0;
    let pendingUpdate: Promise<unknown> = Promise.resolve();
    /**
     * The newest progress the engine reported. Live events between database writes show it, a
     * database write's event shows it over the row (the write finishes after newer live events
     * went out), and a stop records it: the bar never moves back, also not into the paused state.
     */
    let latest: Pick<JobRecord, 'phase' | 'progress' | 'bytesDone' | 'speedBps' | 'etaSeconds' | 'badBytes' | 'errorCount'> | null = null;
    const onProgress = (progress: ImagingProgress): void => {
      const now = Date.now();
      latest = {
        phase: progress.phase,
        progress: progress.percent,
        bytesDone: progress.bytesDone,
        speedBps: progress.rateBps,
        etaSeconds: progress.etaSeconds,
        badBytes: progress.badBytes,
        errorCount: progress.errorCount,
      };
      const phaseStatus = progress.phase === 'verifying' ? 'verifying' : 'running';
      if (now - lastDbWrite < DB_PROGRESS_INTERVAL_MS && progress.percent < 100) {
        events.emit('job.updated', { job: { ...job, updatedAt: new Date(now).toISOString(), status: phaseStatus, ...latest } });
        return;
      }
      lastDbWrite = now;
      pendingUpdate = pendingUpdate
        .then(() =>
          queue.update(job.id, workerId, {
            status: phaseStatus,
            phase: progress.phase,
            progress: progress.percent,
            bytesDone: progress.bytesDone,
            sizeBytes: progress.bytesTotal,
            speedBps: progress.rateBps,
            etaSeconds: progress.etaSeconds,
            badBytes: progress.badBytes,
            errorCount: progress.errorCount,
          }),
        )
        .then((updated) => {
          if (!updated) {
            stopForLease('lease lost; stopping the job here');
            return;
          }
          events.emit('job.updated', { job: latest === null ? updated : { ...updated, ...latest } });
          if (updated.requestedAction) controller.abort(updated.requestedAction);
        })
        .catch((error: unknown) => log.error({ err: error, jobId: job.id }, 'progress update failed'));
    };

    try {
      const drive = await drives.get(job.deviceId);
      const media = await drives.probe(drive.id);
      if (!media.present || !media.imageSizeBytes) throw new UnavailableError('no_media', `no readable disc in ${drive.id}`);
      const { options } = job;
      if (deps.placesOwnImages === true && job.archiveId === null && job.bytesDone === 0 && !(await outputAllowed(job.outputFile))) {
        job = await placeImageHere(job);
      }
      if (!(await outputAllowed(job.outputFile))) {
        throw new ConflictError(
          'output_outside_service',
          `${job.outputFile} is outside the output directory ${config.storage.output_dir}, so only the command that made this job may write it; nothing was read. Continue it with: disk2iso create --device ${job.deviceId} --output ${job.outputFile}`,
          { output_file: job.outputFile },
        );
      }
      if (differentDisc(options, media)) {
        const expected = options.disc ?? {};
        throw new UnavailableError(
          'different_disc',
          `the disc in ${drive.id} (volume id ${media.volumeId ?? 'none'}, ${media.imageSizeBytes} bytes) is not the one this job was created for (volume id ${expected.volume_id ?? 'none'}, ${expected.size_bytes ?? '?'} bytes); nothing was read. Insert that disc, or continue the job on a drive that holds it`,
          {
            device: drive.id,
            found: { volume_id: media.volumeId, size_bytes: media.imageSizeBytes },
            expected: { volume_id: expected.volume_id ?? null, size_bytes: expected.size_bytes ?? null },
          },
        );
      }
      if (job.archiveId !== null) {
        await reopenImage(job.outputFile);
        await appendLog(job.id, 'info', `reading the bad areas again from the rescue map, ${options.read_attempts ?? config.imaging.read_attempts} attempts`);
      } else {
        await appendLog(job.id, 'info', job.attempts > 1 || job.bytesDone > 0 ? 'continuing from the rescue map' : 'started');
      }
      const result = await deps.runImaging({
        source: { path: drive.path, sizeBytes: media.imageSizeBytes, sectorSize: media.logicalSectorSize },
        outputPath: job.outputFile,
        // The engine always keeps what it rescued on cancel; whether to discard it is the user's
        // choice at cancel time, carried out below once the run has stopped.
        options: {
          ...imagingOptionsFrom(config, { readAttempts: options.read_attempts, checksums: options.checksums, verify: options.verify }),
          keepPartialOnCancel: true,
        },
        metadata: {
          job_id: job.id,
          name: job.name,
          label: media.volumeLabel,
          device: { id: drive.id, path: drive.path, vendor: drive.vendor, model: drive.model },
          media,
        },
        signal: controller.signal,
        onProgress,
        onLog: (level, message) => {
          appendLog(job.id, level, message).catch((error: unknown) => log.error({ err: error }, 'job log failed'));
        },
      });
      await pendingUpdate;
      if (result.outcome === 'completed') {
        const archiveId = await recordArchive(job, media, result);
        const summary = result.badSectors.badBytes > 0 ? `completed with ${result.badSectors.badBytes} unreadable bytes` : 'completed';
        await appendLog(job.id, result.badSectors.badBytes > 0 ? 'warning' : 'info', `${summary}: ${result.outputPath}`);
        await finish(job, 'completed', { archiveId, progress: 100, bytesDone: result.sizeBytes, badBytes: result.badSectors.badBytes, phase: null });
        if (shouldEject(config, drive, { badBytes: result.badSectors.badBytes, verified: result.verified, requested: job.options.eject })) {
          await drives.eject(drive.id).catch((error: unknown) => appendLog(job.id, 'warning', `eject failed: ${errorMessage(error)}`));
        }
      } else if (leaseStop && result.outcome === 'paused') {
        await recordLeasePause(job, stoppedAt(latest));
      } else {
        if (result.outcome === 'cancelled') await discardIfAsked(job, result);
        await appendLog(job.id, 'info', result.outcome);
        await finish(job, result.outcome, stoppedAt(latest));
      }
    } catch (error) {
      await pendingUpdate;
      const code = error instanceof DomainError ? error.code : 'internal_error';
      const message = error instanceof DomainError ? error.message : `internal error: ${errorMessage(error)}`;
      if (!(error instanceof DomainError)) log.error({ err: error, jobId: job.id }, 'job failed unexpectedly');
      await appendLog(job.id, 'error', message).catch(() => undefined);
      // Too little room on the output is a pause the user can clear; everything else fails the job (retry resumes).
      const status = waitsForSpace(code) ? 'paused' : 'failed';
      await finish(job, status, { ...stoppedAt(latest), errorCode: code, errorMessage: message }).catch((finishError: unknown) =>
        log.error({ err: finishError, jobId: job.id }, 'could not record the end of a job'),
      );
    } finally {
      clearInterval(heartbeat);
      clearTimeout(leaseShort);
    }
  }

  function launch(job: JobRecord): Promise<void> {
    const controller = new AbortController();
    const done = run(job, controller).finally(() => {
      runs.delete(job.id);
      wake();
    });
    runs.set(job.id, { controller, deviceId: job.deviceId, done });
    return done;
  }

  /** One look for work: takes back what dead runs left, then starts the next runnable job, if any. True when it started one. */
  async function claimOnce(): Promise<boolean> {
    const maxRunning = config.jobs.max_running > 0 ? config.jobs.max_running : undefined;
    await queue.recoverExpired({ holderGone: deps.holderGone });
    const busyDeviceIds = [...runs.values()].map((active) => active.deviceId);
    const job = await queue.claimNext(workerId, { leaseMs, busyDeviceIds, holder: deps.leaseHolder, ...(maxRunning ? { maxRunning } : {}) });
    if (job === null) return false;
    events.emit('job.updated', { job });
    void launch(job);
    return true;
  }

  /** One look at a time: the claim loop and deliveries (`offer`) take turns. */
  let claiming: Promise<unknown> = Promise.resolve();
  function claimInTurn(): Promise<boolean> {
    const turn = claiming.then(claimOnce);
    claiming = turn.catch(() => undefined);
    return turn;
  }

  async function claimLoop(): Promise<void> {
    while (!stopping) {
      lastPollAt = Date.now();
      try {
        if (await claimInTurn()) continue;
      } catch (error) {
        log.error({ err: error }, 'claiming a job failed');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deps.pollMs ?? 1000);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeUp = null;
    }
  }

  function wake(): void {
    wakeUp?.();
  }

  const unsubscribe = [
    events.on('job.created', () => wake()),
    events.on('job.finished', () => wake()),
    events.on('job.updated', ({ job }) => {
      if (job.status === 'queued') wake();
    }),
    events.on('job.stop_requested', ({ jobId, action }) => runs.get(jobId)?.controller.abort(action)),
  ];

  /** Tells `disk2iso create` (another process) that a service takes jobs from this database. */
  let presence: NodeJS.Timeout | undefined;
  const announce = (): void => {
    queue.announceWorker(workerId, deps.leaseHolder).catch((error: unknown) => log.error({ err: error }, 'announcing the job runner failed'));
  };

  return {
    async start() {
      if (started) return;
      started = true;
      await queue.announceWorker(workerId, deps.leaseHolder);
      presence = setInterval(announce, Math.max(1000, Math.floor(leaseMs / 3)));
      presence.unref();
      loop = claimLoop();
    },
    wake,
    async stop() {
      stopping = true;
      stopSignal.abort();
      lastPollAt = null;
      wake();
      for (const active of runs.values()) active.controller.abort('pause');
      await Promise.all([...runs.values()].map((active) => active.done));
      await loop;
      clearInterval(presence);
      if (started) await queue.forgetWorker(workerId).catch((error: unknown) => log.error({ err: error }, 'could not sign the job runner off'));
      for (const off of unsubscribe) off();
    },
    active() {
      return [...runs.keys()];
    },
    runClaimed(job) {
      return launch(job);
    },
    async offer(jobId) {
      if (!started || stopping) throw new UnavailableError('shutting_down', 'the job runner is not taking work');
      while (await claimInTurn()) {
        // Each claim takes the queue's next job: this one, or one before it, after which this one may follow.
      }
      const job = await queue.get(jobId);
      if (job?.status === 'queued') throw new UnavailableError('device_busy', `job ${jobId} waits for its drive or for a free place (jobs.max_running)`);
    },
    lastPoll() {
      return lastPollAt === null ? null : new Date(lastPollAt);
    },
  };
}
