import { link, readFile, unlink } from 'node:fs/promises';
import type { Config, Priority } from '../config/schema.js';
import type { JobListFilter, JobRepository } from '../db/job-repository.js';
import { ConflictError, NotFoundError, ValidationError, errnoCode } from '../errors.js';
import { pathExists, removePartials } from '../imaging/output-state.js';
import type { Logger } from '../log.js';
import type { KnownDrives } from '../system/devices.js';
import type { JobEventBus } from './events.js';
import { type JobChoices, createIntake } from './intake.js';
import { type JobLogRecord, type JobRecord, type JobStatus, RETRY_READ_ATTEMPTS, isActive, isFinished } from './model.js';
import type { JobQueue } from './queue.js';
import { type JobView, toJobView } from './view.js';

export interface CreateJobInput {
  name?: string | undefined;
  /** A drive id, or the device path of a discovered drive. */
  device: string;
  options?: JobChoices | undefined;
}

export type JobAction = 'pause' | 'resume' | 'cancel' | 'retry';

/** @internal exported for its tests */
export interface UpdateJobInput {
  action?: JobAction | undefined;
  priority?: Priority | undefined;
  /**
   * With resume or retry: the drive to continue on (an id, or the device path of a discovered drive),
   * e.g. the same drive under a new name, or a better drive the disc was moved to. The runner checks
   * that it holds the job's disc before it reads.
   */
  device?: string | undefined;
  /**
   * With action 'cancel': keep NAME.iso.part and its rescue map. Default: keep when the job has
   * rescued anything, so a cancel never silently destroys read data; else storage.keep_partial_on_cancel.
   */
  keep_partial?: boolean | undefined;
}

interface ListJobsQuery {
  status?: JobStatus[] | undefined;
  limit: number;
  offset: number;
  sort: 'created' | 'updated' | 'name';
  order?: 'asc' | 'desc' | undefined;
}

/** A type, not an interface, so it fits where any JSON object is taken (a response serializer). */
type JobList = {
  jobs: JobView[];
  total: number;
  limit: number;
  offset: number;
};

export interface JobService {
  /** `createdBy`: who asked, recorded with the job (a key's owner for a key). */
  create(input: CreateJobInput, createdBy: string | null): Promise<JobView>;
  list(query: ListJobsQuery): Promise<JobList>;
  /**
   * Changes whenever `list` may answer differently: after any change to a job, by this process or
   * another, and in the cluster when a node goes offline or comes back. While it stays the same, an
   * earlier answer to the same query still holds.
   */
  listVersion(): Promise<string>;
  get(id: string): Promise<JobView>;
  update(id: string, input: UpdateJobInput): Promise<JobView>;
  /**
   * Queues a completed job with unreadable sectors again: the next run continues from its rescue
   * map, reads only the bad areas, `readAttempts` more times, and updates the archive entry.
   */
  retryBadAreas(id: string, readAttempts?: number): Promise<JobView>;
  /** The text of the job's rescue map; NotFoundError when there is none. */
  rescueMap(id: string): Promise<string>;
  /** Cancels the job when it is active, waits for its worker to let go, then removes it. */
  remove(id: string): Promise<void>;
  logs(id: string, afterId?: number): Promise<JobLogRecord[]>;
}

export interface JobServiceDeps {
  config: Config;
  queue: JobQueue;
  jobs: JobRepository;
  /** What is known about drives and discs without reading a drive: creating a job never waits on one. */
  drives: KnownDrives;
  events: JobEventBus;
  log: Logger;
  /** How long remove() waits for a running job's worker to stop. */
  removeWaitMs?: number;
  /** In the cluster: whether each node is online (its heartbeat fresh), for the jobs' `node_online`. */
  nodesOnline?: () => Promise<Map<string, boolean>>;
}

const JOB_ID = /^job_[a-z0-9]{1,64}$/;

export function createJobService(deps: JobServiceDeps): JobService {
  const { config, queue, jobs, drives, events } = deps;
  const intake = createIntake({ config, drives, media: (id) => drives.knownMedia(id), reservedOutputs: () => jobs.unfinishedOutputFiles() });

  async function find(id: string): Promise<JobRecord> {
    const job = JOB_ID.test(id) ? await queue.get(id) : null;
    if (!job) throw new NotFoundError('job_not_found', `no job ${id}`);
    return job;
  }

  /** Whether the node of each job is online; null for a job on no node (the embedded mode). */
  async function nodeOnlineOf(): Promise<(job: JobRecord) => boolean | null> {
    const online = deps.nodesOnline === undefined ? new Map<string, boolean>() : await deps.nodesOnline();
    return (job) => (job.nodeId === null ? null : (online.get(job.nodeId) ?? false));
  }

  async function view(job: JobRecord): Promise<JobView> {
    const [position, nodeOnline] = await Promise.all([job.status === 'queued' ? jobs.queuePosition(job.id) : null, nodeOnlineOf()]);
    return toJobView(job, position, nodeOnline(job));
  }

  /**
   * A removed job that was reading its archived image's bad areas again gives the image back to the
   * archive: NAME.iso.part becomes NAME.iso again (never replacing a file). Its checksums may then be
   * out of date, which the archive's verification reports.
   */
  async function restoreArchivedImage(job: JobRecord): Promise<void> {
    try {
      await link(`${job.outputFile}.part`, job.outputFile);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'EEXIST') return;
      throw error;
    }
    await unlink(`${job.outputFile}.part`);
  }

  /** A job with an archive entry is improving that image: its .part is the archived image, never removed here. */
  async function discardPartials(job: JobRecord): Promise<void> {
    if (job.archiveId !== null) return;
    await removePartials(job.outputFile);
  }

  async function announce(job: JobRecord): Promise<JobView> {
    events.emit(isFinished(job.status) || job.status === 'paused' ? 'job.finished' : 'job.updated', { job });
    return view(job);
  }

  async function logLine(jobId: string, message: string): Promise<void> {
    const line = await jobs.appendLog(jobId, 'info', message);
    events.emit('job.log', { jobId, level: line.level, message: line.message, at: line.at });
  }

  async function waitUntilInactive(id: string): Promise<void> {
    const deadline = Date.now() + (deps.removeWaitMs ?? 30_000);
    while (Date.now() < deadline) {
      const job = await queue.get(id);
      if (!job || !isActive(job.status)) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new ConflictError('job_busy', `job ${id} did not stop in time; try again`);
  }

  return {
    async create(input, createdBy) {
      const { drive, media, job: planned } = await intake.plan({ device: input.device, name: input.name, options: input.options, createdBy });
      const job = await queue.enqueue(planned);
      events.emit('job.created', { job });
      await logLine(
        job.id,
        `queued: ${drive.description} (${drive.id}), ${media.volumeLabel ?? 'no label'}, ${media.imageSizeBytes} bytes -> ${job.outputFile}`,
      );
      return view(job);
    },

    async list(query) {
      const filter: JobListFilter = { sort: query.sort, limit: query.limit, offset: query.offset };
      if (query.status && query.status.length > 0) filter.statuses = query.status;
      if (query.order) filter.order = query.order;
      const [{ items, total, positions }, nodeOnline] = await Promise.all([jobs.listWithQueuePositions(filter), nodeOnlineOf()]);
      return { jobs: items.map((job) => toJobView(job, positions.get(job.id) ?? null, nodeOnline(job))), total, limit: query.limit, offset: query.offset };
    },

    async listVersion() {
      const [version, online] = await Promise.all([jobs.version(), deps.nodesOnline?.()]);
      if (online === undefined) return String(version);
      // The nodes online: one that goes offline, comes back or leaves the list changes it.
      const onlineNodes = [...online].filter(([, isOnline]) => isOnline).map(([node]) => node);
      return `${version} ${onlineNodes.sort().join(',')}`;
    },

    async get(id) {
      return view(await find(id));
    },

    async update(id, input) {
      if (input.action === undefined && input.priority === undefined) {
        throw new ValidationError('validation_failed', 'give an action (pause, resume, cancel, retry) or a priority', [{ field: 'body' }]);
      }
      if (input.device !== undefined && input.action !== 'resume' && input.action !== 'retry') {
        throw new ValidationError('validation_failed', 'a device is only taken with the action resume or retry', [{ field: 'device' }]);
      }
      if (input.keep_partial !== undefined && input.action !== 'cancel') {
        throw new ValidationError('validation_failed', 'keep_partial is only taken with the action cancel', [{ field: 'keep_partial' }]);
      }
      let job = await find(id);
      const target = input.device === undefined ? undefined : await intake.resolveDrive(input.device);
      const move =
        target === undefined || target.id === job.deviceId
          ? undefined
          : { drive: { id: target.id, path: target.path, ...(target.node === undefined ? {} : { node: target.node }) } };
      const movedTo = move === undefined ? '' : ` on ${move.drive.id} (${move.drive.path}) instead of ${job.deviceId}`;
      if (input.priority !== undefined) {
        if (isFinished(job.status)) {
          throw new ConflictError('invalid_state', `job ${id} is ${job.status}; its priority no longer matters`, { status: job.status });
        }
        job = await queue.setPriority(id, input.priority);
      }
      switch (input.action) {
        case undefined:
          break;
        case 'pause': {
          const wasActive = isActive(job.status);
          job = await queue.requestStop(id, 'pause');
          if (wasActive) events.emit('job.stop_requested', { jobId: id, action: 'pause' });
          await logLine(id, 'pause requested');
          break;
        }
        case 'cancel': {
          const keep = input.keep_partial ?? (job.bytesDone > 0 || config.storage.keep_partial_on_cancel);
          if (!keep && job.archiveId !== null) {
            throw new ConflictError('image_in_archive', `job ${id} is reading the bad areas of an archived image again; that image cannot be discarded here`, {
              archive_id: job.archiveId,
            });
          }
          const wasActive = isActive(job.status);
          // The runner reads the choice from the job when the run has stopped (possibly in another process).
          if (!isFinished(job.status)) job = await queue.mergeOptions(id, { keep_partial_on_cancel: keep });
          job = await queue.requestStop(id, 'cancel');
          if (wasActive) events.emit('job.stop_requested', { jobId: id, action: 'cancel' });
          else if (!keep) await discardPartials(job);
          await logLine(id, `cancel requested; partial image and map ${keep ? 'kept' : 'discarded'}`);
          break;
        }
        case 'resume':
          if (job.status !== 'paused' && job.status !== 'queued') {
            throw new ConflictError('invalid_state', `job ${id} is ${job.status}; only a paused job can be resumed`, { status: job.status });
          }
          job = await queue.requeue(id, move);
          await logLine(id, `resumed${movedTo}`);
          break;
        case 'retry':
          if (job.status !== 'failed' && job.status !== 'cancelled') {
            throw new ConflictError('invalid_state', `job ${id} is ${job.status}; only a failed or cancelled job can be retried`, { status: job.status });
          }
          job = await queue.requeue(id, move);
          await logLine(id, `retry requested${movedTo}`);
          break;
      }
      return announce(job);
    },

    async retryBadAreas(id, readAttempts) {
      const job = await find(id);
      if (job.status !== 'completed' || job.badBytes === 0 || job.archiveId === null) {
        throw new ConflictError('no_bad_areas', `job ${id} has no unreadable sectors to read again`, { status: job.status, bad_bytes: job.badBytes });
      }
      const attempts = readAttempts ?? Math.max(RETRY_READ_ATTEMPTS.minimum, config.imaging.read_attempts);
      if (!Number.isSafeInteger(attempts) || attempts < RETRY_READ_ATTEMPTS.minimum || attempts > RETRY_READ_ATTEMPTS.maximum) {
        throw new ValidationError('validation_failed', `read_attempts must be ${RETRY_READ_ATTEMPTS.minimum} to ${RETRY_READ_ATTEMPTS.maximum}`, [
          { field: 'read_attempts' },
        ]);
      }
      // Both files are in the output directory (no drive I/O); without them there is nothing to continue.
      for (const path of [job.outputFile, `${job.outputFile}.map`]) {
        if (!(await pathExists(path))) throw new ConflictError('map_missing', `${path} is missing; the bad areas cannot be read again`, { path });
      }
      const reopened = await queue.reopenCompleted(id, { read_attempts: attempts });
      await logLine(id, `retry of the bad areas requested: ${reopened.badBytes} bytes, ${attempts} read attempts`);
      return announce(reopened);
    },

    async rescueMap(id) {
      const job = await find(id);
      try {
        return await readFile(`${job.outputFile}.map`, 'utf8');
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') throw new NotFoundError('map_not_found', `job ${id} has no rescue map`);
        throw error;
      }
    },

    async remove(id) {
      const job = await find(id);
      if (isActive(job.status)) {
        await queue.requestStop(id, 'cancel');
        events.emit('job.stop_requested', { jobId: id, action: 'cancel' });
        await waitUntilInactive(id);
      }
      if (job.archiveId !== null && job.status !== 'completed') await restoreArchivedImage(job);
      else if (!isActive(job.status) && job.status !== 'completed' && !config.storage.keep_partial_on_cancel) await discardPartials(job);
      await jobs.delete(id);
      events.emit('job.removed', { jobId: id });
    },

    async logs(id, afterId) {
      await find(id);
      const { items } = await jobs.listLogs(id, afterId === undefined ? { limit: 1000 } : { afterId, limit: 1000 });
      return items;
    },
  };
}
