import type { LogRepository } from '../db/log-repository.js';
import type { JobEventBus } from '../jobs/events.js';
import { needsAttention } from '../jobs/model.js';
import type { JsonObject } from '../json.js';
import { type LogLevel, type LogRecord, type Logger, PINO_LEVEL } from '../log.js';

/**
 * The application log behind GET /api/v1/logs: service events (start, stop, server errors,
 * setting changes, archive deletions) and a mirror of every job log line and job state change
 * published on the event bus. A job's complete own log stays at /api/v1/jobs/{id}/logs.
 */
export interface EventLog {
  /** Writes to the process log at once and to the logs table in the background; never throws. */
  record(entry: EventEntry): void;
  list(query: EventLogQuery): Promise<{ logs: LogView[]; total: number; limit: number; offset: number }>;
  /** Mirrors job events into the log until the returned function is called. */
  follow(events: JobEventBus): () => void;
  /** Resolves once every recorded line is stored (before the database closes). */
  flush(): Promise<void>;
}

interface EventEntry {
  level: LogLevel;
  source: string;
  message: string;
  jobId?: string | null;
  details?: JsonObject | null;
}

interface EventLogQuery {
  minLevel?: LogLevel | undefined;
  since?: Date | undefined;
  jobId?: string | undefined;
  limit: number;
  offset: number;
}

interface LogView {
  id: number;
  at: string;
  level: LogLevel;
  source: string;
  message: string;
  job_id: string | null;
  details: JsonObject | null;
}

function toLogView(record: LogRecord): LogView {
  return { id: record.id, at: record.at, level: record.level, source: record.source, message: record.message, job_id: record.jobId, details: record.details };
}

export function createEventLog(deps: { logs: LogRepository; log: Logger }): EventLog {
  const { logs, log } = deps;
  let pending: Promise<unknown> = Promise.resolve();

  const record = (entry: EventEntry): void => {
    log[PINO_LEVEL[entry.level]]({ source: entry.source, jobId: entry.jobId ?? undefined, ...entry.details }, entry.message);
    // Lines are written one after another so the table keeps their order.
    pending = pending
      .then(() => logs.append({ level: entry.level, source: entry.source, message: entry.message, jobId: entry.jobId ?? null, details: entry.details ?? null }))
      .catch((error: unknown) => log.error({ err: error }, 'could not store a log line'));
  };

  return {
    record,

    async list(query) {
      const { items, total } = await logs.list({
        ...(query.minLevel === undefined ? {} : { minLevel: query.minLevel }),
        ...(query.since === undefined ? {} : { since: query.since }),
        ...(query.jobId === undefined ? {} : { jobId: query.jobId }),
        limit: query.limit,
        offset: query.offset,
      });
      return { logs: items.map(toLogView), total, limit: query.limit, offset: query.offset };
    },

    follow(events) {
      const stops = [
        events.on('job.log', ({ jobId, level, message }) => record({ level, source: 'job', message, jobId })),
        events.on('job.created', ({ job }) =>
          record({ level: 'info', source: 'jobs', message: `job ${job.id} created: ${job.name} on ${job.deviceId}`, jobId: job.id }),
        ),
        events.on('job.finished', ({ job }) => {
          // A job that waits for someone stands out from the routine ends: failed as an error, the others as warnings.
          const attention = needsAttention(job);
          const level = job.status === 'failed' ? 'error' : attention ? 'warning' : 'info';
          const reason = !attention ? '' : job.errorMessage ? `: ${job.errorMessage}` : job.badBytes > 0 ? ` with ${job.badBytes} unreadable bytes` : '';
          record({ level, source: 'jobs', message: `job ${job.id} is ${job.status}${reason}`, jobId: job.id });
        }),
        events.on('job.removed', ({ jobId }) => record({ level: 'info', source: 'jobs', message: `job ${jobId} removed`, jobId })),
      ];
      return () => {
        for (const stop of stops) stop();
      };
    },

    async flush() {
      await pending;
    },
  };
}
