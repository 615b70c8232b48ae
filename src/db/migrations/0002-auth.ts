import { type ColumnDefinitionBuilder, type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

/**
 * Users, sessions, API keys, login throttling, setup tokens and the audit trail. Frozen like every
 * released migration: it lists its own enum values.
 */

const oneOf = (column: string, values: readonly string[]) => sql<boolean>`${sql.ref(column)} in (${sql.join(values.map((value) => sql.lit(value)))})`;

const flag = (column: string) => sql<boolean>`${sql.ref(column)} in (0, 1)`;

export const authMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const postgres = sqlDialect(db) === 'postgres';
    const big = postgres ? 'bigint' : 'integer';
    const autoIncrement = (col: ColumnDefinitionBuilder) => (postgres ? col.primaryKey().generatedByDefaultAsIdentity() : col.primaryKey().autoIncrement());
    await db.schema
      .createTable('users')
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('name', 'text', (col) => col.notNull().unique())
      .addColumn('role', 'text', (col) => col.notNull().check(oneOf('role', ['admin', 'operator', 'viewer'])))
      .addColumn('password_hash', 'text', (col) => col.notNull())
      .addColumn('password_changed_at', 'text', (col) => col.notNull())
      .addColumn('password_reset_required', 'integer', (col) => col.notNull().defaultTo(0).check(flag('password_reset_required')))
      .addColumn('disabled', 'integer', (col) => col.notNull().defaultTo(0).check(flag('disabled')))
      .addColumn('credentials_version', 'integer', (col) => col.notNull().defaultTo(1))
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .addColumn('last_login_at', 'text')
      .execute();

    await db.schema
      .createTable('sessions')
      .addColumn('id_hash', 'text', (col) => col.primaryKey())
      .addColumn('user_id', 'text', (col) => col.notNull().references('users.id').onDelete('cascade'))
      .addColumn('csrf_token', 'text', (col) => col.notNull())
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('last_seen_at', 'text', (col) => col.notNull())
      .addColumn('expires_at', 'text', (col) => col.notNull())
      .addColumn('ip_address', 'text')
      .addColumn('user_agent', 'text')
      .execute();
    await db.schema.createIndex('sessions_user_id_created_at').on('sessions').columns(['user_id', 'created_at']).execute();

    await db.schema
      .createTable('api_keys')
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('user_id', 'text', (col) => col.notNull().references('users.id').onDelete('cascade'))
      .addColumn('name', 'text', (col) => col.notNull())
      .addColumn('prefix', 'text', (col) => col.notNull())
      .addColumn('key_hash', 'text', (col) => col.notNull().unique())
      .addColumn('scopes', 'text')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('created_by', 'text', (col) => col.notNull())
      .addColumn('expires_at', 'text')
      .addColumn('revoked_at', 'text')
      .addColumn('last_used_at', 'text')
      .execute();
    await db.schema.createIndex('api_keys_user_id').on('api_keys').column('user_id').execute();

    await db.schema
      .createTable('login_failures')
      .addColumn('id', big, autoIncrement)
      .addColumn('scope', 'text', (col) => col.notNull().check(oneOf('scope', ['account', 'address'])))
      .addColumn('key', 'text', (col) => col.notNull())
      .addColumn('at', 'text', (col) => col.notNull())
      .execute();
    await db.schema.createIndex('login_failures_scope_key_at').on('login_failures').columns(['scope', 'key', 'at']).execute();
    await db.schema.createIndex('login_failures_at').on('login_failures').column('at').execute();

    await db.schema
      .createTable('lockouts')
      .addColumn('scope', 'text', (col) => col.notNull().check(oneOf('scope', ['account', 'address'])))
      .addColumn('key', 'text', (col) => col.notNull())
      .addColumn('locked_at', 'text', (col) => col.notNull())
      .addColumn('until', 'text', (col) => col.notNull())
      .addPrimaryKeyConstraint('lockouts_pk', ['scope', 'key'])
      .execute();

    await db.schema
      .createTable('setup_tokens')
      .addColumn('token_hash', 'text', (col) => col.primaryKey())
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('expires_at', 'text', (col) => col.notNull())
      .addColumn('used_at', 'text')
      .execute();

    await db.schema
      .createTable('audit_log')
      .addColumn('id', big, autoIncrement)
      .addColumn('timestamp', 'text', (col) => col.notNull())
      .addColumn('event_type', 'text', (col) => col.notNull())
      .addColumn('action', 'text', (col) => col.notNull())
      .addColumn('user', 'text')
      .addColumn('ip_address', 'text')
      .addColumn('user_agent', 'text')
      .addColumn('details', 'text', (col) => col.notNull().defaultTo('{}'))
      .execute();
    await db.schema.createIndex('audit_log_timestamp').on('audit_log').column('timestamp').execute();
    await db.schema.createIndex('audit_log_user_timestamp').on('audit_log').columns(['user', 'timestamp']).execute();
    await db.schema.createIndex('audit_log_event_type_timestamp').on('audit_log').columns(['event_type', 'timestamp']).execute();
    // The trail is append-only below the application too: no statement may rewrite an entry.
    // Deleting stays possible because retention prunes old entries.
    if (postgres) {
      await sql`create function audit_log_append_only() returns trigger language plpgsql as $$
        begin raise exception 'audit_log is append-only'; end $$`.execute(db);
      await sql`create trigger audit_log_append_only before update on audit_log for each row execute function audit_log_append_only()`.execute(db);
    } else {
      await sql`create trigger audit_log_append_only before update on audit_log
      begin select raise(abort, 'audit_log is append-only'); end`.execute(db);
    }
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await sql`drop trigger if exists audit_log_append_only`.execute(db);
    for (const table of ['audit_log', 'setup_tokens', 'lockouts', 'login_failures', 'api_keys', 'sessions', 'users']) {
      await db.schema.dropTable(table).execute();
    }
  },
};
