import { createHash } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import { type Kysely, type RawBuilder, type Transaction, sql } from 'kysely';
import { ConflictError, UnavailableError, errorMessage } from '../errors.js';
import type { LeaseHolder } from '../jobs/model.js';
import { MIGRATION_NAMES } from './migrations/index.js';
import { type PostgresDatabase, openPostgres } from './postgres.js';
import type { DB } from './schema.js';

/** One table's outcome: rows on each side and the checksum of each side's rows. */
interface TableCheck {
  table: string;
  sourceRows: number;
  targetRows: number;
  sourceChecksum: string;
  targetChecksum: string;
}

export interface MigrateOptions {
  /** The embedded database (the data dir's disk2iso.db); opened read-only. */
  sqliteFile: string;
  url: string;
  /** A service counts as running when it gave a heartbeat within this many ms (a job lease)… */
  staleMs: number;
  /** …unless its process is known to have ended (src/jobs/lease-holder.ts). */
  holderGone: (holder: LeaseHolder) => Promise<boolean>;
  /** Rows per INSERT statement. */
  batchRows?: number;
}

export interface MigrateReport {
  tables: TableCheck[];
  /** Rows of the full-text indexes PostgreSQL built from the copied rows. */
  derived: Array<{ table: string; rows: number }>;
}

/** FTS5 tables and their shadow tables: PostgreSQL builds its own from the copied rows (migrations 0014, 0015). */
const DERIVED = /^(archives_fts|archive_file_search)(_|$)/;
/** The migrator's bookkeeping: the target's own, compared by migration names instead. */
const BOOKKEEPING = /^(kysely_|sqlite_)/;
/** Raised by the targets' triggers as rows arrive: copied last, over what the triggers made of it. */
const COUNTERS = 'table_versions';
/** Tables that PostgreSQL gives a `rowid` column to keep the order SQLite's rowid records (0009, 0011, 0016). */
const ROWID_TABLES = new Set(['archive_verification_tasks', 'notification_events', 'archive_maintenance_tasks']);

interface ForeignKey {
  table: string;
  from: string;
  to: string;
}

interface SourceTable {
  name: string;
  /** Columns in table order, `rowid` first where PostgreSQL keeps it. */
  columns: string[];
  /** The columns rows are ordered by: the primary key. */
  key: string[];
  foreignKeys: ForeignKey[];
  /** A column pointing into the same table (api_keys.parent_id): parents must arrive first. */
  selfReference: ForeignKey | null;
  /** Columns of a foreign key cycle (jobs.archive_id, archives.job_id): copied as null, set once both tables are in. */
  deferred: string[];
}

function sourceTables(source: BetterSqlite3.Database): SourceTable[] {
  const names = (source.prepare("select name from sqlite_master where type = 'table' order by name").all() as Array<{ name: string }>)
    .map((row) => row.name)
    .filter((name) => !DERIVED.test(name) && !BOOKKEEPING.test(name));
  return names.map((name) => {
    const info = source.pragma(`table_info(${JSON.stringify(name)})`) as Array<{ name: string; pk: number }>;
    const key = info
      .filter((column) => column.pk > 0)
      .sort((a, b) => a.pk - b.pk)
      .map((column) => column.name);
    const foreignKeys = source.pragma(`foreign_key_list(${JSON.stringify(name)})`) as ForeignKey[];
    return {
      name,
      columns: [...(ROWID_TABLES.has(name) ? ['rowid'] : []), ...info.map((column) => column.name)],
      key: key.length > 0 ? key : ['rowid'],
      foreignKeys: foreignKeys.filter((foreignKey) => foreignKey.table !== name),
      selfReference: foreignKeys.find((foreignKey) => foreignKey.table === name) ?? null,
      deferred: [],
    };
  });
}

/** Parents before children, a cycle broken by deferring the foreign key that closes it; the counters last. */
function foreignKeyOrder(tables: SourceTable[]): SourceTable[] {
  const ordered: SourceTable[] = [];
  const placed = new Set<string>();
  const byName = new Map(tables.map((table) => [table.name, table]));
  const place = (table: SourceTable, path: Set<string>): void => {
    if (placed.has(table.name)) return;
    path.add(table.name);
    for (const foreignKey of table.foreignKeys) {
      const parent = byName.get(foreignKey.table);
      if (parent === undefined || placed.has(parent.name)) continue;
      if (path.has(parent.name)) table.deferred.push(foreignKey.from);
      else place(parent, path);
    }
    path.delete(table.name);
    placed.add(table.name);
    ordered.push(table);
  };
  for (const table of tables) if (table.name !== COUNTERS) place(table, new Set());
  const counters = byName.get(COUNTERS);
  if (counters !== undefined) ordered.push(counters);
  return ordered;
}

type Row = Record<string, unknown>;

/** Rows of a self-referencing table with each referenced row before the rows pointing to it. */
function parentsFirst(rows: Row[], reference: ForeignKey): Row[] {
  const byTarget = new Map(rows.map((row) => [row[reference.to], row]));
  const ordered: Row[] = [];
  const done = new Set<Row>();
  const place = (row: Row): void => {
    if (done.has(row)) return;
    done.add(row);
    const parent = byTarget.get(row[reference.from]);
    if (parent !== undefined) place(parent);
    ordered.push(row);
  };
  for (const row of rows) place(row);
  return ordered;
}

/** One line per row: its values in column order as JSON, so equal rows read alike from either engine. */
function canonicalLine(row: Row, columns: string[]): string {
  return `${JSON.stringify(columns.map((column) => row[column] ?? null))}\n`;
}

function sourceRows(source: BetterSqlite3.Database, table: SourceTable): IterableIterator<Row> {
  const columns = table.columns.map((column) => `"${column}"`).join(', ');
  const order = table.key.map((column) => `"${column}"`).join(', ');
  return source.prepare(`select ${columns} from "${table.name}" order by ${order}`).iterate() as IterableIterator<Row>;
}

function sourceCheck(source: BetterSqlite3.Database, table: SourceTable): { rows: number; checksum: string } {
  const hash = createHash('sha256');
  let rows = 0;
  for (const row of sourceRows(source, table)) {
    hash.update(canonicalLine(row, table.columns));
    rows += 1;
  }
  return { rows, checksum: hash.digest('hex') };
}

const READ_BATCH = 5000;

/**
 * The target's rows in the source's order: text keys compared by bytes (collation "C"), as SQLite's
 * BINARY collation compares them, whatever the database's locale. Read in pages along the key.
 */
async function targetCheck(db: Transaction<DB>, table: SourceTable, textColumns: Set<string>): Promise<{ rows: number; checksum: string }> {
  const hash = createHash('sha256');
  const select = sql.join(table.columns.map((column) => sql.ref(column)));
  const keyOf = (column: string): RawBuilder<unknown> => (textColumns.has(column) ? sql`${sql.ref(column)} collate "C"` : sql`${sql.ref(column)}`);
  const order = sql.join(table.key.map(keyOf));
  let rows = 0;
  if (table.key.length !== 1) {
    // Composite keys belong to small tables (lockouts, preferences): one read.
    const { rows: all } = await sql<Row>`select ${select} from ${sql.table(table.name)} order by ${order}`.execute(db);
    for (const row of all) hash.update(canonicalLine(row, table.columns));
    return { rows: all.length, checksum: hash.digest('hex') };
  }
  const [key] = table.key as [string];
  let last: unknown;
  for (;;) {
    const after = last === undefined ? sql`` : sql`where ${keyOf(key)} > ${last}`;
    const { rows: page } = await sql<Row>`select ${select} from ${sql.table(table.name)} ${after} order by ${order} limit ${READ_BATCH}`.execute(db);
    for (const row of page) hash.update(canonicalLine(row, table.columns));
    rows += page.length;
    if (page.length < READ_BATCH) break;
    last = page.at(-1)?.[key];
  }
  return { rows, checksum: hash.digest('hex') };
}

async function insertBatch(db: Transaction<DB>, table: SourceTable, rows: Row[]): Promise<void> {
  if (rows.length === 0) return;
  const values = rows.map((row) => sql`(${sql.join(table.columns.map((column) => (table.deferred.includes(column) ? null : (row[column] ?? null))))})`);
  // The identity columns are `by default`: they take the source's ids, so references hold.
  await sql`insert into ${sql.table(table.name)} (${sql.join(table.columns.map((column) => sql.ref(column)))}) values ${sql.join(values)}`.execute(db);
}

/** Sets the deferred foreign key columns of a batch of rows, now that the rows they point to are in. */
async function setDeferred(db: Transaction<DB>, table: SourceTable, rows: Row[]): Promise<void> {
  const [key] = table.key;
  for (const column of table.deferred) {
    const values = rows.filter((row) => row[column] !== null && row[column] !== undefined).map((row) => sql`(${row[key as string]}, ${row[column]})`);
    if (values.length === 0) continue;
    await sql`update ${sql.table(table.name)} set ${sql.ref(column)} = deferred.value
      from (values ${sql.join(values)}) as deferred(key, value) where ${sql.ref(`${table.name}.${key}`)} = deferred.key`.execute(db);
  }
}

/** Identity columns continue after the copied ids. */
async function advanceIdentities(db: Transaction<DB>): Promise<void> {
  const { rows } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns where table_schema = 'public' and is_identity = 'YES'`.execute(db);
  for (const { table_name: table, column_name: column } of rows) {
    await sql`select setval(pg_get_serial_sequence(${table}, ${column}), coalesce((select max(${sql.ref(column)}) from ${sql.table(table)}), 0) + 1, false)`.execute(
      db,
    );
  }
}

async function textColumnsOf(db: Kysely<DB> | Transaction<DB>, table: string): Promise<Set<string>> {
  const { rows } = await sql<{ column_name: string }>`select column_name from information_schema.columns
    where table_schema = 'public' and table_name = ${table} and data_type = 'text'`.execute(db);
  return new Set(rows.map((row) => row.column_name));
}

/** Refuses a target that holds data, or another schema than the one this version makes. */
async function checkTarget(url: string): Promise<void> {
  const target = await openPostgres(url, undefined, { migrate: false, maxConnections: 2 });
  try {
    const applied = await target.appliedMigrations();
    const foreign = applied.filter((name) => !MIGRATION_NAMES.includes(name));
    if (foreign.length > 0 || MIGRATION_NAMES.slice(0, applied.length).join() !== applied.join()) {
      throw new ConflictError(
        'migrate_schema_mismatch',
        `${target.url} has another schema (${applied.at(-1) ?? 'none'}; this version makes ${MIGRATION_NAMES.at(-1)}): migrate into an empty database. Nothing was changed`,
        { applied, expected: MIGRATION_NAMES },
      );
    }
    const { rows: tables } = await sql<{ name: string }>`select table_name as name from information_schema.tables
      where table_schema = 'public' and table_type = 'BASE TABLE'`.execute(target.kysely);
    if (applied.length === 0 && tables.length > 0) {
      throw new ConflictError(
        'migrate_target_not_empty',
        `${target.url} already holds tables (${tables.map((row) => row.name).join(', ')}). Nothing was changed`,
      );
    }
    for (const { name } of tables) {
      if (BOOKKEEPING.test(name) || name === COUNTERS) continue;
      const { rows } = await sql<{ found: number }>`select count(*) as found from (select 1 from ${sql.table(name)} limit 1) as any_row`.execute(target.kysely);
      if ((rows[0]?.found ?? 0) > 0) {
        throw new ConflictError(
          'migrate_target_not_empty',
          `${target.url} already holds data (table ${name}): migrate into an empty database. Nothing was changed`,
          {
            table: name,
          },
        );
      }
    }
  } finally {
    await target.close();
  }
}

/** A service still heartbeating into the source: it could write after the copy is taken. */
async function checkNoService(source: BetterSqlite3.Database, staleMs: number, holderGone: MigrateOptions['holderGone']): Promise<void> {
  const since = new Date(Date.now() - staleMs).toISOString();
  const workers = source.prepare('select holder from job_workers where seen_at >= ?').all(since) as Array<{ holder: string }>;
  for (const worker of workers) {
    const holder = JSON.parse(worker.holder) as LeaseHolder;
    if (!(await holderGone(holder))) {
      throw new ConflictError(
        'service_running',
        `the service is running (pid ${holder.pid} on ${holder.host}); stop it first (systemctl stop disk2iso). Nothing was changed`,
      );
    }
  }
}

function openSource(file: string): BetterSqlite3.Database {
  let source: BetterSqlite3.Database;
  try {
    source = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new UnavailableError('database_open_failed', `Cannot open database ${file}: ${errorMessage(error)}`, { file });
  }
  const applied = (
    source.prepare("select name from sqlite_master where type = 'table' and name = 'kysely_migration'").get() === undefined
      ? []
      : (source.prepare('select name from kysely_migration order by name').all() as Array<{ name: string }>)
  ).map((row) => row.name);
  if (applied.join() !== MIGRATION_NAMES.join()) {
    source.close();
    throw new ConflictError(
      'migrate_schema_mismatch',
      `${file} is at schema ${applied.at(-1) ?? 'none'}, this version at ${MIGRATION_NAMES.at(-1)}: start the service of this version once to bring it up to date. Nothing was changed`,
      { applied, expected: MIGRATION_NAMES },
    );
  }
  return source;
}

/**
 * Copies every table of the embedded database into an empty PostgreSQL database in one
 * transaction, and checks each table's rows on both sides before committing: all or nothing.
 */
export async function migrateToPostgres(options: MigrateOptions): Promise<MigrateReport> {
  const batchRows = options.batchRows ?? 500;
  const source = openSource(options.sqliteFile);
  try {
    await checkNoService(source, options.staleMs, options.holderGone);
    await checkTarget(options.url);
    const target: PostgresDatabase = await openPostgres(options.url);
    try {
      const tables = foreignKeyOrder(sourceTables(source));
      return await target.kysely.transaction().execute(async (tx) => {
        await sql`delete from ${sql.table(COUNTERS)}`.execute(tx);
        for (const table of tables) {
          let batch: Row[] = [];
          const rows = table.selfReference === null ? sourceRows(source, table) : parentsFirst([...sourceRows(source, table)], table.selfReference);
          for (const row of rows) {
            batch.push(row);
            if (batch.length >= batchRows) {
              await insertBatch(tx, table, batch);
              batch = [];
            }
          }
          await insertBatch(tx, table, batch);
        }
        for (const table of tables.filter((candidate) => candidate.deferred.length > 0)) {
          let batch: Row[] = [];
          for (const row of sourceRows(source, table)) {
            batch.push(row);
            if (batch.length >= batchRows) {
              await setDeferred(tx, table, batch);
              batch = [];
            }
          }
          await setDeferred(tx, table, batch);
        }
        await advanceIdentities(tx);
        const checks: TableCheck[] = [];
        for (const table of tables) {
          const from = sourceCheck(source, table);
          const to = await targetCheck(tx, table, await textColumnsOf(tx, table.name));
          checks.push({ table: table.name, sourceRows: from.rows, targetRows: to.rows, sourceChecksum: from.checksum, targetChecksum: to.checksum });
        }
        const differing = checks.filter((check) => check.sourceRows !== check.targetRows || check.sourceChecksum !== check.targetChecksum);
        if (differing.length > 0) {
          throw new UnavailableError(
            'migrate_verification_failed',
            `the copy differs from the source in ${differing.map((check) => check.table).join(', ')}; nothing was committed`,
            { tables: differing.map((check) => check.table) },
          );
        }
        const derived = [];
        for (const table of ['archives_fts', 'archive_file_search']) {
          const { rows } = await sql<{ rows: number }>`select count(*) as rows from ${sql.table(table)}`.execute(tx);
          derived.push({ table, rows: rows[0]?.rows ?? 0 });
        }
        return { tables: checks, derived };
      });
    } finally {
      await target.close();
    }
  } finally {
    source.close();
  }
}
