import type { JobEvents } from '../jobs/events.js';
import { type JobRecord, type JobStatus, isFinished, pauseReason } from '../jobs/model.js';
import type { JsonObject } from '../json.js';
import type { DomainEventType, NotificationPauseReason } from './model.js';

/** A domain event before it has an id and a time. */
export interface DomainEventDraft {
  type: DomainEventType;
  payload: JsonObject;
}

type JobBusEvent = 'job.created' | 'job.updated' | 'job.finished';

/**
 * One row per domain event raised from the job bus: on which bus events it is looked for, and when
 * it applies, given the job as the bus carries it and the status this process last saw it in
 * (undefined: not seen since the start). Rules are tried in order; the first that applies wins.
 * To add an event: add its type to DOMAIN_EVENT_TYPES, then a row here (or, for another bus, a table
 * like this one next to that bus's subscription in notifications/service.ts).
 */
interface JobEventRule {
  type: DomainEventType;
  on: readonly JobBusEvent[];
  applies(job: JobRecord, before: JobStatus | undefined): boolean;
  details?(job: JobRecord): JsonObject;
}

/**
 * A finished status seen for the first time since the start counts as a transition only when the
 * job reached it in this very update (the queue sets finished_at with updated_at), so a later edit of
 * an old job announces nothing.
 */
const reached = (status: JobStatus) => (job: JobRecord, before: JobStatus | undefined) =>
  job.status === status && before !== status && (before !== undefined || job.finishedAt === job.updatedAt);

const pausedBy = (reason: NotificationPauseReason) => () => ({ reason });

const JOB_EVENT_RULES: readonly JobEventRule[] = [
  // The runner puts a job paused by a shutdown back in the queue, so the next start continues it.
  { type: 'job.paused', on: ['job.finished'], applies: (job) => job.status === 'queued', details: pausedBy('shutdown') },
  { type: 'job.queued', on: ['job.created', 'job.updated'], applies: (job, before) => job.status === 'queued' && before !== 'queued' },
  { type: 'job.started', on: ['job.updated'], applies: (job, before) => job.status === 'running' && before !== 'running' && before !== 'verifying' },
  {
    type: 'job.paused',
    on: ['job.finished'],
    applies: (job, before) => job.status === 'paused' && before !== 'paused',
    details: (job) => ({ reason: pauseReason(job) === 'disk_full' ? 'disk_full' : 'user' }),
  },
  { type: 'job.completed_with_errors', on: ['job.finished'], applies: (job, before) => reached('completed')(job, before) && job.badBytes > 0 },
  { type: 'job.completed', on: ['job.finished'], applies: reached('completed') },
  { type: 'job.failed', on: ['job.finished'], applies: reached('failed') },
  { type: 'job.cancelled', on: ['job.finished'], applies: reached('cancelled') },
];

/** What a receiver learns of a job: enough for a message (name, size, duration, bad sectors, the archive entry). */
function jobSummary(job: JobRecord): JsonObject {
  return {
    id: job.id,
    name: job.name,
    status: job.status,
    device_id: job.deviceId,
    output_file: job.outputFile,
    size_bytes: job.sizeBytes,
    bytes_done: job.bytesDone,
    bad_bytes: job.badBytes,
    error_code: job.errorCode,
    error_message: job.errorMessage,
    archive_id: job.archiveId,
    created_at: job.createdAt,
    started_at: job.startedAt,
    finished_at: job.finishedAt,
  };
}

/**
 * Turns the job bus into domain events: remembers the status each job was last seen in, so an update
 * that only moves progress raises nothing.
 */
export function createJobEventMapper(): (source: keyof JobEvents, job: JobRecord) => DomainEventDraft | null {
  const lastSeen = new Map<string, JobStatus>();
  return (source, job) => {
    const before = lastSeen.get(job.id);
    if (isFinished(job.status)) lastSeen.delete(job.id);
    else lastSeen.set(job.id, job.status);
    const rule = JOB_EVENT_RULES.find((candidate) => (candidate.on as readonly string[]).includes(source) && candidate.applies(job, before));
    if (rule === undefined) return null;
    return { type: rule.type, payload: { job: jobSummary(job), ...rule.details?.(job) } };
  };
}
