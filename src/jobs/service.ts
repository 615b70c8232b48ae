import { mkdir, rm } from 'node:fs/promises';
import { allocateImagePath, imageNameFromLabel, validateImageName } from '../archive/naming.js';
import type { Config, HashAlgorithm, Priority } from '../config/schema.js';
import type { JobListFilter, JobLogRecord, JobRepository } from '../db/job-repository.js';
import { FINISHED_JOB_STATUSES, type JobStatus } from '../db/schema.js';
import type { Drive } from '../drives/types.js';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../errors.js';
import type { Logger } from '../log.js';
import type { KnownDrives } from '../system/devices.js';
import type { JobEventBus } from './events.js';
import type { JobQueue, JobRecord } from './queue.js';
import { type JobView, toJobView } from './view.js';

export interface CreateJobInput {
  name?: string | undefined;
  /** A drive id, or the device path of a discovered drive. */
  device: string;
  options?: {
    read_attempts?: number | undefined;
    verify?: boolean | undefined;
    checksums?: HashAlgorithm[] | undefined;
    priority?: Priority | undefined;
  } | undefined;
}

export type JobAction = 'pause' | 'resume' | 'cancel' | 'retry';

export interface UpdateJobInput {
  action?: JobAction | undefined;
  priority?: Priority | undefined;
}

export interface ListJobsQuery {
  status?: JobStatus[] | undefined;
  limit: number;
  offset: number;
  sort: 'created' | 'updated' | 'name';
  order?: 'asc' | 'desc' | undefined;
}

/** A type, not an interface, so it fits where any JSON object is taken (a response serializer). */
export type JobList = {
  jobs: JobView[];
  total: number;
  limit: number;
  offset: number;
};

export interface JobService {
  create(input: CreateJobInput, createdBy?: string | null): Promise<JobView>;
  list(query: ListJobsQuery): Promise<JobList>;
  /**
   * Changes whenever `list` may answer differently: after any change to a job, by this process or
   * another. While it stays the same, an earlier answer to the same query still holds.
   */
  listVersion(): Promise<number>;
  get(id: string): Promise<JobView>;
  update(id: string, input: UpdateJobInput): Promise<JobView>;
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
}

const ACTIVE: readonly JobStatus[] = ['running', 'verifying'];
const UNFINISHED: readonly JobStatus[] = ['queued', 'running', 'paused', 'verifying'];
const JOB_ID = /^job_[a-z0-9]{1,64}$/;

export function createJobService(deps: JobServiceDeps): JobService {
  const { config, queue, jobs, drives, events } = deps;

  async function find(id: string): Promise<JobRecord> {
    const job = JOB_ID.test(id) ? await queue.get(id) : null;
    if (!job) throw new NotFoundError(`no job ${id}`, undefined, 'job_not_found');
    return job;
  }

  async function view(job: JobRecord): Promise<JobView> {
    return toJobView(job, job.status === 'queued' ? await jobs.queuePosition(job.id) : null);
  }

  async function resolveDrive(given: string): Promise<Drive> {
    if (given.startsWith('/')) {
      const match = (await drives.list()).find((drive) => drive.path === given);
      if (match) return match;
    }
    return drives.get(given);
  }

  async function reservedOutputs(): Promise<Set<string>> {
    const { items } = await jobs.list({ statuses: UNFINISHED, limit: 10_000 });
    return new Set(items.map((job) => job.outputFile));
  }

  async function removePartials(job: JobRecord): Promise<void> {
    if (config.storage.keep_partial_on_cancel) return;
    await rm(`${job.outputFile}.part`, { force: true });
    await rm(`${job.outputFile}.map`, { force: true });
  }

  async function announce(job: JobRecord): Promise<JobView> {
    events.emit(FINISHED_JOB_STATUSES.includes(job.status as (typeof FINISHED_JOB_STATUSES)[number]) || job.status === 'paused' ? 'job.finished' : 'job.updated', { job });
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
      if (!job || !ACTIVE.includes(job.status)) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new ConflictError(`job ${id} did not stop in time; try again`, undefined, 'job_busy');
  }

  return {
    async create(input, createdBy = null) {
      const drive = await resolveDrive(input.device);
      const media = await drives.knownMedia(drive.id);
      if (!media.present) throw new UnavailableError('no_media', `no disc in ${drive.id}`);
      if (media.kind === 'blank') throw new UnavailableError('blank_media', `the disc in ${drive.id} is blank`);
      if (media.kind === 'audio') throw new UnavailableError('unsupported_media', `the disc in ${drive.id} is an audio CD, which this version cannot image`);
      if (!media.imageSizeBytes) throw new UnavailableError('unknown_size', `cannot tell the size of the disc in ${drive.id}`);

      const name = input.name === undefined ? imageNameFromLabel(media.volumeLabel, drive.id) : validateImageName(input.name);
      await mkdir(config.storage.output_dir, { recursive: true, mode: 0o755 });
      const outputFile = await allocateImagePath(config.storage.output_dir, name, await reservedOutputs());
      const options = input.options ?? {};
      const job = await queue.enqueue({
        name,
        deviceId: drive.id,
        devicePath: drive.path,
        outputFile,
        priority: options.priority ?? config.imaging.priority,
        sizeBytes: media.imageSizeBytes,
        createdBy,
        options: {
          read_attempts: options.read_attempts ?? config.imaging.read_attempts,
          verify: options.verify ?? config.imaging.verify,
          checksums: options.checksums ?? [...config.imaging.checksums],
          // What the disc looked like when the job was made, so a retry can tell it is the same disc.
          disc: {
            label: media.volumeLabel,
            volume_id: media.volumeId,
            created_at: media.createdAt,
            kind: media.kind,
            media_type: media.mediaType,
            file_systems: media.fileSystems,
            size_bytes: media.imageSizeBytes,
            sector_size: media.logicalSectorSize,
          },
        },
      });
      events.emit('job.created', { job });
      await logLine(job.id, `queued: ${drive.description} (${drive.id}), ${media.volumeLabel ?? 'no label'}, ${media.imageSizeBytes} bytes -> ${outputFile}`);
      return view(job);
    },

    async list(query) {
      const filter: JobListFilter = { sort: query.sort, limit: query.limit, offset: query.offset };
      if (query.status && query.status.length > 0) filter.statuses = query.status;
      if (query.order) filter.order = query.order;
      const { items, total, positions } = await jobs.listWithQueuePositions(filter);
      return { jobs: items.map((job) => toJobView(job, positions.get(job.id) ?? null)), total, limit: query.limit, offset: query.offset };
    },

    listVersion: () => jobs.version(),

    async get(id) {
      return view(await find(id));
    },

    async update(id, input) {
      if (input.action === undefined && input.priority === undefined) {
        throw new ValidationError('give an action (pause, resume, cancel, retry) or a priority', [{ field: 'body' }]);
      }
      let job = await find(id);
      if (input.priority !== undefined) {
        if (FINISHED_JOB_STATUSES.includes(job.status as (typeof FINISHED_JOB_STATUSES)[number])) {
          throw new ConflictError(`job ${id} is ${job.status}; its priority no longer matters`, { status: job.status }, 'invalid_state');
        }
        job = await queue.setPriority(id, input.priority);
      }
      switch (input.action) {
        case undefined:
          break;
        case 'pause':
        case 'cancel': {
          const wasActive = ACTIVE.includes(job.status);
          job = await queue.requestStop(id, input.action);
          if (wasActive) events.emit('job.stop_requested', { jobId: id, action: input.action });
          else if (input.action === 'cancel') await removePartials(job);
          await logLine(id, `${input.action} requested`);
          break;
        }
        case 'resume':
          if (job.status !== 'paused' && job.status !== 'queued') {
            throw new ConflictError(`job ${id} is ${job.status}; only a paused job can be resumed`, { status: job.status }, 'invalid_state');
          }
          job = await queue.requeue(id);
          await logLine(id, 'resumed');
          break;
        case 'retry':
          if (job.status !== 'failed' && job.status !== 'cancelled') {
            throw new ConflictError(`job ${id} is ${job.status}; only a failed or cancelled job can be retried`, { status: job.status }, 'invalid_state');
          }
          job = await queue.requeue(id);
          await logLine(id, 'retry requested');
          break;
      }
      return announce(job);
    },

    async remove(id) {
      const job = await find(id);
      if (ACTIVE.includes(job.status)) {
        await queue.requestStop(id, 'cancel');
        events.emit('job.stop_requested', { jobId: id, action: 'cancel' });
        await waitUntilInactive(id);
      } else if (job.status !== 'completed') {
        await removePartials(job);
      }
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
