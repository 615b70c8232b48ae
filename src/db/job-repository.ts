import type { Selectable } from 'kysely';
import { ConflictError, NotFoundError } from '../errors.js';
import type { ImagingPhase } from '../imaging/types.js';
import type { Database } from './database.js';
import {
  ACTIVE_JOB_STATUSES,
  JOB_STATUSES,
  type JobLogsTable,
  type JobPriority,
  type JobStatus,
  type JobsTable,
  type LogLevel,
  type RequestedAction,
} from './schema.js';
import { type Clock, type JsonObject, type ListResult, type SortOrder, fromJson, page, systemClock, timestamp } from './values.js';

/**
 * Imaging options as the API takes them (`read_attempts`, `verify`, `checksums`, …). The job
 * service validates them; this layer stores and returns them unchanged.
 */
export type JobOptions = JsonObject;

export interface JobRecord {
  id: string;
  name: string;
  status: JobStatus;
  priority: JobPriority;
  deviceId: string;
  devicePath: string;
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
  /** How often a worker claimed the job. */
  attempts: number;
  /** A stop another process asked the job's worker for (e.g. the CLI's `stop --all`). */
  requestedAction: RequestedAction | null;
}

export function rowToJob(row: Selectable<JobsTable>): JobRecord {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    priority: row.priority,
    deviceId: row.device_id,
    devicePath: row.device_path,
    outputFile: row.output_file,
    options: fromJson<JobOptions>(row.options),
    phase: row.phase,
    progress: row.progress,
    sizeBytes: row.size_bytes,
    bytesDone: row.bytes_done,
    speedBps: row.speed_bps,
    etaSeconds: row.eta_seconds,
    badBytes: row.bad_bytes,
    errorCount: row.error_count,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    archiveId: row.archive_id,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    seq: row.seq,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    attempts: row.attempts,
    requestedAction: row.requested_action,
  };
}

export interface JobLogRecord {
  id: number;
  jobId: string;
  at: string;
  level: LogLevel;
  message: string;
}

function rowToJobLog(row: Selectable<JobLogsTable>): JobLogRecord {
  return { id: row.id, jobId: row.job_id, at: row.at, level: row.level, message: row.message };
}

export type JobSort = 'created' | 'updated' | 'name';

export interface JobListFilter {
  statuses?: readonly JobStatus[];
  deviceId?: string;
  createdBy?: string;
  /** Default: created, newest first. */
  sort?: JobSort;
  order?: SortOrder;
  limit?: number;
  offset?: number;
}

export interface JobLogFilter {
  /** Only lines after this id (for following a log). */
  afterId?: number;
  limit?: number;
  offset?: number;
}

export interface JobRepository {
  get(id: string): Promise<JobRecord | null>;
  list(filter?: JobListFilter): Promise<ListResult<JobRecord>>;
  countByStatus(): Promise<Record<JobStatus, number>>;
  /** Removes a job that is not running or verifying; its log lines go with it. */
  delete(id: string): Promise<void>;
  appendLog(jobId: string, level: LogLevel, message: string): Promise<JobLogRecord>;
  /** Oldest first. */
  listLogs(jobId: string, filter?: JobLogFilter): Promise<ListResult<JobLogRecord>>;
  /** Deletes job log lines older than `before`; returns how many. */
  pruneLogs(before: Date): Promise<number>;
}

const SORT_COLUMNS = { created: 'created_at', updated: 'updated_at', name: 'name' } as const;

export function createJobRepository(database: Database, options: { now?: Clock } = {}): JobRepository {
  const db = database.kysely;
  const now = options.now ?? systemClock;

  return {
    async get(id) {
      const row = await db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : rowToJob(row);
    },

    async list(filter = {}) {
      const { limit, offset } = page(filter.limit, filter.offset);
      let query = db.selectFrom('jobs');
      if (filter.statuses !== undefined) {
        if (filter.statuses.length === 0) return { items: [], total: 0 };
        query = query.where('status', 'in', filter.statuses);
      }
      if (filter.deviceId !== undefined) query = query.where('device_id', '=', filter.deviceId);
      if (filter.createdBy !== undefined) query = query.where('created_by', '=', filter.createdBy);
      const order = filter.order ?? 'desc';
      const rows = await query
        .selectAll()
        .orderBy(SORT_COLUMNS[filter.sort ?? 'created'], order)
        .orderBy('seq', order)
        .limit(limit)
        .offset(offset)
        .execute();
      const { total } = await query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
      return { items: rows.map(rowToJob), total };
    },

    async countByStatus() {
      const rows = await db
        .selectFrom('jobs')
        .select((eb) => ['status', eb.fn.countAll<number>().as('count')])
        .groupBy('status')
        .execute();
      const counts = Object.fromEntries(JOB_STATUSES.map((status) => [status, 0])) as Record<JobStatus, number>;
      for (const row of rows) counts[row.status] = row.count;
      return counts;
    },

    async delete(id) {
      database.writeTransaction((tx) => {
        const row = tx.first(db.selectFrom('jobs').select('status').where('id', '=', id));
        if (row === undefined) throw new NotFoundError(`Job ${id} not found`, { job_id: id });
        if ((ACTIVE_JOB_STATUSES as readonly JobStatus[]).includes(row.status)) {
          throw new ConflictError(`Job ${id} is ${row.status}; cancel it first`, { job_id: id, status: row.status }, 'job_active');
        }
        tx.run(db.deleteFrom('jobs').where('id', '=', id));
      });
    },

    async appendLog(jobId, level, message) {
      const row = await db
        .insertInto('job_logs')
        .values({ job_id: jobId, at: timestamp(now()), level, message })
        .returningAll()
        .executeTakeFirstOrThrow();
      return rowToJobLog(row);
    },

    async listLogs(jobId, filter = {}) {
      const { limit, offset } = page(filter.limit, filter.offset);
      let query = db.selectFrom('job_logs').where('job_id', '=', jobId);
      if (filter.afterId !== undefined) query = query.where('id', '>', filter.afterId);
      const rows = await query.selectAll().orderBy('id', 'asc').limit(limit).offset(offset).execute();
      const { total } = await query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
      return { items: rows.map(rowToJobLog), total };
    },

    async pruneLogs(before) {
      const result = await db.deleteFrom('job_logs').where('at', '<', timestamp(before)).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
