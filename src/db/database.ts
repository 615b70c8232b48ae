import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import {
  type Compilable,
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  Migrator,
  type SqliteDatabase,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  type Transaction,
} from 'kysely';
import { ConflictError, UnavailableError, errorMessage } from '../errors.js';
import { MIGRATION_NAMES, migrationProvider } from './migrations/index.js';
import type { DB } from './schema.js';

/** The slice of a pino logger the database uses (src/db/postgres.ts too). */
export interface DatabaseLogger {
  info(details: Record<string, unknown>, message: string): void;
}

export interface OpenDatabaseOptions {
  /** SQLite file (created with mode 0600), or `:memory:`. */
  file: string;
  log?: DatabaseLogger;
  /**
   * Where a copy of the database goes before a migration changes an existing one
   * (`disk2iso-before-MIGRATION-TIME.db`); none is made without it.
   */
  backupDir?: string;
}

/**
 * Runs queries built with `database.kysely` on the connection of an open transaction. Build them
 * with `database.kysely` and hand them over unexecuted: `tx.all(kysely.selectFrom(...))`.
 */
export interface Executor {
  all<R>(query: Compilable<R>): Promise<R[]>;
  first<R>(query: Compilable<R>): Promise<R | undefined>;
  /** Resolves to the number of rows changed. */
  run(query: Compilable<unknown>): Promise<number>;
  /**
   * Runs `callback` once the transaction has committed; never when it rolls back, and only for the
   * run of `work` that committed. The way to announce what the transaction wrote (events, metrics,
   * in-memory state). It must not throw.
   */
  afterCommit(callback: () => void): void;
}

/**
 * The service's state, on either engine: the embedded SQLite file (the default) or PostgreSQL (the
 * cluster mode, src/db/postgres.ts). Repositories take this and nothing engine-specific; where the
 * SQL differs they ask `dialect` (src/db/dialect.ts).
 */
export interface Database {
  readonly dialect: 'sqlite' | 'postgres';
  /** Where the data is, for messages and logs: the SQLite file, or the URL without its password. */
  readonly location: string;
  /** For single statements outside a transaction. Never call `kysely.transaction()`: use `transaction`. */
  readonly kysely: Kysely<DB>;
  /**
   * Runs `work` in one write transaction and commits what it wrote, or rolls everything back when
   * it throws. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken at the start, so a
   * transaction that reads and then writes never fails because another process wrote in between;
   * other processes wait up to the busy timeout for it. No other statement of this process runs
   * while it is open: they wait for the single connection. On PostgreSQL it runs on a connection of
   * the pool, concurrently with others, and is run again when the server refuses it for a
   * serialization conflict or a deadlock.
   *
   * Rules for `work`:
   * - It touches the database only through `tx`. A query through `database.kysely` or a nested
   *   `transaction()` waits for the connection this transaction holds: it never returns.
   * - It does no other I/O and has no side effects outside the database (no events, no changes to
   *   in-memory state, no files): it may be run more than once, and the transaction blocks every
   *   other statement while it waits. Do those after `transaction()` resolved, from its result.
   */
  transaction<T>(work: (tx: Executor) => Promise<T>): Promise<T>;
  /** The names of the migrations applied to this database, in order: its schema version. */
  appliedMigrations(): Promise<string[]>;
  close(): Promise<void>;
}

/** The embedded database: one SQLite file, which can be copied while in use. */
export interface EmbeddedDatabase extends Database {
  readonly dialect: 'sqlite';
  readonly file: string;
  /** A consistent copy of the whole database at one moment, taken while others keep reading and writing (SQLite's online backup). */
  backup(destination: string): Promise<void>;
}

/** The embedded database itself, for what only a SQLite file allows (an online copy); ConflictError in the cluster mode. */
export function embeddedOnly(database: Database): EmbeddedDatabase {
  if (database.dialect !== 'sqlite' || !('backup' in database))
    throw new ConflictError('backup_not_embedded', `The state is in PostgreSQL (${database.location}): back it up with pg_dump or base backups`, {
      location: database.location,
    });
  return database as EmbeddedDatabase;
}

/** SQLite's integrity check of a database file nobody has open (a backup's copy): `ok` when it is whole. */
export function integrityOf(file: string): string {
  let copy: BetterSqlite3.Database;
  try {
    copy = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  } catch (error) {
    return errorMessage(error);
  }
  try {
    return String(copy.pragma('integrity_check', { simple: true }));
  } catch (error) {
    return errorMessage(error);
  } finally {
    copy.close();
  }
}

/**
 * Empties the register of running services (job_workers) in a database file nobody has open: a
 * restored copy's rows name processes of the installation it came from, and one of them still
 * alive on this host would make a service look running.
 */
export function forgetWorkersIn(file: string): void {
  const copy = new BetterSqlite3(file);
  try {
    if (copy.prepare("select name from sqlite_master where type = 'table' and name = 'job_workers'").get() !== undefined)
      copy.prepare('delete from job_workers').run();
  } finally {
    copy.close();
  }
}

/** The migrations in `applied` that this version does not know: those of a newer version, whose schema it could not run. */
export function unknownMigrations(applied: readonly string[]): string[] {
  return applied.filter((name) => !MIGRATION_NAMES.includes(name));
}

/** The service's database inside the data dir; the service and the CLI open the same file. */
export function databaseFile(dataDir: string): string {
  return join(dataDir, 'disk2iso.db');
}

const BUSY_TIMEOUT_MS = 5000;
const FILE_MODE = 0o600;

/** Opens (creating if needed) the database and brings its schema up to date. */
export function openDatabase(options: OpenDatabaseOptions): Promise<EmbeddedDatabase> {
  const file = options.file === ':memory:' ? options.file : resolve(options.file);
  return oneOpenAtATime(file, () => openNow(file, options.log, options.backupDir));
}

// Migrations run under SQLite's write lock across awaits, so a second open of the same file in
// this thread would block the thread on that lock; opens of one file in one process take turns.
const opensInProgress = new Map<string, Promise<unknown>>();

function oneOpenAtATime<T>(file: string, open: () => Promise<T>): Promise<T> {
  const previous = opensInProgress.get(file) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(open);
  opensInProgress.set(file, next);
  const forget = (): void => {
    if (opensInProgress.get(file) === next) opensInProgress.delete(file);
  };
  next.then(forget, forget);
  return next;
}

async function openNow(file: string, log: DatabaseLogger | undefined, backupDir: string | undefined): Promise<EmbeddedDatabase> {
  if (file !== ':memory:') createPrivateFile(file);
  const raw = await connect(file);
  const prepare = statementCache(raw);
  const turns = turnsOf(file);
  // The connection is closed here, in a turn of its own, not by kysely (which closes only what it has used).
  const connection = { prepare, close: () => undefined } satisfies SqliteDatabase;
  const kysely = new Kysely<DB>({ dialect: new ImmediateSqliteDialect(raw, turns, { database: connection }) });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await kysely.destroy();
      const end = await turns.take();
      raw.close();
      end();
      turns.leave();
    })();
    return closing;
  };
  try {
    const end = await turns.take();
    // Its own kysely, outside the turns, which this open holds until the schema is current.
    const migrating = new Kysely<DB>({ dialect: new SqliteDialect({ database: connection }) });
    try {
      if (backupDir !== undefined && file !== ':memory:') await backUpBeforeMigrating(raw, file, backupDir, log);
      await migrate(raw, migrating, file, log);
    } finally {
      await migrating.destroy();
      end();
    }
    if (file !== ':memory:') restrictSidecarFiles(file);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    dialect: 'sqlite',
    location: file,
    file,
    kysely,
    transaction: (work) => transactionOn(kysely, work),
    backup: (destination) => copyDatabase(raw, destination),
    appliedMigrations: async () => appliedMigrations(raw),
    close,
  };
}

/**
 * Who uses the connections to one database file in this process, one at a time, first come first
 * served. A transaction stays open across awaits; a second connection of this thread that then
 * asked SQLite for the write lock would block the thread in the busy timeout, and with it the
 * transaction it waits for. Taking turns here, every statement and transaction waits without
 * blocking instead. The service opens one connection; tests and the CLI's checks open more.
 */
interface Turns {
  /** Resolves once it is the caller's turn, with the function that ends it. */
  take(): Promise<() => void>;
  /** Drops one connection's hold on these turns (at its close). */
  leave(): void;
}

const turnsByFile = new Map<string | symbol, { turns: Turns; connections: number }>();

function turnsOf(file: string): Turns {
  // Every `:memory:` database is a database of its own.
  const key = file === ':memory:' ? Symbol(file) : file;
  const known = turnsByFile.get(key);
  if (known !== undefined) {
    known.connections += 1;
    return known.turns;
  }
  let last: Promise<void> = Promise.resolve();
  const entry = {
    connections: 1,
    turns: {
      async take() {
        const before = last;
        let end = (): void => undefined;
        last = new Promise<void>((resolve) => {
          end = resolve;
        });
        await before;
        return end;
      },
      leave() {
        entry.connections -= 1;
        if (entry.connections === 0) turnsByFile.delete(key);
      },
    },
  };
  turnsByFile.set(key, entry);
  return entry.turns;
}

/** Made private (0600) before SQLite writes into it: the copy holds what the database holds. */
async function copyDatabase(raw: BetterSqlite3.Database, destination: string): Promise<void> {
  mkdirSync(dirname(destination), { recursive: true, mode: 0o700 });
  closeSync(openSync(destination, 'w', FILE_MODE));
  restrictMode(destination);
  await raw.backup(destination);
}

function appliedMigrations(raw: BetterSqlite3.Database): string[] {
  const table = raw.prepare("select name from sqlite_master where type = 'table' and name = 'kysely_migration'").get();
  if (table === undefined) return [];
  return (raw.prepare('select name from kysely_migration order by name').all() as Array<{ name: string }>).map((row) => row.name);
}

/**
 * A migration rewrites tables; if it went wrong, or a newer version had to be left, the copy made
 * just before it is the way back. Only an existing database with a migration pending gets one.
 */
async function backUpBeforeMigrating(raw: BetterSqlite3.Database, file: string, backupDir: string, log: DatabaseLogger | undefined): Promise<void> {
  const applied = new Set(appliedMigrations(raw));
  if (applied.size === 0) return;
  const pending = MIGRATION_NAMES.filter((name) => !applied.has(name));
  if (pending.length === 0) return;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const copy = join(backupDir, `disk2iso-before-${pending[0]}-${stamp}.db`);
  await copyDatabase(raw, copy);
  log?.info({ file, copy, pending }, 'database backed up before migrating');
}

async function connect(file: string): Promise<BetterSqlite3.Database> {
  let raw: BetterSqlite3.Database | undefined;
  try {
    raw = new BetterSqlite3(file, { timeout: BUSY_TIMEOUT_MS });
    await enableWriteAheadLog(raw);
    raw.pragma('synchronous = NORMAL');
    raw.pragma('foreign_keys = ON');
    return raw;
  } catch (error) {
    raw?.close();
    throw new UnavailableError('database_open_failed', `Cannot open database ${file}: ${errorMessage(error)}`, { file });
  }
}

const WAL_RETRY_MS = 20;

/**
 * Switching a new file to WAL upgrades a shared lock to an exclusive one. When processes open a
 * new file together, SQLite refuses all but one of them at once with SQLITE_BUSY instead of
 * waiting (waiting could deadlock), so the busy timeout does not apply and we wait here.
 */
async function enableWriteAheadLog(raw: BetterSqlite3.Database): Promise<void> {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      raw.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if (!(error instanceof BetterSqlite3.SqliteError && error.code === 'SQLITE_BUSY') || Date.now() >= deadline) throw error;
      await sleep(WAL_RETRY_MS);
    }
  }
}

function createPrivateFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const isNew = !existsSync(file);
  closeSync(openSync(file, 'a', FILE_MODE));
  restrictMode(file);
  if (isNew) giveToFolderOwner(file);
}

/**
 * A database root's command makes in the service's data directory must stay the service's: root
 * hands it to the folder's owner. SQLite itself gives its -wal and -shm files the database file's
 * owner when it runs as root.
 */
export function giveToFolderOwner(path: string): void {
  if (process.getuid?.() !== 0) return;
  const folder = statSync(dirname(path));
  if (folder.uid !== 0) chownSync(path, folder.uid, folder.gid);
}

/** SQLite gives -wal and -shm the database file's mode; files left by an older run may differ. */
function restrictSidecarFiles(file: string): void {
  for (const sidecar of [`${file}-wal`, `${file}-shm`]) {
    if (existsSync(sidecar)) restrictMode(sidecar);
  }
}

function restrictMode(path: string): void {
  if ((statSync(path).mode & 0o777) !== FILE_MODE) chmodSync(path, FILE_MODE);
}

async function migrate(raw: BetterSqlite3.Database, kysely: Kysely<DB>, file: string, log: DatabaseLogger | undefined): Promise<void> {
  // kysely's SQLite migration lock is a no-op and its transaction is deferred, so two processes
  // opening a new file together could both try to create the schema. BEGIN IMMEDIATE makes the
  // second wait, then find the migrations applied.
  const migrator = new Migrator({ db: kysely, provider: migrationProvider, disableTransactions: true });
  raw.exec('BEGIN IMMEDIATE');
  try {
    const { error, results } = await migrator.migrateToLatest();
    const failed = results?.find((result) => result.status === 'Error');
    if (error !== undefined || failed !== undefined) {
      const name = failed?.migrationName;
      throw new UnavailableError(
        'database_migration_failed',
        `Database migration ${name ?? '(before any migration ran)'} failed on ${file}: ${errorMessage(error)}`,
        { file, migration: name ?? null },
      );
    }
    raw.exec('COMMIT');
    const applied = (results ?? []).map((result) => result.migrationName);
    if (applied.length > 0) log?.info({ file, migrations: applied }, 'database migrated');
  } finally {
    if (raw.inTransaction) raw.exec('ROLLBACK');
  }
}

/** Statements kept prepared; past this, the least recently prepared one is dropped. */
const MAX_PREPARED_STATEMENTS = 500;

/**
 * kysely prepares a statement anew for every execution, which cost the service as much CPU as
 * running the statements (a request's API-key lookup and list-version check are the same SQL every
 * time). A statement is reusable once it has run, and nothing here iterates over one: every
 * execution is a complete all(), get() or run().
 */
function statementCache(raw: BetterSqlite3.Database): (sql: string) => BetterSqlite3.Statement {
  const prepared = new Map<string, BetterSqlite3.Statement>();
  return (sql) => {
    const cached = prepared.get(sql);
    if (cached !== undefined) return cached;
    if (prepared.size >= MAX_PREPARED_STATEMENTS) {
      const oldest = prepared.keys().next().value;
      if (oldest !== undefined) prepared.delete(oldest);
    }
    const statement = raw.prepare(sql);
    prepared.set(sql, statement);
    return statement;
  };
}

/**
 * kysely's SQLite driver begins deferred transactions: one that reads and then writes fails at once
 * with SQLITE_BUSY, without waiting, when another process wrote in between. Its single connection
 * is held under a mutex from BEGIN to COMMIT, so no other statement of this process interleaves.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  constructor(
    private readonly raw: BetterSqlite3.Database,
    private readonly turns: Turns,
    private readonly driverConfig: SqliteDialectConfig,
  ) {
    super(driverConfig);
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.raw, this.turns, this.driverConfig);
  }
}

class ImmediateSqliteDriver extends SqliteDriver {
  private endTurn: (() => void) | undefined;

  constructor(
    private readonly raw: BetterSqlite3.Database,
    private readonly turns: Turns,
    config: SqliteDialectConfig,
  ) {
    super(config);
  }

  /** The file's turn first: the connection's own mutex then never waits, as only one caller holds the turn. */
  override async acquireConnection(): Promise<DatabaseConnection> {
    const end = await this.turns.take();
    this.endTurn = end;
    return super.acquireConnection();
  }

  override async releaseConnection(): Promise<void> {
    const end = this.endTurn;
    this.endTurn = undefined;
    await super.releaseConnection();
    end?.();
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  /** SQLite rolls back by itself after some errors (a full disk, an I/O error); a second rollback would hide the error that caused it. */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (this.raw.inTransaction) await connection.executeQuery(CompiledQuery.raw('rollback'));
  }
}

/** Runs `work` in a kysely transaction and then the callbacks it registered with `afterCommit` (also PostgreSQL's). */
export async function transactionOn<T>(kysely: Kysely<DB>, work: (tx: Executor) => Promise<T>): Promise<T> {
  const committed: Array<() => void> = [];
  const result = await kysely.transaction().execute((trx) => work(executorOf(trx, committed)));
  for (const callback of committed) callback();
  return result;
}

function executorOf(trx: Transaction<DB>, committed: Array<() => void>): Executor {
  return {
    afterCommit(callback: () => void): void {
      committed.push(callback);
    },
    async all<R>(query: Compilable<R>): Promise<R[]> {
      return (await trx.executeQuery(query.compile())).rows;
    },
    async first<R>(query: Compilable<R>): Promise<R | undefined> {
      return (await trx.executeQuery(query.compile())).rows[0];
    },
    async run(query: Compilable<unknown>): Promise<number> {
      const result = await trx.executeQuery(query.compile());
      // A statement with RETURNING runs as a query, which reports its rows instead of a count.
      return Number(result.numAffectedRows ?? BigInt(result.rows.length));
    },
  };
}
