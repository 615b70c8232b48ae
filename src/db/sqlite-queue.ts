import { type Expression, type ExpressionBuilder, type Selectable, type SqlBool, type Updateable, sql } from 'kysely';
import { type Clock, systemClock } from '../clock.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';
import {
  ACTIVE_JOB_STATUSES,
  FINISHED_JOB_STATUSES,
  type JobRecord,
  type JobStatus,
  type LeaseHolder,
  type RequestedAction,
  isActive,
  isFinished,
  isRequeueable,
} from '../jobs/model.js';
import type { ClaimOptions, JobQueue, ProgressPatch, RecoverOptions } from '../jobs/queue.js';
import type { Database, Executor } from './database.js';
import { isUniqueViolation } from './dialect.js';
import { parseLeaseHolder, priorityRank, readJobOptions, rowToJob } from './job-repository.js';
import { QUEUE_LOCKS, lockedRows as lockedOn, takeQueueLock } from './row-locks.js';
import type { DB, JobsTable } from './schema.js';
import { newId, timestamp, toJson } from './values.js';

/**
 * The job queue of both engines: the jobs table itself is the queue. Every decision that reads and
 * then writes (claiming, stopping, requeueing) runs in one transaction, so workers in other
 * threads, processes or (with PostgreSQL) machines never claim the same job, and a unique partial
 * index on jobs(device_id) backs the one-job-per-drive rule.
 *
 * SQLite runs those transactions one after another (BEGIN IMMEDIATE takes the write lock first).
 * PostgreSQL runs them concurrently under READ COMMITTED, where two claimers would both read the
 * same queued job, the same free drive and the same count of running jobs. There each decision
 * about the queue as a whole (which job runs next, whether a drive is free, how many run, the next
 * seq) first takes one transaction-level advisory lock (takeQueueLock), so those decisions are
 * made one at a time across the cluster exactly as SQLite makes them; each statement after the
 * lock reads what every earlier decision committed. A claim is a few short statements: serialising
 * them costs nothing next to a job's minutes. A per-drive lock would not do: maxRunning and seq are
 * decisions about every drive at once.
 * A row a write then depends on is read `for update` (lockedRow), so a stop or requeue of the same
 * job elsewhere waits instead of writing over a claim from a stale read. Single statements
 * (heartbeat, update, finish, the releases of recoverExpired) need neither: PostgreSQL re-checks an
 * UPDATE's WHERE on the newest version of a row it had to wait for. Should two jobs still become
 * active on one drive, the unique index fails the second commit; that lost race is reported as
 * device_busy (claimNext: no claim), never as two runs.
 *
 * A queue belongs to a node (`nodeId`, null in the embedded mode). A job names the node whose drive
 * it reads (jobs.node_id): a node's queue adds jobs under its own name and claims only them, and
 * other nodes' jobs neither take its drives nor count against its limit, since two nodes' `sr0` are
 * two drives (the unique index is on the node and the drive). A job that names no node (one moved
 * from the embedded database by `disk2iso migrate`) is claimed by the first node that takes it up,
 * which then owns it; while it runs unowned it counts against every node.
 */
/** The columns of a job that leaves its run: no lease, no stop request, no live rate. */
function leaseReleased(at: string) {
  return { lease_owner: null, lease_expires_at: null, lease_holder: null, requested_action: null, speed_bps: null, eta_seconds: null, updated_at: at } as const;
}

/** The columns of a job moved to another drive; one of another node (the cluster) moves it to that node. */
function movedTo(drive: { id: string; path: string; node?: string }) {
  return { device_id: drive.id, device_path: drive.path, ...(drive.node === undefined ? {} : { node_id: drive.node }) };
}

export interface QueueOptions {
  now?: Clock;
  nodeId?: string | null;
  /**
   * Called inside the transaction that makes a job runnable (added, resumed, retried, taken back
   * from a dead run, reopened): the cluster's dispatch sends it to its node there, so the message
   * exists exactly when the commit does.
   */
  onRunnable?: (tx: Executor, job: JobRecord) => Promise<void>;
}

export function createSqliteQueue(database: Database, options: QueueOptions = {}): JobQueue {
  const db = database.kysely;
  const now = options.now ?? systemClock;
  const nodeId = options.nodeId ?? null;
  const announceRunnable = async (tx: Executor, job: JobRecord): Promise<JobRecord> => {
    if (job.status === 'queued') await options.onRunnable?.(tx, job);
    return job;
  };
  /**
   * A job that may be on this node's drives, so one it may claim and one that takes its drive and
   * counts against its limit: its own, or one that names no node (which may run on any node's drive,
   * so it counts against every node, never against none).
   */
  const onThisNode = (column: 'jobs.node_id' | 'active.node_id') =>
    nodeId === null ? sql<SqlBool>`${sql.ref(column)} is null` : sql<SqlBool>`(${sql.ref(column)} = ${nodeId} or ${sql.ref(column)} is null)`;

  const nextSeq = (eb: ExpressionBuilder<DB, 'jobs'>) =>
    eb.selectFrom('jobs as latest').select((inner) => inner(inner.fn.coalesce(inner.fn.max('latest.seq'), inner.lit(0)), '+', 1).as('seq'));
  const queuedInClaimOrder = () =>
    db.selectFrom('jobs').where('status', '=', 'queued').where(onThisNode('jobs.node_id')).orderBy(priorityRank('priority'), 'desc').orderBy('seq', 'asc');

  /** `work` in a transaction that holds the queue's lock on PostgreSQL. */
  const queueTransaction = <T>(work: (tx: Executor) => Promise<T>): Promise<T> =>
    database.transaction(async (tx) => {
      await takeQueueLock(database, tx, QUEUE_LOCKS.jobs);
      return work(tx);
    });
  const lockedRows = <Q extends { forUpdate(): Q }>(query: Q): Q => lockedOn(database, query);
  /** A lost race for the drive, caught by the unique index jobs_one_active_per_device, as the same error the check before it gives. */
  const driveRaceLost = (error: unknown, deviceId: string): unknown =>
    isUniqueViolation(error) ? new ConflictError('device_busy', `${deviceId} is busy with another job`, { device: deviceId }) : error;

  const requireRow = async (tx: Executor, jobId: string): Promise<Selectable<JobsTable>> => {
    const row = await tx.first(lockedRows(db.selectFrom('jobs').selectAll().where('id', '=', jobId)));
    if (row === undefined) throw new NotFoundError('job_not_found', `Job ${jobId} not found`, { job_id: jobId });
    return row;
  };
  const updateRow = async (tx: Executor, jobId: string, changes: Updateable<JobsTable>): Promise<JobRecord> => {
    const row = await tx.first(db.updateTable('jobs').set(changes).where('id', '=', jobId).returningAll());
    if (row === undefined) throw new NotFoundError('job_not_found', `Job ${jobId} not found`, { job_id: jobId });
    return rowToJob(row);
  };

  /** ConflictError `device_busy` while a job other than `exceptJobId` runs on the drive: one job per drive. */
  const assertDriveFree = async (tx: Executor, deviceId: string, exceptJobId: string | null): Promise<void> => {
    let running = db
      .selectFrom('jobs')
      .select(['id', 'name'])
      .where('device_id', '=', deviceId)
      .where('status', 'in', ACTIVE_JOB_STATUSES)
      .where(onThisNode('jobs.node_id'));
    if (exceptJobId !== null) running = running.where('id', '!=', exceptJobId);
    const busy = await tx.first(running);
    if (busy !== undefined) {
      throw new ConflictError('device_busy', `${deviceId} is busy with job ${busy.id} (${busy.name})`, { device: deviceId, job_id: busy.id });
    }
  };

  /** The change a stop request makes to a job, or null when it makes none. */
  const stopChanges = (row: Selectable<JobsTable>, action: RequestedAction, at: string): Updateable<JobsTable> | null => {
    if (isFinished(row.status)) return null;
    if (isActive(row.status)) {
      // A cancel already asked for is not weakened into a pause.
      if (row.requested_action === 'cancel' || row.requested_action === action) return null;
      return { requested_action: action, updated_at: at };
    }
    if (action === 'cancel') return { status: 'cancelled', finished_at: at, updated_at: at };
    return row.status === 'paused' ? null : { status: 'paused', updated_at: at };
  };

  /**
   * Ends the leases of the active jobs `which` picks: each goes back to the queue, or to the stop
   * that was asked for.
   */
  const release = async (tx: Executor, at: string, which: (eb: ExpressionBuilder<DB, 'jobs'>) => Expression<SqlBool>): Promise<JobRecord[]> => {
    const outcomes: Array<{ asked: RequestedAction | null; status: JobStatus }> = [
      { asked: 'cancel', status: 'cancelled' },
      { asked: 'pause', status: 'paused' },
      { asked: null, status: 'queued' },
    ];
    const released: JobRecord[] = [];
    for (const { asked, status } of outcomes) {
      const rows = await tx.all(
        db
          .updateTable('jobs')
          .set({
            status,
            finished_at: status === 'cancelled' ? at : null,
            ...leaseReleased(at),
          })
          .where('status', 'in', ACTIVE_JOB_STATUSES)
          .where(which)
          .where((eb) => (asked === null ? eb('requested_action', 'is', null) : eb('requested_action', '=', asked)))
          .returningAll(),
      );
      released.push(...rows.map(rowToJob));
    }
    return released;
  };

  /** Active jobs under a lease that has not run out, whose holder `holderGone` says has ended. */
  const abandonedLeases = async (at: string, holderGone: (holder: LeaseHolder) => Promise<boolean>): Promise<Array<{ id: string; owner: string }>> => {
    const held = await db
      .selectFrom('jobs')
      .selectAll()
      .where('status', 'in', ACTIVE_JOB_STATUSES)
      .where('lease_expires_at', '>=', at)
      .where('lease_holder', 'is not', null)
      .execute();
    const abandoned: Array<{ id: string; owner: string }> = [];
    for (const job of held.map(rowToJob)) {
      if (job.leaseOwner !== null && job.leaseHolder !== null && (await holderGone(job.leaseHolder))) abandoned.push({ id: job.id, owner: job.leaseOwner });
    }
    return abandoned;
  };

  return {
    async enqueue(input) {
      const start = now();
      const at = timestamp(start);
      const claim = input.claim;
      const lease =
        claim === undefined
          ? { status: 'queued' as const, attempts: 0 }
          : {
              status: 'running' as const,
              attempts: 1,
              started_at: at,
              lease_owner: claim.workerId,
              lease_expires_at: leaseEnd(start, claim.leaseMs),
              lease_holder: claim.holder === undefined ? null : toJson(claim.holder),
            };
      const insert = db
        .insertInto('jobs')
        .values((eb) => ({
          id: newId('job'),
          name: input.name,
          priority: input.priority ?? 'normal',
          device_id: input.deviceId,
          device_path: input.devicePath,
          node_id: input.nodeId ?? nodeId,
          output_file: input.outputFile,
          options: toJson(input.options ?? {}),
          phase: null,
          progress: 0,
          size_bytes: input.sizeBytes ?? null,
          bytes_done: 0,
          bad_bytes: 0,
          error_count: 0,
          created_by: input.createdBy ?? null,
          created_at: at,
          updated_at: at,
          seq: nextSeq(eb),
          ...lease,
        }))
        .returningAll();
      try {
        return await queueTransaction(async (tx) => {
          if (claim !== undefined) await assertDriveFree(tx, input.deviceId, null);
          const row = await tx.first(insert);
          if (row === undefined) throw new Error('the new job was not stored');
          return announceRunnable(tx, rowToJob(row));
        });
      } catch (error) {
        throw claim === undefined ? error : driveRaceLost(error, input.deviceId);
      }
    },

    async get(jobId) {
      const row = await db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
      return row === undefined ? null : rowToJob(row);
    },

    async claimNext(workerId, claim) {
      const start = now();
      const leaseExpiresAt = leaseEnd(start, claim.leaseMs);
      const at = timestamp(start);
      checkMaxRunning(claim);
      const claimed = queueTransaction(async (tx) => {
        if (claim.maxRunning !== undefined) {
          const active = await tx.first(
            db
              .selectFrom('jobs')
              .select((eb) => eb.fn.countAll<number>().as('count'))
              .where('status', 'in', ACTIVE_JOB_STATUSES)
              .where(onThisNode('jobs.node_id')),
          );
          if ((active?.count ?? 0) >= claim.maxRunning) return null;
        }
        let candidates = queuedInClaimOrder().where('device_id', 'not in', (eb) =>
          eb.selectFrom('jobs as active').select('active.device_id').where('active.status', 'in', ACTIVE_JOB_STATUSES).where(onThisNode('active.node_id')),
        );
        const busy = claim.busyDeviceIds ?? [];
        if (busy.length > 0) candidates = candidates.where('device_id', 'not in', busy);
        const next = await tx.first(lockedRows(candidates.select('id').limit(1)));
        if (next === undefined) return null;
        const row = await tx.first(
          db
            .updateTable('jobs')
            .set((eb) => ({
              status: 'running',
              node_id: nodeId,
              lease_owner: workerId,
              lease_expires_at: leaseExpiresAt,
              lease_holder: claim.holder === undefined ? null : toJson(claim.holder),
              started_at: eb.fn.coalesce('started_at', eb.val(at)),
              attempts: eb('attempts', '+', 1),
              requested_action: null,
              updated_at: at,
            }))
            .where('id', '=', next.id)
            .returningAll(),
        );
        return row === undefined ? null : rowToJob(row);
      });
      // A drive another claim took first: this claim takes nothing, as when no job was queued.
      return claimed.catch((error: unknown) => {
        if (isUniqueViolation(error)) return null;
        throw error;
      });
    },

    async claimJob(jobId, workerId, claim) {
      const start = now();
      const at = timestamp(start);
      const leaseExpiresAt = leaseEnd(start, claim.leaseMs);
      return queueTransaction(async (tx) => {
        const row = await requireRow(tx, jobId);
        if (row.status !== 'queued' && !isRequeueable(row.status)) {
          throw new ConflictError('invalid_state', `Job ${jobId} is ${row.status} and cannot be taken up`, { job_id: jobId, status: row.status });
        }
        if (row.node_id !== null && row.node_id !== nodeId) {
          throw new ConflictError('invalid_state', `Job ${jobId} reads a drive of node ${row.node_id}; only that node can take it up`, {
            job_id: jobId,
            status: row.status,
          });
        }
        const deviceId = claim.drive?.id ?? row.device_id;
        await assertDriveFree(tx, deviceId, jobId);
        const claimed = updateRow(tx, jobId, {
          ...(claim.drive === undefined ? {} : movedTo(claim.drive)),
          status: 'running',
          node_id: nodeId,
          lease_owner: workerId,
          lease_expires_at: leaseExpiresAt,
          lease_holder: claim.holder === undefined ? null : toJson(claim.holder),
          started_at: row.started_at ?? at,
          attempts: row.attempts + 1,
          requested_action: null,
          error_code: null,
          error_message: null,
          finished_at: null,
          updated_at: at,
        });
        // The transaction rolls back either way; the error says why.
        return claimed.catch((error: unknown) => {
          throw driveRaceLost(error, deviceId);
        });
      });
    },

    async announceWorker(workerId, holder) {
      const start = now();
      const at = timestamp(start);
      // Rows of services that died without signing off (kill -9, power loss) would pile up otherwise.
      await db
        .deleteFrom('job_workers')
        .where('seen_at', '<', timestamp(new Date(start.getTime() - FORGOTTEN_WORKER_MS)))
        .execute();
      await db
        .insertInto('job_workers')
        .values({ id: workerId, holder: toJson(holder), started_at: at, seen_at: at })
        .onConflict((conflict) => conflict.column('id').doUpdateSet({ seen_at: at }))
        .execute();
    },

    async forgetWorker(workerId) {
      await db.deleteFrom('job_workers').where('id', '=', workerId).execute();
    },

    async liveWorkers({ staleMs, holderGone }) {
      const since = timestamp(new Date(now().getTime() - staleMs));
      const rows = await db.selectFrom('job_workers').selectAll().where('seen_at', '>=', since).orderBy('started_at').execute();
      const live: Array<{ id: string; holder: LeaseHolder }> = [];
      for (const row of rows) {
        // A holder this version cannot read cannot be checked, so it does not count as a running service.
        const holder = parseLeaseHolder(row.holder);
        if (holder !== null && !(await holderGone(holder))) live.push({ id: row.id, holder });
      }
      return live;
    },

    async heartbeat(jobId, workerId, leaseMs) {
      const leaseExpiresAt = leaseEnd(now(), leaseMs);
      const result = await db
        .updateTable('jobs')
        .set({ lease_expires_at: leaseExpiresAt })
        .where('id', '=', jobId)
        .where('lease_owner', '=', workerId)
        .where('status', 'in', ACTIVE_JOB_STATUSES)
        .executeTakeFirst();
      return result.numUpdatedRows === 1n;
    },

    async update(jobId, workerId, patch) {
      const row = await db
        .updateTable('jobs')
        .set({ ...progressColumns(patch), ...(patch.status === undefined ? {} : { status: patch.status }), updated_at: timestamp(now()) })
        .where('id', '=', jobId)
        .where('lease_owner', '=', workerId)
        .where('status', 'in', ACTIVE_JOB_STATUSES)
        .returningAll()
        .executeTakeFirst();
      return row === undefined ? null : rowToJob(row);
    },

    async finish(jobId, workerId, status, patch = {}) {
      const at = timestamp(now());
      return database.transaction(async (tx) => {
        const row = await tx.first(
          db
            .updateTable('jobs')
            .set({
              ...progressColumns(patch),
              ...(patch.errorCode === undefined ? {} : { error_code: patch.errorCode }),
              ...(patch.errorMessage === undefined ? {} : { error_message: patch.errorMessage }),
              ...(patch.archiveId === undefined ? {} : { archive_id: patch.archiveId }),
              status,
              finished_at: status === 'paused' ? null : at,
              ...leaseReleased(at),
            })
            .where('id', '=', jobId)
            .where('lease_owner', '=', workerId)
            .where('status', 'in', ACTIVE_JOB_STATUSES)
            .returningAll(),
        );
        if (row !== undefined) return rowToJob(row);
        const current = await requireRow(tx, jobId);
        throw new ConflictError('lease_lost', `Worker ${workerId} no longer holds job ${jobId}`, {
          job_id: jobId,
          status: current.status,
          lease_owner: current.lease_owner,
        });
      });
    },

    async recoverExpired(options: RecoverOptions = {}) {
      const at = timestamp(now());
      const abandoned = options.holderGone === undefined ? [] : await abandonedLeases(at, options.holderGone);
      return database.transaction(async (tx) => {
        const released = await release(tx, at, (eb) => eb.or([eb('lease_expires_at', '<', at), eb('lease_expires_at', 'is', null)]));
        // Only while the dead holder still holds it: it may have been released and claimed again meanwhile.
        for (const { id, owner } of abandoned) released.push(...(await release(tx, at, (eb) => eb.and([eb('id', '=', id), eb('lease_owner', '=', owner)]))));
        for (const job of released) await announceRunnable(tx, job);
        return released;
      });
    },

    async positions() {
      // Every node's line, not only this queue's: a web instance shows where each worker's jobs wait.
      const rows = await db
        .selectFrom('jobs')
        .select(['id', 'node_id'])
        .where('status', '=', 'queued')
        .orderBy(priorityRank('priority'), 'desc')
        .orderBy('seq', 'asc')
        .execute();
      const placesTaken = new Map<string | null, number>();
      return new Map(
        rows.map((row) => {
          const place = (placesTaken.get(row.node_id) ?? 0) + 1;
          placesTaken.set(row.node_id, place);
          return [row.id, place];
        }),
      );
    },

    async setPriority(jobId, priority) {
      const at = timestamp(now());
      return database.transaction(async (tx) => {
        const row = await requireRow(tx, jobId);
        if (isFinished(row.status)) throw finishedError(row);
        return updateRow(tx, jobId, { priority, updated_at: at });
      });
    },

    async requestStop(jobId, action) {
      const at = timestamp(now());
      return database.transaction(async (tx) => {
        const row = await requireRow(tx, jobId);
        if (isFinished(row.status)) throw finishedError(row);
        const changes = stopChanges(row, action, at);
        return changes === null ? rowToJob(row) : await updateRow(tx, jobId, changes);
      });
    },

    async requestStopAll(action) {
      const at = timestamp(now());
      return database.transaction(async (tx) => {
        const rows = await tx.all(lockedRows(db.selectFrom('jobs').selectAll().where('status', 'not in', FINISHED_JOB_STATUSES).orderBy('seq')));
        const stopped: JobRecord[] = [];
        for (const row of rows) {
          const changes = stopChanges(row, action, at);
          if (changes !== null) stopped.push(await updateRow(tx, row.id, changes));
        }
        return stopped;
      });
    },

    async requeue(jobId, options = {}) {
      const at = timestamp(now());
      const drive = options.drive === undefined ? {} : movedTo(options.drive);
      return queueTransaction(async (tx) => {
        const row = await requireRow(tx, jobId);
        if (row.status === 'queued') return options.drive === undefined ? rowToJob(row) : await updateRow(tx, jobId, { ...drive, updated_at: at });
        if (!isRequeueable(row.status)) {
          throw new ConflictError('invalid_state', `Job ${jobId} is ${row.status} and cannot be queued again`, { job_id: jobId, status: row.status });
        }
        const requeued = await tx.first(
          db
            .updateTable('jobs')
            .set((eb) => ({
              ...drive,
              status: 'queued',
              seq: nextSeq(eb),
              requested_action: null,
              error_code: null,
              error_message: null,
              finished_at: null,
              speed_bps: null,
              eta_seconds: null,
              updated_at: at,
            }))
            .where('id', '=', jobId)
            .returningAll(),
        );
        if (requeued === undefined) throw new NotFoundError('job_not_found', `Job ${jobId} not found`, { job_id: jobId });
        return announceRunnable(tx, rowToJob(requeued));
      });
    },

    async mergeOptions(jobId, patch) {
      const at = timestamp(now());
      return database.transaction(async (tx) => {
        const row = await requireRow(tx, jobId);
        return updateRow(tx, jobId, { options: toJson({ ...readJobOptions(row), ...patch }), updated_at: at });
      });
    },

    async reopenCompleted(jobId, patch) {
      const at = timestamp(now());
      return queueTransaction(async (tx) => {
        const row = await requireRow(tx, jobId);
        if (row.status !== 'completed') {
          throw new ConflictError('invalid_state', `Job ${jobId} is ${row.status}, not completed`, { job_id: jobId, status: row.status });
        }
        const reopened = await tx.first(
          db
            .updateTable('jobs')
            .set((eb) => ({
              status: 'queued',
              seq: nextSeq(eb),
              options: toJson({ ...readJobOptions(row), ...patch }),
              requested_action: null,
              finished_at: null,
              phase: null,
              speed_bps: null,
              eta_seconds: null,
              updated_at: at,
            }))
            .where('id', '=', jobId)
            .returningAll(),
        );
        if (reopened === undefined) throw new NotFoundError('not_found', `Job ${jobId} not found`, { job_id: jobId });
        return announceRunnable(tx, rowToJob(reopened));
      });
    },
  };
}

/** A worker not seen for this long is gone for good: it renews its row every third of a lease (at most 20 minutes). */
const FORGOTTEN_WORKER_MS = 24 * 60 * 60 * 1000;

function finishedError(row: Selectable<JobsTable>): ConflictError {
  return new ConflictError('invalid_state', `Job ${row.id} is already ${row.status}`, { job_id: row.id, status: row.status });
}

function leaseEnd(from: Date, leaseMs: number): string {
  if (!Number.isSafeInteger(leaseMs) || leaseMs <= 0) throw new ValidationError('validation_failed', 'leaseMs must be a positive integer', { leaseMs });
  return timestamp(new Date(from.getTime() + leaseMs));
}

function checkMaxRunning(claim: ClaimOptions): void {
  if (claim.maxRunning !== undefined && (!Number.isSafeInteger(claim.maxRunning) || claim.maxRunning < 1)) {
    throw new ValidationError('validation_failed', 'maxRunning must be a positive integer', { maxRunning: claim.maxRunning });
  }
}

function progressColumns(patch: Omit<ProgressPatch, 'status'>): Updateable<JobsTable> {
  const columns: Updateable<JobsTable> = {};
  if (patch.phase !== undefined) columns.phase = patch.phase;
  if (patch.progress !== undefined) columns.progress = patch.progress;
  if (patch.sizeBytes !== undefined) columns.size_bytes = patch.sizeBytes;
  if (patch.bytesDone !== undefined) columns.bytes_done = patch.bytesDone;
  if (patch.speedBps !== undefined) columns.speed_bps = patch.speedBps;
  if (patch.etaSeconds !== undefined) columns.eta_seconds = patch.etaSeconds;
  if (patch.badBytes !== undefined) columns.bad_bytes = patch.badBytes;
  if (patch.errorCount !== undefined) columns.error_count = patch.errorCount;
  if (patch.outputFile !== undefined) columns.output_file = patch.outputFile;
  return columns;
}
