import type { Selectable } from 'kysely';
import { type Clock, systemClock } from '../clock.js';
import type { JsonObject } from '../json.js';
import type { LogRecord } from '../log.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import type { Database } from './database.js';
import type { LogsTable } from './schema.js';
import { type ListResult, type SortOrder, fromJson, page, timestamp, toJson } from './values.js';

interface AppendLogInput {
  level: LogLevel;
  source: string;
  message: string;
  jobId?: string | null;
  details?: JsonObject | null;
  /** Default: now. */
  at?: Date;
}

interface LogListFilter {
  /** This level and the more severe ones. */
  minLevel?: LogLevel;
  /** at >= since */
  since?: Date;
  jobId?: string;
  /** Only lines after this id (for `logs --follow`). */
  afterId?: number;
  /** Default: desc (newest first). */
  order?: SortOrder;
  limit?: number;
  offset?: number;
}

export interface LogRepository {
  append(input: AppendLogInput): Promise<LogRecord>;
  list(filter?: LogListFilter): Promise<ListResult<LogRecord>>;
  /** Deletes lines older than `before`; returns how many. */
  prune(before: Date): Promise<number>;
}

function rowToLog(row: Selectable<LogsTable>): LogRecord {
  return {
    id: row.id,
    at: row.at,
    level: row.level,
    source: row.source,
    message: row.message,
    jobId: row.job_id,
    details: row.details === null ? null : fromJson<JsonObject>(row.details),
  };
}

export function createLogRepository(database: Database, options: { now?: Clock } = {}): LogRepository {
  const db = database.kysely;
  const now = options.now ?? systemClock;

  return {
    async append(input) {
      const row = await db
        .insertInto('logs')
        .values({
          at: timestamp(input.at ?? now()),
          level: input.level,
          source: input.source,
          message: input.message,
          job_id: input.jobId ?? null,
          details: input.details ? toJson(input.details) : null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return rowToLog(row);
    },

    async list(filter = {}) {
      const { limit, offset } = page(filter.limit, filter.offset);
      let query = db.selectFrom('logs');
      if (filter.minLevel !== undefined) query = query.where('level', 'in', LOG_LEVELS.slice(LOG_LEVELS.indexOf(filter.minLevel)));
      if (filter.since !== undefined) query = query.where('at', '>=', timestamp(filter.since));
      if (filter.jobId !== undefined) query = query.where('job_id', '=', filter.jobId);
      if (filter.afterId !== undefined) query = query.where('id', '>', filter.afterId);
      const rows = await query
        .selectAll()
        .orderBy('id', filter.order ?? 'desc')
        .limit(limit)
        .offset(offset)
        .execute();
      const { total } = await query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
      return { items: rows.map(rowToLog), total };
    },

    async prune(before) {
      const result = await db.deleteFrom('logs').where('at', '<', timestamp(before)).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
