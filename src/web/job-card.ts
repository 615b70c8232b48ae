import type { JobStatus } from '../jobs/model.js';
import type { JobAction } from '../jobs/service.js';
import { type JobView, jobSectorSize as sectorSizeOf } from '../jobs/view.js';
import type { SectorMapView } from './sector-map.js';

/**
 * The colour code of the specification's job cards (green running, blue queued, grey finished, red
 * failed, amber paused), plus amber for an image completed with unreadable, zero-filled sectors.
 */
export type CardTone = 'running' | 'queued' | 'finished' | 'failed' | 'paused' | 'with-errors';

/** What a screen calls a job's state: its status, except that a completed job with bad sectors is its own state. */
export type JobState = JobStatus | 'completed_with_errors';

const TONE: Record<JobStatus, CardTone> = {
  running: 'running',
  verifying: 'running',
  queued: 'queued',
  paused: 'paused',
  completed: 'finished',
  cancelled: 'finished',
  failed: 'failed',
};

/** What a user may do with a job in each state; the job service refuses anything else anyway. */
const ACTIONS: Record<JobStatus, readonly JobAction[]> = {
  queued: ['pause', 'cancel'],
  running: ['pause', 'cancel'],
  verifying: ['pause', 'cancel'],
  paused: ['resume', 'cancel'],
  failed: ['retry'],
  cancelled: ['retry'],
  completed: [],
};

/**
 * Jobs that move on by themselves (queued, running, verifying): a page showing one refreshes itself
 * every 2 seconds without JavaScript (the specification's auto-refresh); with it, the live stream
 * updates the page instead. Paused and finished jobs wait for someone.
 */
export function movesOnItsOwn(job: Pick<JobView, 'status'>): boolean {
  return job.status === 'queued' || job.status === 'running' || job.status === 'verifying';
}

export function jobState(job: Pick<JobView, 'status' | 'outcome'>): JobState {
  return job.outcome === 'with_errors' ? 'completed_with_errors' : job.status;
}

export function cardTone(job: Pick<JobView, 'status' | 'outcome'>): CardTone {
  return job.outcome === 'with_errors' ? 'with-errors' : TONE[job.status];
}

export function jobActions(status: JobStatus): readonly JobAction[] {
  return ACTIONS[status];
}

/** Whether the job's image has bad areas a new run could read again from its rescue map. */
export function canRetryBadAreas(job: Pick<JobView, 'outcome' | 'archive_id'>): boolean {
  return job.outcome === 'with_errors' && job.archive_id !== null;
}

/** Priority only orders jobs that still wait for their drive. */
export function priorityEditable(status: JobStatus): boolean {
  return status === 'queued' || status === 'paused';
}

export function isJobAction(value: unknown): value is JobAction {
  return value === 'pause' || value === 'resume' || value === 'cancel' || value === 'retry';
}

/** The sector size the job's disc reported, for counting bad sectors from bad bytes. */
export function jobSectorSize(job: JobView): number {
  return sectorSizeOf(job.options);
}

export function badSectors(job: JobView): number {
  return Math.ceil(job.bad_bytes / jobSectorSize(job));
}

/** Running jobs first, then paused ones, then the queue in the order it will run. */
export function activeOrder(a: JobView, b: JobView): number {
  const rank = (job: JobView): number => ['running', 'verifying', 'paused', 'queued'].indexOf(job.status);
  return rank(a) - rank(b) || (a.queue_position ?? 0) - (b.queue_position ?? 0) || a.created_at.localeCompare(b.created_at);
}

/** Where a rescue over bad areas stands: the pass among its passes and the bytes the phase still has to read. */
export interface RescuePass {
  pass: number;
  passes: number;
  leftBytes: number;
}

/**
 * For a job trimming, scraping or retrying bad areas, which reads little and slowly, so that speed
 * and time left say nothing: its pass (from the rescue map the engine saves) and what is left.
 * Without a map, what is left comes from the job's own counters.
 */
export function rescuePass(job: JobView, map: SectorMapView | null): RescuePass | null {
  if (job.status !== 'running' || (job.phase !== 'trimming' && job.phase !== 'scraping' && job.phase !== 'retrying')) return null;
  const readAttempts = job.options.read_attempts;
  const passes = job.phase === 'retrying' && readAttempts !== undefined ? Math.max(1, readAttempts) : 1;
  const pass = Math.min(passes, Math.max(1, map?.currentPass ?? 1));
  const unfinished = Math.max(0, (job.size_bytes ?? 0) - job.bytes_done - job.bad_bytes);
  let leftBytes: number;
  if (job.phase === 'retrying') leftBytes = map?.totals.bad ?? job.bad_bytes;
  else if (job.phase === 'scraping') leftBytes = map?.totals.nonscraped ?? unfinished;
  else leftBytes = map === null ? unfinished : map.totals.nontrimmed + map.totals.nonscraped;
  return { pass, passes, leftBytes };
}
