import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { UnavailableError, errorMessage } from '../errors.js';
import { type Database, type DatabaseLogger, type Executor, transactionOn } from './database.js';
import { migrationProvider } from './migrations/index.js';
import type { DB } from './schema.js';

/** The cluster mode's database: PostgreSQL 15 or newer, with the same schema and migrations as the embedded one. */
export interface PostgresDatabase extends Database {
  readonly dialect: 'postgres';
  /** The URL without its password, for messages and logs (also `location`). */
  readonly url: string;
}

export interface OpenPostgresOptions {
  /** Migrate to the newest schema (the default); off for a look at a database as it is. */
  migrate?: boolean;
  /** Connections in the pool. */
  maxConnections?: number;
}

/** Query parameters of a connection URL that carry a secret: libpq's, which pg reads from the URL too. */
const SECRET_PARAMETERS = ['password', 'sslpassword'];

/** A postgres:// URL with its password replaced (in the user info or as a parameter), safe to print and log. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    for (const name of SECRET_PARAMETERS) if (parsed.searchParams.has(name)) parsed.searchParams.set(name, '***');
    return parsed.toString();
  } catch {
    return '(an unreadable database URL)';
  }
}

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/**
 * int8 (bigint columns, count(*)) and numeric (sum() of bigints) arrive as strings by default. The
 * values stored are byte counts of a few hundred GB at most, far below 2^53, so they become numbers;
 * one beyond that would lose digits silently, so it fails loudly instead.
 */
function exactNumber(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value)))
    throw new RangeError(`database value ${text} is beyond what a JavaScript number holds exactly`);
  return value;
}

const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID || oid === NUMERIC_OID) return exactNumber;
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/**
 * Two instances starting together must not both migrate: the first to take this advisory lock
 * migrates, the others wait for it and then find nothing to do. Its own key, so no lock of
 * kysely's (which it takes inside the migration transaction) or of pg-boss's collides with it.
 */
const MIGRATION_LOCK_KEY = 0x6469_736b; // "disk"

/** How long a new connection may take before the statement waiting for it fails (a server that is down or out of reach). */
const CONNECT_TIMEOUT_MS = 10_000;

/** Connects to a PostgreSQL database and brings its schema up to date (like openDatabase for SQLite). */
export async function openPostgres(url: string, log?: DatabaseLogger, options: OpenPostgresOptions = {}): Promise<PostgresDatabase> {
  const shownUrl = redactedUrl(url);
  let pool: pg.Pool;
  try {
    // keepAlive: a link cut without a reset (a dead route) is found by the kernel instead of hanging for the TCP timeout.
    pool = new pg.Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      types: typeParsers,
      keepAlive: true,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
  } catch (error) {
    throw new UnavailableError('database_open_failed', `Cannot open database ${shownUrl}: ${errorMessage(error)}`, { url: shownUrl });
  }
  // A connection the server drops (restart, network) must not crash the process: the pool reports
  // an idle one here; a checked-out one emits on its client, whose statement fails with the same
  // error anyway, and without a listener that emit would be an uncaught exception.
  const dropped = (error: Error): void => log?.info({ url: shownUrl, reason: errorMessage(error) }, 'database connection lost');
  pool.on('error', dropped);
  pool.on('connect', (client) => client.on('error', dropped));
  const kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  try {
    const client = await connect(pool, shownUrl);
    try {
      const version = await client.query<{ server_version_num: string }>('show server_version_num');
      if (Number(version.rows[0]?.server_version_num) < 150000)
        throw new UnavailableError('database_open_failed', `Database ${shownUrl} runs a PostgreSQL older than 15`, { url: shownUrl });
      if (options.migrate !== false) await migrate(client, kysely, shownUrl, log);
    } finally {
      client.release();
    }
  } catch (error) {
    await kysely.destroy();
    throw error;
  }
  return {
    dialect: 'postgres',
    url: shownUrl,
    location: shownUrl,
    kysely,
    transaction: (work) => retriedTransaction(kysely, work),
    appliedMigrations: () => appliedMigrations(kysely),
    close: () => kysely.destroy(),
  };
}

/** serialization_failure and deadlock_detected: the server gave up one transaction so others could go on; run it again. */
const RETRYABLE_CODES = new Set(['40001', '40P01']);
const TRANSACTION_ATTEMPTS = 5;

async function retriedTransaction<T>(kysely: Kysely<DB>, work: (tx: Executor) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transactionOn(kysely, work);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (attempt >= TRANSACTION_ATTEMPTS || typeof code !== 'string' || !RETRYABLE_CODES.has(code)) throw error;
    }
  }
}

async function connect(pool: pg.Pool, shownUrl: string): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (error) {
    throw new UnavailableError('database_open_failed', `Cannot open database ${shownUrl}: ${errorMessage(error)}`, { url: shownUrl });
  }
}

async function appliedMigrations(kysely: Kysely<DB>): Promise<string[]> {
  const { rows } = await sql<{ exists: boolean }>`select to_regclass('kysely_migration') is not null as exists`.execute(kysely);
  if (rows[0]?.exists !== true) return [];
  const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(kysely);
  return applied.rows.map((row) => row.name);
}

/** The migrations run on other connections of the pool while `lockHolder` holds the lock. */
async function migrate(lockHolder: pg.PoolClient, kysely: Kysely<DB>, shownUrl: string, log: DatabaseLogger | undefined): Promise<void> {
  await lockHolder.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
  try {
    // PostgreSQL changes its schema in transactions: kysely runs all pending migrations in one.
    const { error, results } = await new Migrator({ db: kysely, provider: migrationProvider }).migrateToLatest();
    const failed = results?.find((result) => result.status === 'Error');
    if (error !== undefined || failed !== undefined) {
      const name = failed?.migrationName;
      throw new UnavailableError(
        'database_migration_failed',
        `Database migration ${name ?? '(before any migration ran)'} failed on ${shownUrl}: ${errorMessage(error)}`,
        { url: shownUrl, migration: name ?? null },
      );
    }
    const applied = (results ?? []).map((result) => result.migrationName);
    if (applied.length > 0) log?.info({ url: shownUrl, migrations: applied }, 'database migrated');
  } finally {
    await lockHolder.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
  }
}
