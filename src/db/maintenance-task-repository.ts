import { type Selectable, sql } from 'kysely';
import type { MaintenanceKind, MaintenanceStatus, MaintenanceTaskRecord } from '../archive/maintenance-task.js';
import { type Clock, systemClock } from '../clock.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { JsonObject } from '../json.js';
import { archivesReadableBy } from './archive-placement.js';
import type { Database } from './database.js';
import { isUniqueViolation } from './dialect.js';
import { QUEUE_LOCKS, lockedRows, takeQueueLock } from './row-locks.js';
import type { ArchiveMaintenanceTasksTable } from './schema.js';
import { type ListResult, fromJson, newId, page, timestamp, toJson } from './values.js';

type MaintenanceOutcome =
  | { status: 'completed'; result: JsonObject }
  | { status: 'failed'; errorCode: string; errorMessage: string; result?: JsonObject }
  | { status: 'cancelled' };

/**
 * Stored maintenance tasks, which are also their queue. Only the service runs them, one at a
 * time, so no lease is needed: a task left running by a service that stopped is queued again at
 * its next start. A unique partial index keeps an archive to one queued or running task.
 */
export interface MaintenanceTaskRepository {
  /** ConflictError `maintenance_running` while the archive has a queued or running task. */
  enqueue(input: { kind: MaintenanceKind; archiveId: string | null; params: JsonObject; requestedBy: string | null }): Promise<MaintenanceTaskRecord>;
  get(id: string): Promise<MaintenanceTaskRecord | null>;
  /** Newest first. */
  list(filter: { archiveId?: string; statuses?: readonly MaintenanceStatus[]; limit?: number; offset?: number }): Promise<ListResult<MaintenanceTaskRecord>>;
  /**
   * Takes the oldest queued task and sets it running. With `node` (a cluster node without a shared
   * output folder), only tasks of images it holds or no node holds, and tasks of no image (adoption).
   */
  claimNext(node?: string | null): Promise<MaintenanceTaskRecord | null>;
  /** Stores progress (percent); the row tells whether a cancel was asked for. */
  progress(id: string, percent: number): Promise<MaintenanceTaskRecord | null>;
  finish(id: string, outcome: MaintenanceOutcome): Promise<MaintenanceTaskRecord | null>;
  /** Running tasks go back to the queue (at start, and for the task a stopping service interrupts); returns them. */
  requeueRunning(id?: string): Promise<MaintenanceTaskRecord[]>;
  /** Cancels a queued task at once, marks a running one; a finished one is returned as it is. */
  requestCancel(id: string): Promise<MaintenanceTaskRecord>;
}

function rowToTask(row: Selectable<ArchiveMaintenanceTasksTable>): MaintenanceTaskRecord {
  return {
    id: row.id,
    kind: row.kind,
    archiveId: row.archive_id,
    status: row.status,
    progress: row.progress,
    params: fromJson<JsonObject>(row.params),
    result: row.result === null ? null : fromJson<JsonObject>(row.result),
    requestedBy: row.requested_by,
    cancelRequested: row.cancel_requested === 1,
    attempts: row.attempts,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export function createMaintenanceTaskRepository(database: Database, options: { now?: Clock } = {}): MaintenanceTaskRepository {
  const db = database.kysely;
  const now = options.now ?? systemClock;
  const tasks = () => db.selectFrom('archive_maintenance_tasks');
  const busy = (archiveId: string | null) =>
    new ConflictError('maintenance_running', `${archiveId ?? 'this folder'} has recovery work queued or running already`, { archive_id: archiveId });

  return {
    async enqueue(input) {
      const at = timestamp(now());
      try {
        // Awaited here, so that the catch below sees the unique index's refusal.
        return await database.transaction(async (tx) => {
          if (input.archiveId !== null) {
            const active = await tx.first(tasks().select('id').where('archive_id', '=', input.archiveId).where('status', 'in', ['queued', 'running']));
            if (active !== undefined) throw busy(input.archiveId);
          }
          const row = await tx.first(
            db
              .insertInto('archive_maintenance_tasks')
              .values({
                id: newId('task'),
                kind: input.kind,
                archive_id: input.archiveId,
                status: 'queued',
                progress: 0,
                params: toJson(input.params),
                requested_by: input.requestedBy,
                cancel_requested: 0,
                attempts: 0,
                created_at: at,
                updated_at: at,
              })
              .returningAll(),
          );
          if (row === undefined) throw new Error('the new maintenance task was not stored');
          return rowToTask(row);
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw busy(input.archiveId);
        throw error;
      }
    },

    async get(id) {
      const row = await tasks().selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : rowToTask(row);
    },

    async list(filter) {
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

    async claimNext(node = null) {
      const at = timestamp(now());
      const heldHere = sql<boolean>`(archive_id is null or archive_id in ${archivesReadableBy(node ?? '')})`;
      return database.transaction(async (tx) => {
        // On PostgreSQL one claimer at a time, so no two take the same task (src/db/row-locks.ts).
        await takeQueueLock(database, tx, QUEUE_LOCKS.maintenance);
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
            .updateTable('archive_maintenance_tasks')
            .set((eb) => ({ status: 'running', progress: 0, attempts: eb('attempts', '+', 1), started_at: at, updated_at: at }))
            .where('id', '=', next.id)
            .returningAll(),
        );
        return row === undefined ? null : rowToTask(row);
      });
    },

    async progress(id, percent) {
      const row = await db
        .updateTable('archive_maintenance_tasks')
        .set({ progress: Math.max(0, Math.min(100, percent)), updated_at: timestamp(now()) })
        .where('id', '=', id)
        .where('status', '=', 'running')
        .returningAll()
        .executeTakeFirst();
      return row === undefined ? null : rowToTask(row);
    },

    async finish(id, outcome) {
      const at = timestamp(now());
      const row = await db
        .updateTable('archive_maintenance_tasks')
        .set({
          status: outcome.status,
          progress: outcome.status === 'completed' ? 100 : undefined,
          result: outcome.status === 'cancelled' || outcome.result === undefined ? null : toJson(outcome.result),
          error_code: outcome.status === 'failed' ? outcome.errorCode : null,
          error_message: outcome.status === 'failed' ? outcome.errorMessage : null,
          finished_at: at,
          updated_at: at,
        })
        .where('id', '=', id)
        .where('status', '=', 'running')
        .returningAll()
        .executeTakeFirst();
      return row === undefined ? null : rowToTask(row);
    },

    async requeueRunning(id) {
      const at = timestamp(now());
      let query = db.updateTable('archive_maintenance_tasks').set({ status: 'queued', progress: 0, updated_at: at }).where('status', '=', 'running');
      if (id !== undefined) query = query.where('id', '=', id);
      return (await query.returningAll().execute()).map(rowToTask);
    },

    async requestCancel(id) {
      const at = timestamp(now());
      return database.transaction(async (tx) => {
        const row = await tx.first(lockedRows(database, tasks().selectAll().where('id', '=', id)));
        if (row === undefined) throw new NotFoundError('maintenance_task_not_found', `no task ${id}`, { task_id: id });
        if (row.status !== 'queued' && row.status !== 'running') return rowToTask(row);
        const changes = row.status === 'queued' ? ({ status: 'cancelled', finished_at: at, updated_at: at } as const) : { cancel_requested: 1, updated_at: at };
        const updated = await tx.first(db.updateTable('archive_maintenance_tasks').set(changes).where('id', '=', id).returningAll());
        if (updated === undefined) throw new NotFoundError('maintenance_task_not_found', `no task ${id}`, { task_id: id });
        return rowToTask(updated);
      });
    },
  };
}
