import type { Kysely, Migration } from 'kysely';

/**
 * The processes that claim jobs from this database, each with the heartbeat it last gave: a running
 * service announces itself here, so `disk2iso create` can hand its job to it instead of imaging
 * alongside it. Frozen like every released migration.
 */
export const jobWorkersMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('job_workers')
      .addColumn('id', 'text', (column) => column.primaryKey())
      .addColumn('holder', 'text', (column) => column.notNull())
      .addColumn('started_at', 'text', (column) => column.notNull())
      .addColumn('seen_at', 'text', (column) => column.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('job_workers').execute();
  },
};
