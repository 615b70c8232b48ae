import type { Kysely, Migration } from 'kysely';

/**
 * The discs waiting on the dashboard (notify mode's "Discs waiting"), kept so a restart does not
 * forget a disc someone was asked about. 0012 is left to a migration on another branch; names sort,
 * so the gap does not matter. Frozen like every released migration.
 */
export const discNoticesMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('disc_notices')
      .addColumn('drive_id', 'text', (column) => column.primaryKey())
      .addColumn('at', 'text', (column) => column.notNull())
      .addColumn('notice', 'text', (column) => column.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('disc_notices').execute();
  },
};
