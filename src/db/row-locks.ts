import { sql } from 'kysely';
import type { Database, Executor } from './database.js';

/**
 * What a transaction that reads and then writes needs on PostgreSQL to decide as it does on
 * SQLite. SQLite runs write transactions one after another (BEGIN IMMEDIATE takes the write lock
 * first), so what one read stays true until it commits. PostgreSQL runs them concurrently under
 * READ COMMITTED: two transactions can read the same queued row, the same count of running tasks,
 * and both act on it. Both helpers do nothing on SQLite.
 */

/**
 * Keys of the transaction-level advisory locks, one per queue; src/db/postgres.ts's migration
 * lock (0x6469736b) has a key of its own.
 */
export const QUEUE_LOCKS = {
  jobs: 0x6a6f_6273, // "jobs"
  verification: 0x7665_7269, // "veri"
  maintenance: 0x6d61_696e, // "main"
} as const;

/**
 * Takes the advisory lock `key` until the transaction ends, so the decisions of every transaction
 * that takes it are made one at a time across every process and machine, as SQLite makes them: each
 * statement after the lock reads what every earlier holder committed. It ends with the
 * transaction (commit, rollback, or a connection lost with its process), so a crashed worker
 * never leaves it held.
 */
export async function takeQueueLock(database: Database, tx: Executor, key: number): Promise<void> {
  if (database.dialect === 'postgres') await tx.run(database.kysely.selectNoFrom(sql<unknown>`pg_advisory_xact_lock(${sql.lit(key)})`.as('locked')));
}

/**
 * `query` reading rows that its transaction then changes: `for update` on PostgreSQL, so another
 * transaction changing the same rows waits for this one instead of writing over it from a stale read.
 */
export function lockedRows<Q extends { forUpdate(): Q }>(database: Database, query: Q): Q {
  return database.dialect === 'postgres' ? query.forUpdate() : query;
}
