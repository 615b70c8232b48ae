import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { ImagingPhase } from '../imaging/types.js';
import type { ActiveJobStatus, JobOptions, JobPriority, JobRecord, LeaseHolder, RequestedAction } from './model.js';

/**
 * The durable job queue, independent of where it stores jobs (SQLite now; Redis or PostgreSQL
 * can implement the same interface later).
 *
 * A job moves queued -> running -> (verifying) -> completed | failed | cancelled, and may be
 * paused and queued again. A worker that claims a job holds a lease on it and renews it with
 * heartbeats; a job whose lease ran out, or whose holder is known to have died, is queued again by
 * `recoverExpired` and continues from its rescue map. At most one job per drive runs at a time.
 */
export interface JobQueue {
  /**
   * Adds a job with status queued behind every job of the same priority; with `claim`, the job is
   * running under that worker's lease from the start (ConflictError `device_busy` when a job runs on
   * its drive), so no other worker can take it first.
   */
  enqueue(input: EnqueueInput): Promise<JobRecord>;
  get(jobId: string): Promise<JobRecord | null>;
  /**
   * Atomically takes the next runnable job: highest priority, then oldest, among queued jobs
   * whose drive runs no job and is not in `busyDeviceIds`, while fewer than `maxRunning` jobs
   * run. Sets it running under a lease for `workerId`. Null when nothing may start now.
   */
  claimNext(workerId: string, options: ClaimOptions): Promise<JobRecord | null>;
  /**
   * Takes one queued, paused, failed or cancelled job, progress kept, and sets it running under a
   * lease for `workerId` (a person continuing that very job, whatever the queue order), on `drive`
   * when given. ConflictError `device_busy` while another job runs on that drive, `invalid_state`
   * when it is active or completed.
   */
  claimJob(jobId: string, workerId: string, claim: Pick<ClaimOptions, 'leaseMs' | 'holder'> & RequeueOptions): Promise<JobRecord>;
  /** Records that a worker (a service's runner) is alive and claiming jobs; repeat it as a heartbeat. */
  announceWorker(workerId: string, holder: LeaseHolder): Promise<void>;
  forgetWorker(workerId: string): Promise<void>;
  /** Workers seen within `staleMs` whose process `holderGone` does not know to have ended. */
  liveWorkers(options: { staleMs: number; holderGone: (holder: LeaseHolder) => Promise<boolean> }): Promise<Array<{ id: string; holder: LeaseHolder }>>;
  /** Extends the lease to now + leaseMs. False when the worker no longer holds the job. */
  heartbeat(jobId: string, workerId: string, leaseMs: number): Promise<boolean>;
  /**
   * Records progress (and the move between running and verifying) for a job the worker holds.
   * Returns the updated job, whose `requestedAction` tells the worker to stop, or null when
   * the worker no longer holds it.
   */
  update(jobId: string, workerId: string, patch: ProgressPatch): Promise<JobRecord | null>;
  /**
   * Ends the worker's hold on a job: completed, failed, cancelled, or paused (to be queued
   * again later). Throws ConflictError `lease_lost` when the worker no longer holds it.
   */
  finish(jobId: string, workerId: string, status: FinishStatus, patch?: FinishPatch): Promise<JobRecord>;
  /**
   * Running or verifying jobs whose lease has expired, or whose holder `holderGone` says has ended,
   * go back to the queue with their place, attempts and progress kept (a stop that was asked for is
   * carried out instead). Returns them.
   */
  recoverExpired(options?: RecoverOptions): Promise<JobRecord[]>;
  /**
   * 1-based queue position of every queued job, in the order claimNext would consider them: in the
   * cluster each node's jobs form their own line (a job that names no node, the line of those).
   */
  positions(): Promise<Map<string, number>>;
  setPriority(jobId: string, priority: JobPriority): Promise<JobRecord>;
  /**
   * Pauses or cancels a job. A queued or paused job changes at once; a running or verifying one
   * gets `requestedAction` set, which its worker sees on its next `update` and acts on.
   * ConflictError for a finished job, NotFoundError for an unknown one.
   */
  requestStop(jobId: string, action: RequestedAction): Promise<JobRecord>;
  /** `requestStop` for every job not yet finished; returns the jobs it changed. */
  requestStopAll(action: RequestedAction): Promise<JobRecord[]>;
  /**
   * Puts a paused, failed or cancelled job back in the queue, behind the jobs of its priority,
   * keeping its progress so it continues from its rescue map. A queued job is returned as is.
   * With `drive`, the job continues on that drive instead (a queued one keeps its place); it then
   * waits, like any job, while another job runs there.
   */
  requeue(jobId: string, options?: RequeueOptions): Promise<JobRecord>;
  /** Merges keys into a job's stored options (a cancel's choice to keep or discard its data). */
  mergeOptions(jobId: string, patch: JobOptions): Promise<JobRecord>;
  /**
   * Puts a completed job back in the queue with `patch` merged into its options, for a run that
   * reads its bad areas again from its rescue map. ConflictError unless the job is completed.
   */
  reopenCompleted(jobId: string, patch: JobOptions): Promise<JobRecord>;
}

export interface EnqueueInput {
  name: string;
  deviceId: string;
  devicePath: string;
  /** The node whose drive it reads (a web instance adds jobs for its workers' drives); default the queue's own node. */
  nodeId?: string;
  outputFile: string;
  /** Default: normal. */
  priority?: JobPriority;
  options?: JobOptions;
  sizeBytes?: number | null;
  createdBy?: string | null;
  /** Start the job running under this worker's lease at once. */
  claim?: { workerId: string; leaseMs: number; holder?: LeaseHolder };
}

export interface ClaimOptions {
  leaseMs: number;
  /** Drives that must not start a job now (e.g. no disc, or in use outside the queue). */
  busyDeviceIds?: readonly string[];
  /** Global limit on running and verifying jobs. Default: unlimited, i.e. one per drive. */
  maxRunning?: number;
  /** The process the worker runs in, recorded with the lease so a restart can tell it has died. */
  holder?: LeaseHolder;
}

interface RequeueOptions {
  /** The drive to continue on: the same disc under another name, or in another drive (of `node`, in the cluster). */
  drive?: { id: string; path: string; node?: string };
}

export interface RecoverOptions {
  /**
   * True when the process holding a lease has ended, though its lease still runs (it died on this
   * host). Its jobs are recovered at once; a holder it cannot judge must get false.
   */
  holderGone?: (holder: LeaseHolder) => Promise<boolean>;
}

export interface ProgressPatch {
  status?: ActiveJobStatus;
  phase?: ImagingPhase | null;
  progress?: number;
  sizeBytes?: number | null;
  bytesDone?: number;
  speedBps?: number | null;
  etaSeconds?: number | null;
  badBytes?: number;
  errorCount?: number;
  /** Where the image goes, when the node that runs the job chooses it (JobRunnerDeps.placesOwnImages). */
  outputFile?: string;
}

/** @internal exported for its tests */
export type FinishStatus = 'completed' | 'failed' | 'cancelled' | 'paused';

/** Rate and ETA are cleared when a job stops, so a finish does not take them. */
export interface FinishPatch extends Omit<ProgressPatch, 'status' | 'speedBps' | 'etaSeconds'> {
  errorCode?: string | null;
  errorMessage?: string | null;
  archiveId?: string | null;
}

/** A worker id that names the machine and process holding a lease (useful when reading the table). */
export function newWorkerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}
