import type { JsonObject } from '../json.js';

/**
 * Long background work on the archive besides re-hashing: creating PAR2 recovery data for an
 * image, repairing an image from it, adopting a folder of existing images. Stored like a
 * verification task: queued -> running -> completed | failed | cancelled; one that was running
 * when the service stopped is queued again at the next start and runs from the beginning.
 */
export const MAINTENANCE_KINDS = ['par2_create', 'par2_repair', 'adopt'] as const;
export type MaintenanceKind = (typeof MAINTENANCE_KINDS)[number];
export const MAINTENANCE_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type MaintenanceStatus = (typeof MAINTENANCE_STATUSES)[number];

export interface MaintenanceTaskRecord {
  id: string;
  kind: MaintenanceKind;
  /** The image it works on; null for an adoption, which works on a folder. */
  archiveId: string | null;
  status: MaintenanceStatus;
  /** Percent done. */
  progress: number;
  params: JsonObject;
  result: JsonObject | null;
  requestedBy: string | null;
  cancelRequested: boolean;
  attempts: number;
  errorCode: string | null;
  errorMessage: string | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** A maintenance task as the API shows it. */
export interface MaintenanceTaskView {
  id: string;
  kind: MaintenanceKind;
  archive_id: string | null;
  status: MaintenanceStatus;
  progress: number;
  params: JsonObject;
  result: JsonObject | null;
  requested_by: string | null;
  cancel_requested: boolean;
  attempts: number;
  error: { code: string; message: string } | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export function toMaintenanceTaskView(task: MaintenanceTaskRecord): MaintenanceTaskView {
  return {
    id: task.id,
    kind: task.kind,
    archive_id: task.archiveId,
    status: task.status,
    progress: Math.round(task.progress * 10) / 10,
    params: task.params,
    result: task.result,
    requested_by: task.requestedBy,
    cancel_requested: task.cancelRequested,
    attempts: task.attempts,
    error: task.errorCode === null ? null : { code: task.errorCode, message: task.errorMessage ?? '' },
    created_at: task.createdAt,
    updated_at: task.updatedAt,
    started_at: task.startedAt,
    finished_at: task.finishedAt,
  };
}
