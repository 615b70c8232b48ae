import type { VerificationOrigin } from './model.js';

/**
 * A request to re-hash one archived image, run in the background by the service's verification
 * worker: queued -> running -> completed | failed | cancelled. It is stored, so a restart continues
 * it (from the start of the image: a hash cannot resume halfway), and leased like a job, so a
 * service that died holding it is noticed.
 */
export const VERIFICATION_TASK_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type VerificationTaskStatus = (typeof VERIFICATION_TASK_STATUSES)[number];
/** At most one task per archive is in one of these (a unique index backs it). */
export const ACTIVE_VERIFICATION_STATUSES = ['queued', 'running'] as const satisfies readonly VerificationTaskStatus[];
export const FINISHED_VERIFICATION_STATUSES = ['completed', 'failed', 'cancelled'] as const satisfies readonly VerificationTaskStatus[];
export type FinishedVerificationStatus = (typeof FINISHED_VERIFICATION_STATUSES)[number];

export interface VerificationTaskRecord {
  id: string;
  archiveId: string;
  status: VerificationTaskStatus;
  bytesDone: number;
  /** The image's size when the task was queued or last started. */
  bytesTotal: number;
  speedBps: number | null;
  etaSeconds: number | null;
  requestedBy: string | null;
  /** What queued it; a scheduled task reads at the bandwidth cap and pauses outside its window. */
  origin: VerificationOrigin;
  /** A cancel asked for while it runs; its worker stops at the next progress step. */
  cancelRequested: boolean;
  /** How often a worker took it up. */
  attempts: number;
  errorCode: string | null;
  errorMessage: string | null;
  /** The entry of the verification history a completed task added. */
  verificationId: number | null;
  /** Whether the image matched, for a completed task. */
  ok: boolean | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** A verification task as the API and the live stream show it. */
export interface VerificationTaskView {
  id: string;
  archive_id: string;
  status: VerificationTaskStatus;
  progress: number;
  bytes_done: number;
  bytes_total: number;
  speed_bps: number | null;
  eta_seconds: number | null;
  requested_by: string | null;
  origin: VerificationOrigin;
  cancel_requested: boolean;
  attempts: number;
  error: { code: string; message: string } | null;
  verification_id: number | null;
  ok: boolean | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export function toVerificationTaskView(task: VerificationTaskRecord): VerificationTaskView {
  const progress = task.status === 'completed' ? 100 : task.bytesTotal > 0 ? Math.min(100, (task.bytesDone / task.bytesTotal) * 100) : 0;
  return {
    id: task.id,
    archive_id: task.archiveId,
    status: task.status,
    progress: Math.round(progress * 10) / 10,
    bytes_done: task.bytesDone,
    bytes_total: task.bytesTotal,
    speed_bps: task.speedBps,
    eta_seconds: task.etaSeconds,
    requested_by: task.requestedBy,
    origin: task.origin,
    cancel_requested: task.cancelRequested,
    attempts: task.attempts,
    error: task.errorCode === null ? null : { code: task.errorCode, message: task.errorMessage ?? '' },
    verification_id: task.verificationId,
    ok: task.ok,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
    started_at: task.startedAt,
    finished_at: task.finishedAt,
  };
}
