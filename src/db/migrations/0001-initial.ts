import { type ColumnDefinitionBuilder, type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

/**
 * The first schema. A migration is frozen once released: it lists its own enum values instead
 * of importing them, so a later change to the TypeScript unions cannot alter what it creates.
 */

const oneOf = (column: string, values: readonly string[]) => sql<boolean>`${sql.ref(column)} in (${sql.join(values.map((value) => sql.lit(value)))})`;

export const initialMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    // PostgreSQL: byte counts and sequence numbers outgrow 32 bits, and `real` is 4 bytes there;
    // SQLite's integer and real are 8 bytes either way, so its path stays as released.
    const postgres = sqlDialect(db) === 'postgres';
    const big = postgres ? 'bigint' : 'integer';
    const real = postgres ? 'double precision' : 'real';
    const autoIncrement = (col: ColumnDefinitionBuilder) => (postgres ? col.primaryKey().generatedByDefaultAsIdentity() : col.primaryKey().autoIncrement());
    await db.schema
      .createTable('jobs')
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('name', 'text', (col) => col.notNull())
      .addColumn('status', 'text', (col) =>
        col.notNull().check(oneOf('status', ['queued', 'running', 'paused', 'verifying', 'completed', 'failed', 'cancelled'])),
      )
      .addColumn('priority', 'text', (col) => col.notNull().check(oneOf('priority', ['low', 'normal', 'high'])))
      .addColumn('device_id', 'text', (col) => col.notNull())
      .addColumn('device_path', 'text', (col) => col.notNull())
      .addColumn('output_file', 'text', (col) => col.notNull())
      .addColumn('options', 'text', (col) => col.notNull())
      .addColumn('phase', 'text')
      .addColumn('progress', real, (col) => col.notNull().defaultTo(0).check(sql`progress >= 0 and progress <= 100`))
      .addColumn('size_bytes', big)
      .addColumn('bytes_done', big, (col) => col.notNull().defaultTo(0))
      .addColumn('speed_bps', real)
      .addColumn('eta_seconds', real)
      .addColumn('bad_bytes', big, (col) => col.notNull().defaultTo(0))
      .addColumn('error_count', big, (col) => col.notNull().defaultTo(0))
      .addColumn('error_code', 'text')
      .addColumn('error_message', 'text')
      // SQLite accepts a reference to a table created later; PostgreSQL gets it once archives exists.
      .addColumn('archive_id', 'text', (col) => (postgres ? col : col.references('archives.id').onDelete('set null')))
      .addColumn('created_by', 'text')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .addColumn('seq', big, (col) => col.notNull())
      .addColumn('lease_owner', 'text')
      .addColumn('lease_expires_at', 'text')
      .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('requested_action', 'text', (col) => col.check(oneOf('requested_action', ['pause', 'cancel'])))
      .execute();
    await db.schema.createIndex('jobs_seq_unique').unique().on('jobs').column('seq').execute();
    await db.schema.createIndex('jobs_status_priority_seq').on('jobs').columns(['status', 'priority', 'seq']).execute();
    await db.schema.createIndex('jobs_device_status').on('jobs').columns(['device_id', 'status']).execute();
    // The database itself refuses a second active job on one drive, whatever a claimer does.
    await db.schema
      .createIndex('jobs_one_active_per_device')
      .unique()
      .on('jobs')
      .column('device_id')
      .where(oneOf('status', ['running', 'verifying']))
      .execute();

    await db.schema
      .createTable('job_logs')
      .addColumn('id', big, autoIncrement)
      .addColumn('job_id', 'text', (col) => col.notNull().references('jobs.id').onDelete('cascade'))
      .addColumn('at', 'text', (col) => col.notNull())
      .addColumn('level', 'text', (col) => col.notNull().check(oneOf('level', ['debug', 'info', 'warning', 'error'])))
      .addColumn('message', 'text', (col) => col.notNull())
      .execute();
    await db.schema.createIndex('job_logs_job_id_id').on('job_logs').columns(['job_id', 'id']).execute();
    await db.schema.createIndex('job_logs_at').on('job_logs').column('at').execute();

    await db.schema
      .createTable('archives')
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('job_id', 'text', (col) => col.references('jobs.id').onDelete('set null'))
      .addColumn('filename', 'text', (col) => col.notNull())
      .addColumn('path', 'text', (col) => col.notNull().unique())
      .addColumn('size_bytes', big, (col) => col.notNull())
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('checksums', 'text', (col) => col.notNull())
      .addColumn('metadata', 'text', (col) => col.notNull())
      .addColumn('source', 'text', (col) => col.notNull())
      .addColumn('disc_kind', 'text')
      .addColumn('bad_bytes', big, (col) => col.notNull().defaultTo(0))
      .addColumn('status', 'text', (col) => col.notNull().check(oneOf('status', ['ok', 'damaged', 'missing'])))
      .addColumn('last_verified_at', 'text')
      .addColumn('last_verified_ok', 'integer', (col) => col.check(sql`last_verified_ok in (0, 1)`))
      .addColumn('search_text', 'text', (col) => col.notNull())
      .execute();
    await db.schema.createIndex('archives_created_at').on('archives').column('created_at').execute();
    await db.schema.createIndex('archives_filename').on('archives').column('filename').execute();
    await db.schema.createIndex('archives_job_id').on('archives').column('job_id').execute();
    if (postgres) {
      await db.schema
        .alterTable('jobs')
        .addForeignKeyConstraint('jobs_archive_id_fkey', ['archive_id'], 'archives', ['id'], (fk) => fk.onDelete('set null'))
        .execute();
    }

    await db.schema
      .createTable('archive_verifications')
      .addColumn('id', big, autoIncrement)
      .addColumn('archive_id', 'text', (col) => col.notNull().references('archives.id').onDelete('cascade'))
      .addColumn('started_at', 'text', (col) => col.notNull())
      .addColumn('finished_at', 'text', (col) => col.notNull())
      .addColumn('ok', 'integer', (col) => col.notNull().check(sql`ok in (0, 1)`))
      .addColumn('results', 'text', (col) => col.notNull())
      .addColumn('seconds', real, (col) => col.notNull())
      .addColumn('requested_by', 'text')
      .execute();
    await db.schema.createIndex('archive_verifications_archive_id_id').on('archive_verifications').columns(['archive_id', 'id']).execute();

    await db.schema
      .createTable('settings')
      .addColumn('key', 'text', (col) => col.primaryKey())
      .addColumn('value', 'text', (col) => col.notNull())
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .addColumn('updated_by', 'text')
      .execute();

    await db.schema
      .createTable('logs')
      .addColumn('id', big, autoIncrement)
      .addColumn('at', 'text', (col) => col.notNull())
      .addColumn('level', 'text', (col) => col.notNull().check(oneOf('level', ['debug', 'info', 'warning', 'error'])))
      .addColumn('source', 'text', (col) => col.notNull())
      .addColumn('message', 'text', (col) => col.notNull())
      .addColumn('job_id', 'text')
      .addColumn('details', 'text')
      .execute();
    await db.schema.createIndex('logs_at').on('logs').column('at').execute();
    await db.schema.createIndex('logs_level_at').on('logs').columns(['level', 'at']).execute();
    await db.schema.createIndex('logs_job_id').on('logs').columns(['job_id', 'id']).execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    for (const table of ['logs', 'settings', 'archive_verifications', 'archives', 'job_logs', 'jobs']) {
      await db.schema.dropTable(table).execute();
    }
  },
};
