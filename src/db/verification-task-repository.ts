import { type Selectable, type Updateable, sql } from 'kysely';
import type { VerificationOrigin } from '../archive/model.js';
import {
  ACTIVE_VERIFICATION_STATUSES,
  FINISHED_VERIFICATION_STATUSES,
  type FinishedVerificationStatus,
  type VerificationTaskRecord,
  type VerificationTaskStatus,
} from '../archive/verification-task.js';
import { type Clock, systemClock } from '../clock.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';
import type { LeaseHolder } from '../jobs/model.js';
import { archivesReadableBy } from './archive-placement.js';
import type { Database, Executor } from './database.js';
import { isUniqueViolation } from './dialect.js';
import { QUEUE_LOCKS, lockedRows, takeQueueLock } from './row-locks.js';
import type { ArchiveVerificationTasksTable } from './schema.js';
import { type ListResult, fromJson, newId, page, timestamp, toJson } from './values.js';

interface VerificationTaskFilter {
  archiveId?: string;
  statuses?: readonly VerificationTaskStatus[];
  limit?: number;
  offset?: number;
}

interface VerificationTaskProgress {
  bytesDone: number;
  /** The image's size as the run found it. */
  bytesTotal: number;
  speedBps: number | null;
  etaSeconds: number | null;
}

/** How a run ends: the history entry a completed run wrote in the same transaction, or why it did not complete. */
type VerificationTaskOutcome =
  | { status: 'completed'; verificationId: number; ok: boolean }
  | { status: 'failed'; errorCode: string; errorMessage: string }
  | { status: 'cancelled' };

/**
 * The stored verification tasks, which are also their queue (like the jobs table): every decision
 * that reads and then writes runs in one transaction (on PostgreSQL under the verification queue's
 * lock and with its rows read `for update`, src/db/row-locks.ts), so two workers never take the
 * same task, and a unique partial index keeps an archive to one queued or running task.
 */
export interface VerificationTaskRepository {
  /** Queues a task. ConflictError `verification_running` while the archive has a queued or running one. */
  enqueue(input: { archiveId: string; bytesTotal: number; requestedBy: string | null; origin?: VerificationOrigin }): Promise<VerificationTaskRecord>;
  get(id: string): Promise<VerificationTaskRecord | null>;
  /** Newest first. */
  list(filter?: VerificationTaskFilter): Promise<ListResult<VerificationTaskRecord>>;
  /** The queued or running task of each of these archives (all archives when not given). */
  active(archiveIds?: readonly string[]): Promise<VerificationTaskRecord[]>;
  countByStatus(): Promise<Record<VerificationTaskStatus, number>>;
  /**
   * Takes the oldest queued task and sets it running under a lease for `workerId`, unless
   * `maxRunning` tasks run already. Progress starts again from zero: a hash cannot resume.
   */
  claimNext(
    workerId: string,
    claim: {
      leaseMs: number;
      holder: LeaseHolder;
      maxRunning: number;
      /**
       * In a cluster without a shared output folder: this node's name. Only tasks of archives it holds
       * (or that no node holds) are taken, and only their running tasks count against `maxRunning`
       * (each node re-hashes from its own disk). Null or absent: every task, all counted.
       */
      node?: string | null;
    },
  ): Promise<VerificationTaskRecord | null>;
  /** Extends the lease; false when the worker no longer holds the task. */
  heartbeat(id: string, workerId: string, leaseMs: number): Promise<boolean>;
  /** Stores progress of a task the worker holds; the row tells whether a cancel was asked for. Null when it no longer holds it. */
  progress(id: string, workerId: string, progress: VerificationTaskProgress): Promise<VerificationTaskRecord | null>;
  /**
   * Ends the worker's run. A completed run's history entry is written by `record` in the same
   * transaction, so a task never completes without its entry, nor adds one twice. Null (and
   * nothing written) when the worker no longer holds the task.
   */
  finish(id: string, workerId: string, end: (tx: Executor) => Promise<VerificationTaskOutcome>): Promise<VerificationTaskRecord | null>;
  /** Gives a running task back to the queue (the service stops); one whose cancel was asked for ends cancelled. */
  release(id: string, workerId: string): Promise<VerificationTaskRecord | null>;
  /**
   * Cancels a queued task at once; a running one gets `cancelRequested`, which its worker sees.
   * A finished task is returned as it is. NotFoundError for an unknown id.
   */
  requestCancel(id: string): Promise<VerificationTaskRecord>;
  /** Running tasks whose lease ran out, or whose holder `holderGone` says has ended, go back to the queue. */
  recoverExpired(holderGone: (holder: LeaseHolder) => Promise<boolean>): Promise<VerificationTaskRecord[]>;
  /** Deletes finished tasks that ended before `before`; returns how many. */
  pruneFinished(before: Date): Promise<number>;
}

function rowToTask(row: Selectable<ArchiveVerificationTasksTable>): VerificationTaskRecord {
  return {
    id: row.id,
    archiveId: row.archive_id,
    status: row.status,
    bytesDone: row.bytes_done,
    bytesTotal: row.bytes_total,
    speedBps: row.speed_bps === null ? null : Math.round(row.speed_bps),
    etaSeconds: row.eta_seconds === null ? null : Math.round(row.eta_seconds),
    requestedBy: row.requested_by,
    origin: row.origin,
    cancelRequested: row.cancel_requested === 1,
    attempts: row.attempts,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    verificationId: row.verification_id,
    ok: row.ok === null ? null : row.ok === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

/** The columns of a task that leaves its run. */
function leaseReleased(at: string) {
  return { lease_owner: null, lease_expires_at: null, lease_holder: null, speed_bps: null, eta_seconds: null, updated_at: at } as const;
}

function leaseEnd(from: Date, leaseMs: number): string {
  if (!Number.isSafeInteger(leaseMs) || leaseMs <= 0) throw new ValidationError('validation_failed', 'leaseMs must be a positive integer', { leaseMs });
  return timestamp(new Date(from.getTime() + leaseMs));
}

export function createVerificationTaskRepository(database: Database, options: { now?: Clock } = {}): VerificationTaskRepository {
  const db = database.kysely;
  const now = options.now ?? systemClock;
  const tasks = () => db.selectFrom('archive_verification_tasks');
  const heldBy = (id: string, workerId: string) =>
    db.updateTable('archive_verification_tasks').where('id', '=', id).where('lease_owner', '=', workerId).where('status', '=', 'running');

  const runningConflict = (archiveId: string) =>
    new ConflictError('verification_running', `${archiveId} is already being verified or waiting to be`, { archive_id: archiveId });

  const updateHeld = async (
    tx: Executor,
    id: string,
    workerId: string,
    changes: Updateable<ArchiveVerificationTasksTable>,
  ): Promise<VerificationTaskRecord | null> => {
    const row = await tx.first(heldBy(id, workerId).set(changes).returningAll());
    return row === undefined ? null : rowToTask(row);
  };

  /** Ends a run that did not finish while `owner` still holds it: back to the queue, or cancelled when that was asked for. */
  const requeueWithin = async (tx: Executor, id: string, owner: string | null, at: string): Promise<VerificationTaskRecord | null> => {
    const row = await tx.first(
      lockedRows(
        database,
        tasks()
          .select('cancel_requested')
          .where('id', '=', id)
          .where('status', '=', 'running')
          .where((eb) => (owner === null ? eb('lease_owner', 'is', null) : eb('lease_owner', '=', owner))),
      ),
    );
    if (row === undefined) return null;
    const end = row.cancel_requested === 1 ? { status: 'cancelled' as const, finished_at: at } : { status: 'queued' as const, bytes_done: 0 };
    const updated = await tx.first(
      db
        .updateTable('archive_verification_tasks')
        .set({ ...end, ...leaseReleased(at) })
        .where('id', '=', id)
        .returningAll(),
    );
    return updated === undefined ? null : rowToTask(updated);
  };

  return {
    async enqueue(input) {
      const at = timestamp(now());
      try {
        // Awaited here, so that the catch below sees the unique index's refusal.
        return await database.transaction(async (tx) => {
          const running = await tx.first(tasks().select('id').where('archive_id', '=', input.archiveId).where('status', 'in', ACTIVE_VERIFICATION_STATUSES));
          if (running !== undefined) throw runningConflict(input.archiveId);
          const row = await tx.first(
            db
              .insertInto('archive_verification_tasks')
              .values({
                id: newId('verify'),
                archive_id: input.archiveId,
                status: 'queued',
                bytes_done: 0,
                bytes_total: input.bytesTotal,
                requested_by: input.requestedBy,
                origin: input.origin ?? 'manual',
                cancel_requested: 0,
                attempts: 0,
                created_at: at,
                updated_at: at,
              })
              .returningAll(),
          );
          if (row === undefined) throw new Error('the new verification task was not stored');
          return rowToTask(row);
        });
      } catch (error) {
        // Another process queued one between our check and our insert: the index refused the second.
        if (isUniqueViolation(error)) throw runningConflict(input.archiveId);
        throw error;
      }
    },

    async get(id) {
      const row = await tasks().selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : rowToTask(row);
    },

    async list(filter = {}) {
      const { limit, offset } = page(filter.limit, filter.offset);
      let query = tasks();
      if (filter.archiveId !== undefined) query = query.where('archive_id', '=', filter.archiveId);
      if (filter.statuses !== undefined) {
        if (filter.statuses.length === 0) return { items: [], total: 0 };
        query = query.where('status', 'in', filter.statuses);
      }
      const rows = await query.selectAll().orderBy('created_at', 'desc').orderBy(sql`rowid`, 'desc').limit(limit).offset(offset).execute();
      const { total } = await query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
      return { items: rows.map(rowToTask), total };
    },

    async active(archiveIds) {
      if (archiveIds !== undefined && archiveIds.length === 0) return [];
      let query = tasks().selectAll().where('status', 'in', ACTIVE_VERIFICATION_STATUSES);
      if (archiveIds !== undefined) query = query.where('archive_id', 'in', archiveIds);
      return (await query.orderBy('created_at').orderBy(sql`rowid`).execute()).map(rowToTask);
    },

    async countByStatus() {
      const rows = await tasks()
        .select(['status', (eb) => eb.fn.countAll<number>().as('count')])
        .groupBy('status')
        .execute();
      const counts: Record<VerificationTaskStatus, number> = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
      for (const row of rows) counts[row.status] = Number(row.count);
      return counts;
    },

    async claimNext(workerId, claim) {
      const start = now();
      const at = timestamp(start);
      const leaseExpiresAt = leaseEnd(start, claim.leaseMs);
      return database.transaction(async (tx) => {
        // On PostgreSQL the count and the pick are made by one claimer at a time (src/db/row-locks.ts).
        await takeQueueLock(database, tx, QUEUE_LOCKS.verification);
        const node = claim.node ?? null;
        const heldHere = sql<boolean>`archive_id in ${archivesReadableBy(node ?? '')}`;
        const running = await tx.first(
          tasks()
            .select((eb) => eb.fn.countAll<number>().as('count'))
            .where('status', '=', 'running')
            .$if(node !== null, (query) => query.where(heldHere)),
        );
        if ((running?.count ?? 0) >= claim.maxRunning) return null;
        const next = await tx.first(
          lockedRows(
            database,
            tasks()
              .select('id')
              .where('status', '=', 'queued')
              .$if(node !== null, (query) => query.where(heldHere))
              .orderBy('created_at')
              .orderBy(sql`rowid`)
              .limit(1),
          ),
        );
        if (next === undefined) return null;
        const row = await tx.first(
          db
            .updateTable('archive_verification_tasks')
            .set((eb) => ({
              status: 'running',
              bytes_done: 0,
              speed_bps: null,
              eta_seconds: null,
              lease_owner: workerId,
              lease_expires_at: leaseExpiresAt,
              lease_holder: toJson(claim.holder),
              attempts: eb('attempts', '+', 1),
              started_at: at,
              updated_at: at,
            }))
            .where('id', '=', next.id)
            .returningAll(),
        );
        return row === undefined ? null : rowToTask(row);
      });
    },

    async heartbeat(id, workerId, leaseMs) {
      const result = await heldBy(id, workerId)
        .set({ lease_expires_at: leaseEnd(now(), leaseMs) })
        .executeTakeFirst();
      return result.numUpdatedRows === 1n;
    },

    async progress(id, workerId, progress) {
      const row = await heldBy(id, workerId)
        .set({
          bytes_done: progress.bytesDone,
          bytes_total: progress.bytesTotal,
          speed_bps: progress.speedBps,
          eta_seconds: progress.etaSeconds,
          updated_at: timestamp(now()),
        })
        .returningAll()
        .executeTakeFirst();
      return row === undefined ? null : rowToTask(row);
    },

    async finish(id, workerId, end) {
      const at = timestamp(now());
      return database.transaction(async (tx) => {
        // Locked, so no recovery requeues the task between its history entry and its end.
        const held = await tx.first(
          lockedRows(database, tasks().select('id').where('id', '=', id).where('lease_owner', '=', workerId).where('status', '=', 'running')),
        );
        if (held === undefined) return null;
        const outcome = await end(tx);
        const status: FinishedVerificationStatus = outcome.status;
        return updateHeld(tx, id, workerId, {
          status,
          finished_at: at,
          verification_id: outcome.status === 'completed' ? outcome.verificationId : null,
          ok: outcome.status === 'completed' ? (outcome.ok ? 1 : 0) : null,
          error_code: outcome.status === 'failed' ? outcome.errorCode : null,
          error_message: outcome.status === 'failed' ? outcome.errorMessage : null,
          ...leaseReleased(at),
        });
      });
    },

    async release(id, workerId) {
      const at = timestamp(now());
      return database.transaction((tx) => requeueWithin(tx, id, workerId, at));
    },

    async requestCancel(id) {
      const at = timestamp(now());
      return database.transaction(async (tx) => {
        const row = await tx.first(lockedRows(database, tasks().selectAll().where('id', '=', id)));
        if (row === undefined) throw new NotFoundError('verification_task_not_found', `no verification task ${id}`, { task_id: id });
        const changes: Updateable<ArchiveVerificationTasksTable> | null =
          row.status === 'queued'
            ? { status: 'cancelled', finished_at: at, updated_at: at }
            : row.status === 'running' && row.cancel_requested === 0
              ? { cancel_requested: 1, updated_at: at }
              : null;
        if (changes === null) return rowToTask(row);
        const updated = await tx.first(db.updateTable('archive_verification_tasks').set(changes).where('id', '=', id).returningAll());
        if (updated === undefined) throw new NotFoundError('verification_task_not_found', `no verification task ${id}`, { task_id: id });
        return rowToTask(updated);
      });
    },

    async recoverExpired(holderGone) {
      const at = timestamp(now());
      const held = await tasks()
        .select(['id', 'lease_owner', 'lease_holder'])
        .where('status', '=', 'running')
        .where('lease_expires_at', '>=', at)
        .where('lease_holder', 'is not', null)
        .execute();
      const abandoned: Array<{ id: string; owner: string | null }> = [];
      for (const row of held) {
        if (row.lease_owner !== null && row.lease_holder !== null && (await holderGone(fromJson<LeaseHolder>(row.lease_holder)))) {
          abandoned.push({ id: row.id, owner: row.lease_owner });
        }
      }
      return database.transaction(async (tx) => {
        const expired = await tx.all(
          tasks()
            .select(['id', 'lease_owner'])
            .where('status', '=', 'running')
            .where((eb) => eb.or([eb('lease_expires_at', '<', at), eb('lease_expires_at', 'is', null)])),
        );
        // Only while the dead holder still holds it: it may have been released and claimed again meanwhile.
        const requeued: VerificationTaskRecord[] = [];
        for (const { id, owner } of [...expired.map((row) => ({ id: row.id, owner: row.lease_owner })), ...abandoned]) {
          const task = await requeueWithin(tx, id, owner, at);
          if (task !== null) requeued.push(task);
        }
        return requeued;
      });
    },

    async pruneFinished(before) {
      const result = await db
        .deleteFrom('archive_verification_tasks')
        .where('status', 'in', FINISHED_VERIFICATION_STATUSES)
        .where('finished_at', '<', timestamp(before))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
