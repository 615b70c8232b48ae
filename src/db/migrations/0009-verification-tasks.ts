import { type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

const oneOf = (column: string, values: readonly string[]) => sql<boolean>`${sql.ref(column)} in (${sql.join(values.map((value) => sql.lit(value)))})`;

/**
 * Archive verification as background work: one row per request to re-hash an image, queued,
 * leased by the service's verification worker like a job, and kept after it ends until the log
 * retention removes it (the verification history keeps the outcome). The unique partial index
 * lets an archive have at most one queued or running task, whoever asks. Frozen like every
 * released migration.
 */
export const verificationTasksMigration: Migration = {
  async up(db: Kysely<unknown>) {
    const postgres = sqlDialect(db) === 'postgres';
    const big = postgres ? 'bigint' : 'integer';
    const real = postgres ? 'double precision' : 'real';
    let table = db.schema.createTable('archive_verification_tasks');
    // The tasks are listed in the order they were recorded (SQLite's rowid); PostgreSQL has no rowid of its own.
    if (postgres) table = table.addColumn('rowid', 'bigint', (col) => col.notNull().unique().generatedByDefaultAsIdentity());
    await table
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('archive_id', 'text', (col) => col.notNull().references('archives.id').onDelete('cascade'))
      .addColumn('status', 'text', (col) => col.notNull().check(oneOf('status', ['queued', 'running', 'completed', 'failed', 'cancelled'])))
      .addColumn('bytes_done', big, (col) => col.notNull().defaultTo(0))
      .addColumn('bytes_total', big, (col) => col.notNull())
      .addColumn('speed_bps', real)
      .addColumn('eta_seconds', real)
      .addColumn('requested_by', 'text')
      .addColumn('cancel_requested', 'integer', (col) => col.notNull().defaultTo(0).check(sql`cancel_requested in (0, 1)`))
      .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('lease_owner', 'text')
      .addColumn('lease_expires_at', 'text')
      .addColumn('lease_holder', 'text')
      .addColumn('error_code', 'text')
      .addColumn('error_message', 'text')
      .addColumn('verification_id', big, (col) => col.references('archive_verifications.id').onDelete('set null'))
      .addColumn('ok', 'integer', (col) => col.check(sql`ok in (0, 1)`))
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .execute();
    await db.schema
      .createIndex('archive_verification_tasks_one_active')
      .unique()
      .on('archive_verification_tasks')
      .column('archive_id')
      .where(oneOf('status', ['queued', 'running']))
      .execute();
    await db.schema.createIndex('archive_verification_tasks_status_created').on('archive_verification_tasks').columns(['status', 'created_at']).execute();
    await db.schema.createIndex('archive_verification_tasks_archive_created').on('archive_verification_tasks').columns(['archive_id', 'created_at']).execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('archive_verification_tasks').execute();
  },
};
