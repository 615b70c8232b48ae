import { type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

/** What each drive does with a disc put into it (src/jobs/automation-model.ts). Frozen like every released migration. */
export const driveAutomationMigration: Migration = {
  async up(db: Kysely<unknown>) {
    const postgres = sqlDialect(db) === 'postgres';
    await db.schema
      .createTable('drive_automation')
      .addColumn('device_id', 'text', (column) => column.primaryKey())
      .addColumn('mode', 'text', (column) => column.notNull().check(sql`mode in ('manual', 'notify', 'automatic')`))
      .addColumn('name_template', 'text', (column) => column.notNull())
      .addColumn('read_attempts', 'integer')
      .addColumn('checksums', 'text')
      .addColumn('verify', 'integer')
      .addColumn('eject', 'integer', (column) => column.notNull().check(sql`eject in (0, 1)`))
      .addColumn('duplicates', 'text', (column) => column.notNull().check(sql`duplicates in ('skip', 'ask', 'image')`))
      .addColumn('counter', postgres ? 'bigint' : 'integer', (column) => column.notNull().defaultTo(0))
      .addColumn('updated_at', 'text', (column) => column.notNull())
      .addColumn('updated_by', 'text')
      .execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('drive_automation').execute();
  },
};
