import { type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

/**
 * The key a key was created with, frozen like every released migration. A key (or a bearer token
 * issued for one) that creates a key becomes its parent; revoking the parent revokes its
 * descendants in the same transaction, which the index on parent_id keeps to a few lookups.
 * Deleting a parent (its owner's deletion, which deletes the child too) takes its children along.
 *
 * The credentials counter's update trigger (0005) lists the columns whose change matters; it is
 * made again with parent_id, so the counter still stands for every column but the last-use stamp.
 */
const OLD_COLUMNS = ['id', 'user_id', 'name', 'prefix', 'key_hash', 'scopes', 'created_at', 'created_by', 'expires_at', 'revoked_at'];
const raise = sql.raw(`update table_versions set version = version + 1 where name = 'credentials'`);

async function updateTrigger(db: Kysely<unknown>, columns: readonly string[]): Promise<void> {
  if (sqlDialect(db) === 'postgres') {
    await sql`drop trigger if exists api_keys_credentials_after_update on api_keys`.execute(db);
    await sql`create trigger api_keys_credentials_after_update after update of ${sql.join(columns.map((column) => sql.id(column)))} on api_keys
      for each row execute function raise_table_version('credentials')`.execute(db);
    return;
  }
  await sql`drop trigger if exists api_keys_credentials_after_update`.execute(db);
  await sql`create trigger api_keys_credentials_after_update after update of ${sql.join(columns.map((column) => sql.id(column)))} on api_keys
    begin ${raise}; end`.execute(db);
}

export const apiKeyParentMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .alterTable('api_keys')
      .addColumn('parent_id', 'text', (col) => col.references('api_keys.id').onDelete('cascade'))
      .execute();
    await db.schema.createIndex('api_keys_parent_id').on('api_keys').column('parent_id').execute();
    await updateTrigger(db, [...OLD_COLUMNS, 'parent_id']);
  },
  async down(db: Kysely<unknown>) {
    await updateTrigger(db, OLD_COLUMNS);
    await db.schema.dropIndex('api_keys_parent_id').execute();
    await db.schema.alterTable('api_keys').dropColumn('parent_id').execute();
  },
};
