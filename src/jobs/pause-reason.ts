import type { JobRecord } from './queue.js';

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
