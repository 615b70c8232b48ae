import { type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

/**
 * A change counter for credentials, kept in table_versions like the jobs' (0004) and frozen like
 * every released migration. Triggers raise it on every insert, delete and update of users and
 * api_keys (foreign key cascades included), whichever connection or process writes, except an
 * update of the last-use stamps alone: those are written while a credential is in use and change
 * nothing about what it may do. A reader that finds the counter unchanged knows every user and key
 * still reads the same, so an API key checked earlier need not be looked up again.
 */
const USER_COLUMNS = [
  'id',
  'name',
  'role',
  'password_hash',
  'password_changed_at',
  'password_reset_required',
  'disabled',
  'credentials_version',
  'created_at',
  'updated_at',
];
const API_KEY_COLUMNS = ['id', 'user_id', 'name', 'prefix', 'key_hash', 'scopes', 'created_at', 'created_by', 'expires_at', 'revoked_at'];
const TABLES = { users: USER_COLUMNS, api_keys: API_KEY_COLUMNS } as const;
const raise = sql.raw(`update table_versions set version = version + 1 where name = 'credentials'`);

export const credentialsVersionMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`insert into table_versions (name, version) values ('credentials', 0)`.execute(db);
    if (sqlDialect(db) === 'postgres') {
      for (const [table, columns] of Object.entries(TABLES)) {
        const run = sql.raw(`on ${table} for each row execute function raise_table_version('credentials')`);
        await sql`create trigger ${sql.id(`${table}_credentials_after_insert`)} after insert ${run}`.execute(db);
        await sql`create trigger ${sql.id(`${table}_credentials_after_delete`)} after delete ${run}`.execute(db);
        await sql`create trigger ${sql.id(`${table}_credentials_after_update`)} after update of ${sql.join(columns.map((column) => sql.id(column)))} ${run}`.execute(
          db,
        );
      }
      return;
    }
    for (const [table, columns] of Object.entries(TABLES)) {
      await sql`create trigger ${sql.id(`${table}_credentials_after_insert`)} after insert on ${sql.id(table)} begin ${raise}; end`.execute(db);
      await sql`create trigger ${sql.id(`${table}_credentials_after_delete`)} after delete on ${sql.id(table)} begin ${raise}; end`.execute(db);
      await sql`create trigger ${sql.id(`${table}_credentials_after_update`)} after update of ${sql.join(columns.map((column) => sql.id(column)))} on ${sql.id(table)} begin ${raise}; end`.execute(
        db,
      );
    }
  },
  async down(db: Kysely<unknown>) {
    for (const table of Object.keys(TABLES)) {
      for (const event of ['update', 'delete', 'insert']) await sql`drop trigger if exists ${sql.id(`${table}_credentials_after_${event}`)}`.execute(db);
    }
    await sql`delete from table_versions where name = 'credentials'`.execute(db);
  },
};
