import type { Kysely, Migration } from 'kysely';

/**
 * Indexes for the orders the job list offers (newest first by default), so a page of 50 out of
 * tens of thousands of jobs is read from an index instead of sorting the whole table per request.
 */
export const listIndexesMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.createIndex('jobs_created_at_seq').on('jobs').columns(['created_at', 'seq']).execute();
    await db.schema.createIndex('jobs_updated_at_seq').on('jobs').columns(['updated_at', 'seq']).execute();
    await db.schema.createIndex('jobs_name_seq').on('jobs').columns(['name', 'seq']).execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropIndex('jobs_name_seq').execute();
    await db.schema.dropIndex('jobs_updated_at_seq').execute();
    await db.schema.dropIndex('jobs_created_at_seq').execute();
  },
};
