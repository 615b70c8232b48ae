import { type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

/**
 * Two aids to reading the job list, frozen like every released migration:
 *
 * - Indexes for the list filtered by one status (`?status=completed`, the queued jobs, …) in each
 *   order it offers, so a page is read from an index in order instead of sorting every job of that
 *   status per request (several milliseconds with 10,000 of them).
 * - A change counter for the jobs table, raised by triggers on every insert, update and delete
 *   (including the updates foreign key actions make), whichever connection or process writes. A
 *   reader that finds it unchanged knows every job still reads the same, so a list built earlier
 *   can be served again. It lives in table_versions so other tables can get one the same way.
 */
export const jobListMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.createIndex('jobs_status_created_at_seq').on('jobs').columns(['status', 'created_at', 'seq']).execute();
    await db.schema.createIndex('jobs_status_updated_at_seq').on('jobs').columns(['status', 'updated_at', 'seq']).execute();
    await db.schema.createIndex('jobs_status_name_seq').on('jobs').columns(['status', 'name', 'seq']).execute();

    const postgres = sqlDialect(db) === 'postgres';
    await db.schema
      .createTable('table_versions')
      .addColumn('name', 'text', (col) => col.primaryKey())
      .addColumn('version', postgres ? 'bigint' : 'integer', (col) => col.notNull())
      .execute();
    await sql`insert into table_versions (name, version) values ('jobs', 0)`.execute(db);
    if (postgres) {
      // One function raises any counter, named by the trigger's argument (0005 uses it for credentials).
      await sql`create function raise_table_version() returns trigger language plpgsql as $$
        begin update table_versions set version = version + 1 where name = tg_argv[0]; return null; end $$`.execute(db);
      for (const event of ['insert', 'update', 'delete']) {
        await sql`create trigger ${sql.id(`jobs_version_after_${event}`)} after ${sql.raw(event)} on jobs
          for each row execute function raise_table_version('jobs')`.execute(db);
      }
      return;
    }
    for (const event of ['insert', 'update', 'delete']) {
      await sql`create trigger ${sql.id(`jobs_version_after_${event}`)} after ${sql.raw(event)} on jobs
        begin update table_versions set version = version + 1 where name = 'jobs'; end`.execute(db);
    }
  },
  async down(db: Kysely<unknown>) {
    for (const event of ['delete', 'update', 'insert']) await sql`drop trigger if exists ${sql.id(`jobs_version_after_${event}`)}`.execute(db);
    await db.schema.dropTable('table_versions').execute();
    await db.schema.dropIndex('jobs_status_name_seq').execute();
    await db.schema.dropIndex('jobs_status_updated_at_seq').execute();
    await db.schema.dropIndex('jobs_status_created_at_seq').execute();
  },
};
