import Type, { type Static, type TSchema } from 'typebox';
import { HASH_ALGORITHMS, type Priority, READ_ATTEMPTS } from '../config/schema.js';
import { DISC_KINDS, FILE_SYSTEM_KINDS, MEDIA_TYPES } from '../drives/types.js';
import type { ImagingPhase } from '../imaging/types.js';
import type { LogLevel } from '../log.js';

/**
 * What a job is and which states it passes through: the one definition the queue, the services,
 * the database, the API and the pages share.
 */

export const JOB_STATUSES = ['queued', 'running', 'paused', 'verifying', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** A worker is reading or verifying the job: it occupies its drive and holds a lease. */
export const ACTIVE_JOB_STATUSES = ['running', 'verifying'] as const satisfies readonly JobStatus[];
export type ActiveJobStatus = (typeof ACTIVE_JOB_STATUSES)[number];

/** Statuses a job never leaves on its own (only a retry or a new run over its bad areas does). */
export const FINISHED_JOB_STATUSES = ['completed', 'failed', 'cancelled'] as const satisfies readonly JobStatus[];
export type FinishedJobStatus = (typeof FINISHED_JOB_STATUSES)[number];

/** Every other status: the job is still on its way, waiting, paused or active (the dashboard's "active jobs"). */
export type UnfinishedJobStatus = Exclude<JobStatus, FinishedJobStatus>;
export const UNFINISHED_JOB_STATUSES: readonly UnfinishedJobStatus[] = JOB_STATUSES.filter((status) => isUnfinished(status));

/** Statuses a job can be put back in the queue from (resume, retry, or either on another drive). */
const REQUEUEABLE_JOB_STATUSES = ['paused', 'failed', 'cancelled'] as const satisfies readonly JobStatus[];

export function isActive(status: JobStatus): status is ActiveJobStatus {
  return (ACTIVE_JOB_STATUSES as readonly JobStatus[]).includes(status);
}

export function isFinished(status: JobStatus): status is FinishedJobStatus {
  return (FINISHED_JOB_STATUSES as readonly JobStatus[]).includes(status);
}

/** @internal exported for its tests */
export function isUnfinished(status: JobStatus): status is UnfinishedJobStatus {
  return !isFinished(status);
}

export function isRequeueable(status: JobStatus): boolean {
  return (REQUEUEABLE_JOB_STATUSES as readonly JobStatus[]).includes(status);
}

export type JobPriority = Priority;

const REQUESTED_ACTIONS = ['pause', 'cancel'] as const;
export type RequestedAction = (typeof REQUESTED_ACTIONS)[number];

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/**
 * The options stored with a job: what the job service chose when it was created, and what a cancel
 * or a retry of its bad areas changed since. Checked when a row is read back, so a row that does not
 * hold them (edited by hand, written by a broken version) is reported instead of being run.
 */
export const JobOptionsSchema = Type.Object(
  {
    read_attempts: Type.Optional(Type.Integer(READ_ATTEMPTS)),
    verify: Type.Optional(Type.Boolean()),
    checksums: Type.Optional(Type.Array(Type.Enum([...HASH_ALGORITHMS]))),
    disc: Type.Optional(
      Type.Object(
        {
          label: Type.Optional(Nullable(Type.String())),
          volume_id: Type.Optional(Nullable(Type.String())),
          created_at: Type.Optional(Nullable(Type.String())),
          kind: Type.Optional(Type.Enum([...DISC_KINDS])),
          media_type: Type.Optional(Nullable(Type.Enum([...MEDIA_TYPES]))),
          file_systems: Type.Optional(Type.Array(Type.Enum([...FILE_SYSTEM_KINDS]))),
          size_bytes: Type.Optional(Type.Integer({ minimum: 1 })),
          sector_size: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false, description: 'The disc as it was when the job was created (a retry must find the same disc)' },
      ),
    ),
    eject: Type.Optional(Type.Boolean({ description: 'Open the tray once the image is complete and verified (a drive automation profile asked for it)' })),
    keep_partial_on_cancel: Type.Optional(Type.Boolean({ description: "The last cancel's choice: keep the partial image and its rescue map" })),
  },
  { additionalProperties: false },
);
export type JobOptions = Static<typeof JobOptionsSchema>;

/** Read attempts allowed for a run over a job's bad areas: as for a new job, but at least one, or nothing would be read. */
export const RETRY_READ_ATTEMPTS = { ...READ_ATTEMPTS, minimum: 1 } as const;

/**
 * The process holding a job's lease, as far as another process on the same host can check it: a
 * pid is only that process while its start time (/proc/PID/stat field 22, clock ticks after boot)
 * is the same, within one boot and one pid namespace.
 */
export interface LeaseHolder {
  host: string;
  /** /proc/sys/kernel/random/boot_id */
  bootId: string;
  /** The target of /proc/self/ns/pid, e.g. `pid:[4026531836]`. */
  pidNamespace: string;
  pid: number;
  startTicks: number;
}

export interface JobRecord {
  id: string;
  name: string;
  status: JobStatus;
  priority: JobPriority;
  deviceId: string;
  devicePath: string;
  /** The cluster node whose drive the job reads; null in the embedded mode. */
  nodeId: string | null;
  outputFile: string;
  options: JobOptions;
  phase: ImagingPhase | null;
  /** 0..100 */
  progress: number;
  sizeBytes: number | null;
  bytesDone: number;
  speedBps: number | null;
  etaSeconds: number | null;
  badBytes: number;
  errorCount: number;
  errorCode: string | null;
  errorMessage: string | null;
  archiveId: string | null;
  createdBy: string | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Order of entering the queue; re-queueing a paused or failed job gives it a new one. */
  seq: number;
  leaseOwner: string | null;
  leaseExpiresAt: string | null;
  leaseHolder: LeaseHolder | null;
  /** How often a worker claimed the job. */
  attempts: number;
  /** A stop another process asked the job's worker for (e.g. the CLI's `stop --all`). */
  requestedAction: RequestedAction | null;
}

/** A line of a job's own log. */
export interface JobLogRecord {
  id: number;
  jobId: string;
  at: string;
  level: LogLevel;
  message: string;
}

/**
 * The engine's stops that only wait for free space on the output file system: the stop threshold
 * reached, a write refused for lack of room, or too little room to start. Nothing is wrong with the
 * disc or the job, so the job pauses (map saved) instead of failing, and `resume` continues it.
 */
const WAITING_FOR_SPACE: ReadonlySet<string> = new Set(['storage_threshold', 'no_space', 'insufficient_space']);

/** Why a paused job is paused: a stop someone asked for, or the output file system being too full. */
export type PauseReason = 'requested' | 'disk_full';

export function waitsForSpace(errorCode: string): boolean {
  return WAITING_FOR_SPACE.has(errorCode);
}

/** Null for a job that is not paused. The reason lives in the job's error code, so it has one source. */
export function pauseReason(job: Pick<JobRecord, 'status' | 'errorCode'>): PauseReason | null {
  if (job.status !== 'paused') return null;
  return job.errorCode !== null && waitsForSpace(job.errorCode) ? 'disk_full' : 'requested';
}

/**
 * How a completed job ended: 'clean', or 'with_errors' when some sectors stayed unreadable and are
 * zero-filled in the image. Not a status of its own: the status says where a job is in its life
 * (a completed job has an image in the archive, whatever its outcome), the outcome says how good
 * that image is; clients filtering on status=completed still see every finished image.
 */
export type JobOutcome = 'clean' | 'with_errors';

export function jobOutcome(job: Pick<JobRecord, 'status' | 'badBytes'>): JobOutcome | null {
  if (job.status !== 'completed') return null;
  return job.badBytes > 0 ? 'with_errors' : 'clean';
}

/**
 * A job that stopped on something a person has to look at: it failed, it waits for space on the
 * output file system, or its image was completed with unreadable sectors. A pause someone asked
 * for, a cancel and a clean image need nobody.
 */
export function needsAttention(job: Pick<JobRecord, 'status' | 'errorCode' | 'badBytes'>): boolean {
  return job.status === 'failed' || pauseReason(job) === 'disk_full' || jobOutcome(job) === 'with_errors';
}
