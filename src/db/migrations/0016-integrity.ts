import { type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

const oneOf = (column: string, values: readonly string[]) => sql<boolean>`${sql.ref(column)} in (${sql.join(values.map((value) => sql.lit(value)))})`;
const ORIGINS = ['imaging', 'manual', 'schedule', 'repair', 'adoption'];

/**
 * Integrity over years. Each verification task and each history entry says what started it
 * (`origin`: a person, the schedule, a repair), so the history tells a scheduled check from one a
 * user asked for. An archive records the PAR2 recovery data made for it. Maintenance tasks are the
 * long background work on archives besides re-hashing (creating and repairing from PAR2 data,
 * adopting a folder of images): stored, so a restart takes them up again. Frozen like every
 * released migration.
 */
export const integrityMigration: Migration = {
  async up(db: Kysely<unknown>) {
    const postgres = sqlDialect(db) === 'postgres';
    await db.schema
      .alterTable('archive_verification_tasks')
      .addColumn('origin', 'text', (col) => col.notNull().defaultTo('manual').check(oneOf('origin', ORIGINS)))
      .execute();
    await db.schema
      .alterTable('archive_verifications')
      .addColumn('origin', 'text', (col) => col.notNull().defaultTo('manual').check(oneOf('origin', ORIGINS)))
      .execute();
    if (postgres) await sql`update archive_verifications set origin = 'imaging' where results::jsonb ->> 'source' = 'after imaging'`.execute(db);
    else await sql`update archive_verifications set origin = 'imaging' where json_extract(results, '$.source') = 'after imaging'`.execute(db);
    await db.schema.alterTable('archives').addColumn('recovery', 'text').execute();
    let tasks = db.schema.createTable('archive_maintenance_tasks');
    // The tasks are listed in the order they were recorded (SQLite's rowid); PostgreSQL has no rowid of its own.
    if (postgres) tasks = tasks.addColumn('rowid', 'bigint', (col) => col.notNull().unique().generatedByDefaultAsIdentity());
    await tasks
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('kind', 'text', (col) => col.notNull().check(oneOf('kind', ['par2_create', 'par2_repair', 'adopt'])))
      .addColumn('archive_id', 'text', (col) => col.references('archives.id').onDelete('cascade'))
      .addColumn('status', 'text', (col) => col.notNull().check(oneOf('status', ['queued', 'running', 'completed', 'failed', 'cancelled'])))
      .addColumn('progress', postgres ? 'double precision' : 'real', (col) => col.notNull().defaultTo(0))
      .addColumn('params', 'text', (col) => col.notNull())
      .addColumn('result', 'text')
      .addColumn('requested_by', 'text')
      .addColumn('cancel_requested', 'integer', (col) => col.notNull().defaultTo(0).check(sql`cancel_requested in (0, 1)`))
      .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('error_code', 'text')
      .addColumn('error_message', 'text')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .execute();
    await db.schema.createIndex('archive_maintenance_tasks_status_created').on('archive_maintenance_tasks').columns(['status', 'created_at']).execute();
    await db.schema
      .createIndex('archive_maintenance_tasks_one_active')
      .unique()
      .on('archive_maintenance_tasks')
      .column('archive_id')
      .where(sql<boolean>`archive_id is not null and status in ('queued', 'running')`)
      .execute();
    await db.schema.createIndex('archives_last_verified').on('archives').columns(['last_verified_at', 'created_at']).execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropIndex('archives_last_verified').execute();
    await db.schema.dropTable('archive_maintenance_tasks').execute();
    await db.schema.alterTable('archives').dropColumn('recovery').execute();
    await db.schema.alterTable('archive_verifications').dropColumn('origin').execute();
    await db.schema.alterTable('archive_verification_tasks').dropColumn('origin').execute();
  },
};
