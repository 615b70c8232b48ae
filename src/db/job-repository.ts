import { type RawBuilder, type SelectQueryBuilder, type Selectable, sql } from 'kysely';
import { Compile } from 'typebox/compile';
import { type Clock, systemClock } from '../clock.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';
import {
  FINISHED_JOB_STATUSES,
  JOB_STATUSES,
  type JobLogRecord,
  type JobOptions,
  JobOptionsSchema,
  type JobPriority,
  type JobRecord,
  type JobStatus,
  type LeaseHolder,
  isActive,
} from '../jobs/model.js';
import type { LogLevel } from '../log.js';
import type { Database } from './database.js';
import type { DB, JobLogsTable, JobsTable } from './schema.js';
import { changeCounterReader } from './table-versions.js';
import { CorruptRowError, type ListResult, type SortOrder, page, parseJson, timestamp } from './values.js';

const jobOptions = Compile(JobOptionsSchema);

/** The options column of a job, checked against the options a job may hold. */
export function readJobOptions(row: Pick<JobRow, 'id' | 'options'>): JobOptions {
  const value = parseJson(row.options, () => new CorruptRowError('job', row.id, 'options', 'not JSON'));
  if (jobOptions.Check(value)) return value;
  const [first] = jobOptions.Errors(value);
  // A key no option has fails as a `false` schema, whose own message ("schema is false") says nothing.
  const problem =
    first === undefined
      ? 'not valid'
      : first.keyword === 'boolean'
        ? `${first.instancePath} is not an option`
        : `${first.instancePath || 'the value'} ${first.message}`;
  throw new CorruptRowError('job', row.id, 'options', problem);
}

export function rowToJob(row: JobRow): JobRecord {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    priority: row.priority,
    deviceId: row.device_id,
    devicePath: row.device_path,
    nodeId: row.node_id,
    outputFile: row.output_file,
    options: readJobOptions(row),
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
    leaseHolder: row.lease_holder === null ? null : parseLeaseHolder(row.lease_holder),
    attempts: row.attempts,
    requestedAction: row.requested_action,
  };
}

/** Null for a value that is not a holder's full description (written by a later or broken version): it cannot be checked. */
export function parseLeaseHolder(text: string): LeaseHolder | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { host, bootId, pidNamespace, pid, startTicks } = value as Record<string, unknown>;
  if (typeof host !== 'string' || typeof bootId !== 'string' || typeof pidNamespace !== 'string') return null;
  if (!Number.isSafeInteger(pid) || !Number.isSafeInteger(startTicks)) return null;
  return { host, bootId, pidNamespace, pid: pid as number, startTicks: startTicks as number };
}

function rowToJobLog(row: Selectable<JobLogsTable>): JobLogRecord {
  return { id: row.id, jobId: row.job_id, at: row.at, level: row.level, message: row.message };
}

type JobSort = 'created' | 'updated' | 'name';

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

interface JobLogFilter {
  /** Only lines after this id (for following a log). */
  afterId?: number;
  limit?: number;
  offset?: number;
}

/** A page of jobs with the queue position of each queued job on it (1 = the next to be claimed). */
interface JobPage extends ListResult<JobRecord> {
  positions: Map<string, number>;
}

export interface JobRepository {
  get(id: string): Promise<JobRecord | null>;
  /** The newest job writing `outputFile`, or null: running `disk2iso create --output` again continues that job. */
  latestForOutput(outputFile: string): Promise<JobRecord | null>;
  /** The image files jobs that have not finished will write: a new job never takes one. */
  unfinishedOutputFiles(): Promise<Set<string>>;
  list(filter?: JobListFilter): Promise<ListResult<JobRecord>>;
  /**
   * `list` plus queue positions, read in the same statement as the page so both show one state of
   * the queue. A page without queued jobs costs what `list` costs; otherwise the positions cost at
   * most two passes over the queued jobs' index entries, however deep in the queue the page lies.
   */
  listWithQueuePositions(filter?: JobListFilter): Promise<JobPage>;
  /** The job's queue position, or null when it is not queued. */
  queuePosition(id: string): Promise<number | null>;
  /**
   * The jobs table's change counter (migration 0004): raised by every insert, update and delete of
   * a job, through any connection. While it stays the same, every job reads the same, so a result
   * read after the counter was taken is still current.
   */
  version(): Promise<number>;
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

/** Higher priorities are claimed first; the CASE below is built from this table so no priority is left out. */
const PRIORITY_RANK: Record<JobPriority, number> = { low: 0, normal: 1, high: 2 };

/**
 * The rank of a priority column, for ordering the queue: the queue claims by this rank
 * (descending), then by seq (ascending), and positions are counted in the same order. Literals,
 * not parameters, so the statement text stays the same for every call.
 */
export function priorityRank(column: string): RawBuilder<number> {
  const branches = Object.entries(PRIORITY_RANK).map(([priority, rank]) => sql`when ${sql.lit(priority)} then ${sql.lit(rank)}`);
  return sql<number>`(case ${sql.ref(column)} ${sql.join(branches, sql` `)} end)`;
}

/** The priorities some other priority ranks below: counting queued jobs ahead never needs the lowest. */
const OUTRANKING_PRIORITIES = sql`(${sql.join(
  Object.entries(PRIORITY_RANK)
    .filter(([, rank]) => rank > Math.min(...Object.values(PRIORITY_RANK)))
    .map(([priority]) => sql.lit(priority)),
)})`;

type JobRow = Selectable<JobsTable>;
type PageRow = JobRow & { total_count: number };
type PositionedRow = PageRow & { queue_position: number | null };

export function createJobRepository(database: Database, options: { now?: Clock } = {}): JobRepository {
  const db = database.kysely;
  const now = options.now ?? systemClock;

  const filtered = (filter: JobListFilter): SelectQueryBuilder<DB, 'jobs', object> => {
    let query = db.selectFrom('jobs');
    if (filter.statuses !== undefined) query = query.where('status', 'in', filter.statuses);
    if (filter.deviceId !== undefined) query = query.where('device_id', '=', filter.deviceId);
    if (filter.createdBy !== undefined) query = query.where('created_by', '=', filter.createdBy);
    return query;
  };

  /** One page and the total in one statement, so the total counts the rows the page came from. */
  const pageQuery = (filter: JobListFilter) => {
    const { limit, offset } = page(filter.limit, filter.offset);
    const order = sortOrder(filter.order);
    return (
      filtered(filter)
        .selectAll()
        .select(() =>
          filtered(filter)
            .select((eb) => eb.fn.countAll<number>().as('count'))
            .as('total_count'),
        )
        // A count is never null, though a scalar subquery could be in general.
        .$narrowType<{ total_count: number }>()
        .orderBy(SORT_COLUMNS[filter.sort ?? 'created'], order)
        .orderBy('seq', order)
        .limit(limit)
        .offset(offset)
    );
  };

  /** A page past the last row has no row to carry the total, which then takes its own count. */
  const totalOf = async (rows: PageRow[], filter: JobListFilter): Promise<number> => {
    const first = rows[0];
    if (first !== undefined) return first.total_count;
    if ((filter.offset ?? 0) === 0) return 0;
    const { count } = await filtered(filter)
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .executeTakeFirstOrThrow();
    return count;
  };

  const readPage = async (filter: JobListFilter): Promise<JobPage> => {
    const query = pageQuery(filter);
    if (filter.statuses?.length === 0) return { items: [], total: 0, positions: new Map() };
    const rows: PageRow[] = await query.execute();
    return { items: rows.map(rowToJob), total: await totalOf(rows, filter), positions: new Map() };
  };

  /**
   * The page again, with positions. A queued job's place among the queued jobs of its priority
   * is counted only from the previous queued job of that priority on the page (its place is then
   * the running sum), so each queued job's index entry is visited at most once; the jobs of
   * higher priorities are counted once per priority.
   */
  const readPageWithPositions = async (filter: JobListFilter): Promise<JobPage> => {
    const order = sql.raw(sortOrder(filter.order));
    const sortColumn = sql.ref(`page.${SORT_COLUMNS[filter.sort ?? 'created']}`);
    const { rows } = await sql<PositionedRow>`
      with page as materialized ${pageQuery(filter)},
      queued_on_page as (
        select id, priority, seq, coalesce(node_id, '') as node_key,
          lag(seq, 1, 0) over (partition by coalesce(node_id, ''), priority order by seq) as previous_seq
        from page where status = 'queued'
      ),
      placed as (
        select id, priority, node_key, sum(1 + (
          select count(*) from jobs as between_jobs
          where between_jobs.status = 'queued' and between_jobs.priority = queued_on_page.priority
            and coalesce(between_jobs.node_id, '') = queued_on_page.node_key
            and between_jobs.seq > queued_on_page.previous_seq and between_jobs.seq < queued_on_page.seq
        )) over (partition by node_key, priority order by seq) as place
        from queued_on_page
      ),
      queued_by_priority as materialized (
        select coalesce(node_id, '') as node_key, priority, count(*) as count from jobs
        where status = 'queued' and priority in ${OUTRANKING_PRIORITIES} group by coalesce(node_id, ''), priority
      )
      select page.*, placed.place + (
        select coalesce(sum(count), 0) from queued_by_priority
        where queued_by_priority.node_key = placed.node_key
          and ${priorityRank('queued_by_priority.priority')} > ${priorityRank('placed.priority')}
      ) as queue_position
      from page left join placed on placed.id = page.id
      order by ${sortColumn} ${order}, page.seq ${order}`.execute(db);
    const positions = new Map<string, number>();
    for (const row of rows) if (row.queue_position !== null) positions.set(row.id, row.queue_position);
    return { items: rows.map(rowToJob), total: await totalOf(rows, filter), positions };
  };

  return {
    async get(id) {
      const row = await db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : rowToJob(row);
    },

    async latestForOutput(outputFile) {
      const row = await db.selectFrom('jobs').selectAll().where('output_file', '=', outputFile).orderBy('seq', 'desc').limit(1).executeTakeFirst();
      return row === undefined ? null : rowToJob(row);
    },

    async unfinishedOutputFiles() {
      const rows = await db.selectFrom('jobs').select('output_file').where('status', 'not in', FINISHED_JOB_STATUSES).execute();
      return new Set(rows.map((row) => row.output_file));
    },

    async list(filter = {}) {
      const { items, total } = await readPage(filter);
      return { items, total };
    },

    async listWithQueuePositions(filter = {}) {
      const first = await readPage(filter);
      if (!first.items.some((job) => job.status === 'queued')) return first;
      // The positions must describe the same queue as the page, so the page is read again
      // together with them in one statement rather than paired with a later count.
      return readPageWithPositions(filter);
    },

    async queuePosition(id) {
      const { rows } = await sql<{ position: number | null }>`
        select case when job.status = 'queued' then 1 + (
          select count(*) from jobs as ahead
          where ahead.status = 'queued' and ahead.priority = job.priority and ahead.seq < job.seq
            and coalesce(ahead.node_id, '') = coalesce(job.node_id, '')
        ) + (
          select count(*) from jobs as ahead
          where ahead.status = 'queued' and ahead.priority in ${OUTRANKING_PRIORITIES}
            and ${priorityRank('ahead.priority')} > ${priorityRank('job.priority')}
            and coalesce(ahead.node_id, '') = coalesce(job.node_id, '')
        ) end as position
        from jobs as job where job.id = ${id}`.execute(db);
      return rows[0]?.position ?? null;
    },

    version: changeCounterReader(db, 'jobs'),

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
      await database.transaction(async (tx) => {
        const row = await tx.first(db.selectFrom('jobs').select('status').where('id', '=', id));
        if (row === undefined) throw new NotFoundError('job_not_found', `Job ${id} not found`, { job_id: id });
        if (isActive(row.status)) {
          throw new ConflictError('job_active', `Job ${id} is ${row.status}; cancel it first`, { job_id: id, status: row.status });
        }
        await tx.run(db.deleteFrom('jobs').where('id', '=', id));
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

/** Checked because it is written into SQL as a keyword. */
function sortOrder(order: SortOrder | undefined): SortOrder {
  if (order === undefined) return 'desc';
  if (order !== 'asc' && order !== 'desc') throw new ValidationError('validation_failed', 'order must be asc or desc', { order });
  return order;
}
