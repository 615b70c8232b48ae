import { type JobOptions, type JobOutcome, type JobRecord, type PauseReason, jobOutcome, pauseReason } from './model.js';

/** The unreadable part of a job's image, as every screen and the API describe it. */
interface BadSectorsView {
  sectors: number;
  bytes: number;
  /** Always true: unreadable sectors read as zeros in the image, as in GNU ddrescue's output. */
  zero_filled: true;
  /** The rescue map listing the bad areas (GET, ddrescue's mapfile format). */
  map_url: string;
}

/** A job as the API and live streams show it: the specification's fields first, then ours. */
export interface JobView {
  id: string;
  name: string;
  status: JobRecord['status'];
  progress: number;
  created_at: string;
  updated_at: string;
  device: string;
  output_file: string;
  size_bytes: number | null;
  speed_bps: number | null;
  eta_seconds: number | null;
  device_id: string;
  /** The cluster node whose drive the job reads; null in the embedded mode. */
  node: string | null;
  /** Whether that node's heartbeat is fresh: a running job on a node that is offline is not advancing. Null without a node, or where it is not known (live messages). */
  node_online: boolean | null;
  priority: JobRecord['priority'];
  queue_position: number | null;
  phase: JobRecord['phase'];
  bytes_done: number;
  bad_bytes: number;
  error_count: number;
  error: { code: string; message: string } | null;
  pause_reason: PauseReason | null;
  options: JobRecord['options'];
  started_at: string | null;
  finished_at: string | null;
  archive_id: string | null;
  attempts: number;
  created_by: string | null;
  /** null unless the job is completed. */
  outcome: JobOutcome | null;
  /** null while no sector is known to be unreadable. */
  bad_sectors: BadSectorsView | null;
}

/** The sector size the job's disc reported, for counting bad sectors from bad bytes. */
export function jobSectorSize(options: JobOptions): number {
  return options.disc?.sector_size ?? 2048;
}

export function toJobView(job: JobRecord, queuePosition: number | null, nodeOnline: boolean | null = null): JobView {
  return {
    id: job.id,
    name: job.name,
    status: job.status,
    progress: Math.round(job.progress * 10) / 10,
    created_at: job.createdAt,
    updated_at: job.updatedAt,
    device: job.devicePath,
    output_file: job.outputFile,
    size_bytes: job.sizeBytes,
    speed_bps: job.speedBps === null ? null : Math.round(job.speedBps),
    eta_seconds: job.etaSeconds === null ? null : Math.round(job.etaSeconds),
    device_id: job.deviceId,
    node: job.nodeId,
    node_online: nodeOnline,
    priority: job.priority,
    queue_position: queuePosition,
    phase: job.phase,
    bytes_done: job.bytesDone,
    bad_bytes: job.badBytes,
    error_count: job.errorCount,
    error: job.errorCode || job.errorMessage ? { code: job.errorCode ?? 'error', message: job.errorMessage ?? '' } : null,
    pause_reason: pauseReason(job),
    options: job.options,
    started_at: job.startedAt,
    finished_at: job.finishedAt,
    archive_id: job.archiveId,
    attempts: job.attempts,
    created_by: job.createdBy,
    outcome: jobOutcome(job),
    bad_sectors:
      job.badBytes > 0
        ? { sectors: Math.ceil(job.badBytes / jobSectorSize(job.options)), bytes: job.badBytes, zero_filled: true, map_url: `/api/v1/jobs/${job.id}/map` }
        : null,
  };
}

/** The live-update payload of the specification's `job_update` message. */
export function toJobUpdate(job: JobRecord, nodeOnline: boolean | null = null): Record<string, unknown> {
  return {
    node_online: nodeOnline,
    status: job.status,
    progress: Math.round(job.progress * 10) / 10,
    speed_bps: job.speedBps === null ? null : Math.round(job.speedBps),
    eta_seconds: job.etaSeconds === null ? null : Math.round(job.etaSeconds),
    phase: job.phase,
    bytes_done: job.bytesDone,
    size_bytes: job.sizeBytes,
    bad_bytes: job.badBytes,
    error_count: job.errorCount,
    updated_at: job.updatedAt,
  };
}
