import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import pg from 'pg';
import { openDatabase } from '../../src/db/database.js';
import { MIGRATION_NAMES } from '../../src/db/migrations/index.js';
import { openPostgres, redactedUrl } from '../../src/db/postgres.js';
import { DomainError } from '../../src/errors.js';
import { usePostgres } from '../support/postgres.js';
import { withTempDir } from './support.js';

const server = usePostgres();

/** The parts of a schema both engines must agree on, in a form both can be read into. */
interface Schema {
  tables: Map<string, TableSchema>;
}

interface TableSchema {
  columns: Map<string, { type: string; notNull: boolean }>;
  primaryKey: string[];
  /** Unique keys: column lists (`expr:…` for an expression), with the partial condition's presence. */
  uniques: Set<string>;
  /** Other indexes by name. */
  indexes: Set<string>;
  /** `column->table.column on delete RULE`. */
  foreignKeys: Set<string>;
  /** The columns each check constraint reads, sorted, one entry per constraint. */
  checks: string[];
}

/** FTS5 virtual tables and their shadow tables: compared by behaviour (test/db/dialect.test.ts), not structure. */
const FTS_TABLE = /^(archives_fts|archive_file_search)(_|$)/;

function readSqliteSchema(file: string): Schema {
  const raw = new BetterSqlite3(file, { readonly: true });
  try {
    const tables = new Map<string, TableSchema>();
    const rows = raw.prepare("select name, sql from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name").all() as Array<{
      name: string;
      sql: string;
    }>;
    for (const { name, sql: createSql } of rows) {
      if (FTS_TABLE.test(name)) continue;
      const info = raw.pragma(`table_info(${JSON.stringify(name)})`) as Array<{ name: string; type: string; notnull: number; pk: number }>;
      const columns = new Map(info.map((column) => [column.name, { type: column.type.toLowerCase(), notNull: column.notnull === 1 || column.pk > 0 }]));
      const primaryKey = info
        .filter((column) => column.pk > 0)
        .sort((a, b) => a.pk - b.pk)
        .map((column) => column.name);
      const uniques = new Set<string>();
      const indexes = new Set<string>();
      for (const index of raw.pragma(`index_list(${JSON.stringify(name)})`) as Array<{ name: string; unique: number; origin: string; partial: number }>) {
        if (index.origin === 'pk') continue;
        const keyColumns = (raw.pragma(`index_info(${JSON.stringify(index.name)})`) as Array<{ name: string | null }>).map((column) => column.name ?? 'expr');
        if (index.unique === 1) uniques.add(`${keyColumns.join(',')}${index.partial === 1 ? ' partial' : ''}`);
        if (index.origin === 'c') indexes.add(index.name);
      }
      const foreignKeys = new Set(
        (raw.pragma(`foreign_key_list(${JSON.stringify(name)})`) as Array<{ table: string; from: string; to: string; on_delete: string }>).map(
          (key) => `${key.from}->${key.table}.${key.to} on delete ${key.on_delete.toLowerCase()}`,
        ),
      );
      tables.set(name, { columns, primaryKey, uniques, indexes, foreignKeys, checks: sqliteChecks(createSql, [...columns.keys()]) });
    }
    return { tables };
  } finally {
    raw.close();
  }
}

/** The column sets of the CHECK clauses in a CREATE TABLE statement (SQLite keeps no other record of them). */
function sqliteChecks(createSql: string, columns: string[]): string[] {
  const checks: string[] = [];
  const pattern = /\bcheck\s*\(/gi;
  for (let match = pattern.exec(createSql); match !== null; match = pattern.exec(createSql)) {
    let depth = 1;
    let end = match.index + match[0].length;
    while (depth > 0 && end < createSql.length) {
      if (createSql[end] === '(') depth += 1;
      if (createSql[end] === ')') depth -= 1;
      end += 1;
    }
    const expression = createSql.slice(match.index + match[0].length, end - 1).replace(/'[^']*'/g, '');
    const used = columns.filter((column) => new RegExp(`(^|[^\\w])"?${column}"?([^\\w]|$)`).test(expression));
    checks.push(used.sort().join(','));
  }
  return checks.sort();
}

async function readPostgresSchema(url: string): Promise<Schema> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = new Map<string, TableSchema>();
    const tableRows = await client.query<{ name: string }>(
      "select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1",
    );
    for (const { name } of tableRows.rows) {
      const columnRows = await client.query<{ column_name: string; data_type: string; is_nullable: string }>(
        "select column_name, data_type, is_nullable from information_schema.columns where table_schema = 'public' and table_name = $1",
        [name],
      );
      const columns = new Map(columnRows.rows.map((column) => [column.column_name, { type: column.data_type, notNull: column.is_nullable === 'NO' }]));
      const constraintRows = await client.query<{
        contype: string;
        columns: string[];
        foreign_table: string | null;
        foreign_columns: string[] | null;
        on_delete: string;
      }>(
        `select c.contype,
           array(select a.attname from unnest(c.conkey) with ordinality as k(attnum, n) join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum order by k.n)::text[] as columns,
           c.confrelid::regclass::text as foreign_table,
           array(select a.attname from unnest(c.confkey) with ordinality as k(attnum, n) join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.attnum order by k.n)::text[] as foreign_columns,
           c.confdeltype as on_delete
         from pg_constraint c where c.conrelid = $1::regclass`,
        [name],
      );
      const onDelete: Record<string, string> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' };
      const primaryKey = constraintRows.rows.find((row) => row.contype === 'p')?.columns ?? [];
      const foreignKeys = new Set(
        constraintRows.rows
          .filter((row) => row.contype === 'f')
          .map((row) => `${row.columns.join(',')}->${row.foreign_table}.${(row.foreign_columns ?? []).join(',')} on delete ${onDelete[row.on_delete]}`),
      );
      const checks = constraintRows.rows
        .filter((row) => row.contype === 'c')
        .map((row) => [...row.columns].sort().join(','))
        .sort();
      const indexRows = await client.query<{ name: string; unique: boolean; partial: boolean; columns: string[]; constraint: boolean }>(
        `select i.relname as name, x.indisunique as unique, x.indpred is not null as partial,
           array(select coalesce(a.attname, 'expr') from unnest(x.indkey) with ordinality as k(attnum, n)
             left join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum and k.attnum > 0 order by k.n)::text[] as columns,
           exists (select 1 from pg_constraint c where c.conindid = x.indexrelid) as constraint
         from pg_index x join pg_class i on i.oid = x.indexrelid where x.indrelid = $1::regclass and not x.indisprimary`,
        [name],
      );
      const uniques = new Set(indexRows.rows.filter((row) => row.unique).map((row) => `${row.columns.join(',')}${row.partial ? ' partial' : ''}`));
      const indexes = new Set(indexRows.rows.filter((row) => !row.constraint).map((row) => row.name));
      tables.set(name, { columns, primaryKey, uniques, indexes, foreignKeys, checks });
    }
    return { tables };
  } finally {
    await client.end();
  }
}

/** SQLite's declared type and the PostgreSQL types that hold the same values. */
const COMPATIBLE_TYPES: Record<string, string[]> = {
  text: ['text'],
  integer: ['integer', 'bigint'],
  real: ['double precision'],
  'varchar(255)': ['character varying'],
};

test('a migrated PostgreSQL database has every table, column, key, index, foreign key and check of a migrated SQLite file', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'disk2iso.db');
    const sqlite = await openDatabase({ file });
    await sqlite.close();
    const url = await server().createDatabase();
    const postgres = await openPostgres(url);
    await postgres.close();
    const expected = readSqliteSchema(file);
    const actual = await readPostgresSchema(url);
    assert.ok(expected.tables.size >= 25, `SQLite has ${expected.tables.size} tables`);
    for (const [table, want] of expected.tables) {
      const got = actual.tables.get(table);
      assert.ok(got !== undefined, `table ${table} exists in PostgreSQL`);
      for (const [column, { type, notNull }] of want.columns) {
        const found = got.columns.get(column);
        assert.ok(found !== undefined, `${table}.${column} exists in PostgreSQL`);
        assert.ok(COMPATIBLE_TYPES[type]?.includes(found.type), `${table}.${column}: SQLite ${type}, PostgreSQL ${found.type}`);
        assert.equal(found.notNull, notNull, `${table}.${column} nullability`);
      }
      assert.deepEqual(got.primaryKey, want.primaryKey, `${table} primary key`);
      for (const unique of want.uniques) assert.ok(got.uniques.has(unique), `${table} unique ${unique} (PostgreSQL has ${[...got.uniques].join('; ')})`);
      for (const index of want.indexes) assert.ok(got.indexes.has(index), `${table} index ${index}`);
      assert.deepEqual([...got.foreignKeys].sort(), [...want.foreignKeys].sort(), `${table} foreign keys`);
      assert.deepEqual(got.checks, want.checks, `${table} check constraints`);
    }
  });
});

test('the triggers behave alike: change counters rise and the audit trail refuses updates', async () => {
  await withTempDir(async (dir) => {
    const sqlite = await openDatabase({ file: join(dir, 'disk2iso.db') });
    const postgres = await openPostgres(await server().createDatabase());
    try {
      for (const db of [sqlite.kysely, postgres.kysely]) {
        const at = '2026-01-15T10:00:00.000Z';
        await db
          .insertInto('users')
          .values({
            id: 'u1',
            name: 'ada',
            role: 'admin',
            password_hash: 'x',
            password_changed_at: at,
            password_reset_required: 0,
            disabled: 0,
            credentials_version: 1,
            created_at: at,
            updated_at: at,
          })
          .execute();
        await db.updateTable('users').set({ last_login_at: at }).where('id', '=', 'u1').execute();
        await db.updateTable('users').set({ role: 'viewer' }).where('id', '=', 'u1').execute();
        const { rows: counters } = await sql<{ name: string; version: number }>`select name, version from table_versions order by name`.execute(db);
        // Insert and role change count; the last-login stamp alone does not.
        assert.deepEqual(counters, [
          { name: 'credentials', version: 2 },
          { name: 'jobs', version: 0 },
        ]);
        await db.insertInto('audit_log').values({ timestamp: at, event_type: 'auth', action: 'login', details: '{}' }).execute();
        await assert.rejects(db.updateTable('audit_log').set({ action: 'rewritten' }).execute(), /audit_log is append-only/);
        assert.equal(Number((await db.deleteFrom('audit_log').executeTakeFirst()).numDeletedRows), 1, 'retention may still delete');
      }
    } finally {
      await sqlite.close();
      await postgres.close();
    }
  });
});

test('migrating PostgreSQL again changes nothing, and concurrent opens of a new database migrate it once', async () => {
  const url = await server().createDatabase();
  const logged: Array<Record<string, unknown>> = [];
  const log = { info: (details: Record<string, unknown>) => logged.push(details) };
  const opened = await Promise.all([openPostgres(url, log), openPostgres(url, log), openPostgres(url, log)]);
  try {
    assert.equal(logged.length, 1, 'one open migrated, the others found it done');
    assert.deepEqual(logged[0]?.migrations, MIGRATION_NAMES);
    for (const database of opened) assert.deepEqual(await database.appliedMigrations(), MIGRATION_NAMES);
    const again = await openPostgres(url, log);
    await again.close();
    assert.equal(logged.length, 1, 'a second migration does nothing');
    const { rows } = await sql<{ count: number }>`select count(*) as count from kysely_migration`.execute(opened[0]?.kysely ?? again.kysely);
    assert.deepEqual(rows, [{ count: MIGRATION_NAMES.length }]);
  } finally {
    await Promise.all(opened.map((database) => database.close()));
  }
});

test('a database that cannot be reached gives a clear error without the password', async () => {
  const url = server().url('postgres').replace(`:${server().port}/`, ':1/');
  const error = await openPostgres(url).then(
    () => assert.fail('opened a database on port 1'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof DomainError);
  assert.equal(error.code, 'database_open_failed');
  assert.match(error.message, /127\.0\.0\.1:1/);
  assert.doesNotMatch(error.message, new RegExp(server().password));
  assert.equal(redactedUrl(url).includes(server().password), false);
});

test('a count beyond what a JavaScript number holds exactly fails instead of losing digits', async () => {
  const database = await openPostgres(await server().createDatabase());
  try {
    const { rows } = await sql<{ size: number }>`select 549755813888::bigint as size`.execute(database.kysely);
    assert.deepEqual(rows, [{ size: 549755813888 }], 'half a terabyte arrives as a number');
    await assert.rejects(sql`select 9007199254740993::bigint as size`.execute(database.kysely), /beyond what a JavaScript number holds/);
  } finally {
    await database.close();
  }
});
