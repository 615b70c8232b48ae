import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { nodeNameOf } from '../../src/config/load.js';
import { type Database, databaseFile, openDatabase } from '../../src/db/database.js';
import { openPostgres, redactedUrl } from '../../src/db/postgres.js';
import { clusterDriveId } from '../../src/drives/service.js';

/**
 * The engine switch of the repository and service suites. `scripts/run-tests.mjs` runs every test
 * file that imports this module twice: once as it is (SQLite), and once in its PostgreSQL pass,
 * which starts one throwaway cluster, migrates a template database in it and hands both to the
 * test processes in this variable. Each test then gets a database of its own, cloned from the
 * template (a file copy inside the server, much quicker than running the migrations again).
 */
const POSTGRES_VARIABLE = 'DISK2ISO_TEST_POSTGRES';

interface PostgresPass {
  /** The superuser's URL of the cluster's `postgres` database. */
  adminUrl: string;
  /** The migrated database every test database is cloned from. */
  template: string;
}

function postgresPass(): PostgresPass | null {
  const value = process.env[POSTGRES_VARIABLE];
  if (value === undefined || value === '') return null;
  return JSON.parse(value) as PostgresPass;
}

/**
 * The id a service under test gives the drive it calls `localName` on this machine: on PostgreSQL
 * (the cluster mode) its node's name comes first, the host name made to fit when the test sets no
 * cluster.node_name.
 */
export function testDriveId(localName: string): string {
  return postgresPass() === null ? localName : clusterDriveId(nodeNameOf(hostname()), localName);
}

/** The full URLs (with the password) of the PostgreSQL databases handed out, for a second connection. */
const urls = new WeakMap<Database, string>();
let created = 0;

/**
 * A fresh, migrated database for one test: a SQLite file in `dir`, or in the PostgreSQL pass a new
 * database of its own, dropped again when it is closed.
 */
export async function openTestDatabase(dir: string): Promise<Database> {
  const pass = postgresPass();
  if (pass === null) return openDatabase({ file: join(dir, 'disk2iso.sqlite') });
  const url = await createTestDatabase();
  const database = await openPostgres(url);
  urls.set(database, url);
  const close = database.close;
  return Object.assign(database, {
    async close() {
      await close();
      await dropTestDatabase(url);
    },
  });
}

/**
 * A new empty-but-migrated PostgreSQL database of the pass; its URL with the password, for a
 * service under test (`database.url`). Only in the PostgreSQL pass.
 */
async function createTestDatabase(): Promise<string> {
  const pass = postgresPass();
  if (pass === null) throw new Error('createTestDatabase: not in the PostgreSQL pass');
  created += 1;
  const name = `t_${process.pid}_${created}_${randomBytes(3).toString('hex')}`;
  await withAdmin(pass, (client) => client.query(`create database ${name} template ${pass.template}`));
  const url = new URL(pass.adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops a database of `createTestDatabase`, ending whatever connections a test left open to it. */
async function dropTestDatabase(url: string): Promise<void> {
  const pass = postgresPass();
  if (pass === null) return;
  const name = new URL(url).pathname.slice(1);
  if (!/^t_\d+_\d+_[0-9a-f]{6}$/.test(name)) throw new Error(`dropTestDatabase: ${name} is not a test database`);
  await withAdmin(pass, (client) => client.query(`drop database if exists ${name} with (force)`));
}

/**
 * A second, independent connection to the same database, as another process (the CLI, a second
 * service) opens it: the same file, or the same PostgreSQL database. Closing it leaves the
 * database in place.
 */
export function openAgain(database: Database): Promise<Database> {
  return openAddress(databaseAddress(database));
}

/**
 * Where `database` is, for a process of its own (a fixture) to open with `openAddress`: the SQLite
 * file, or the PostgreSQL URL with its password.
 */
export function databaseAddress(database: Database): string {
  if (database.dialect === 'sqlite') return database.location;
  const url = urls.get(database);
  if (url === undefined) throw new Error('databaseAddress: a PostgreSQL database not opened by openTestDatabase');
  return url;
}

/** Opens the database at an address of `databaseAddress`, in this process or another. */
export function openAddress(address: string): Promise<Database> {
  return address.startsWith('postgres://') || address.startsWith('postgresql://') ? openPostgres(address) : openDatabase({ file: address });
}

async function withAdmin<T>(pass: PostgresPass, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: pass.adminUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The PostgreSQL database of each data dir made by createTestDataDir in the PostgreSQL pass. */
const dataDirDatabases = new Map<string, string>();

/**
 * A fresh data dir for a service or CLI under test. In the PostgreSQL pass it comes with a new
 * database of its own, which `databaseEnv` hands to every process started on the data dir as
 * `database.url`, as an installation in the cluster mode names it in its configuration.
 */
export async function createTestDataDir(prefix = 'disk2iso-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await attachTestDatabase(dir);
  return dir;
}

/** Gives a data dir the test made itself (e.g. inside its work folder) a database of its own in the PostgreSQL pass, as createTestDataDir does. */
export async function attachTestDatabase(dataDir: string): Promise<void> {
  if (postgresPass() === null) return;
  const key = resolve(dataDir);
  if (dataDirDatabases.has(key)) throw new Error(`attachTestDatabase: ${dataDir} has a database already`);
  dataDirDatabases.set(key, await createTestDatabase());
}

/**
 * What a service or CLI process on `dataDir` needs to find its database: nothing on SQLite (the
 * file in the data dir), `DISK2ISO_DATABASE_URL` in the PostgreSQL pass. A data dir without a
 * database of the pass fails there, so no test silently keeps its state in SQLite in that pass.
 */
export function databaseEnv(dataDir: string): Record<string, string> {
  if (postgresPass() === null) return {};
  const url = dataDirDatabases.get(resolve(dataDir));
  if (url === undefined) throw new Error(`databaseEnv: ${dataDir} was not made by createTestDataDir nor given a database by attachTestDatabase`);
  return { DISK2ISO_DATABASE_URL: url };
}

/** The database of a data dir, opened as another process on it opens it (the CLI, a test's look at what the service wrote). */
export function openDataDirDatabase(dataDir: string): Promise<Database> {
  const url = databaseEnv(dataDir).DISK2ISO_DATABASE_URL;
  return url === undefined ? openDatabase({ file: databaseFile(dataDir) }) : openPostgres(url);
}

/** Drops the database of a data dir in the PostgreSQL pass (ending what connections to it are left). */
export async function detachTestDatabase(dataDir: string): Promise<void> {
  const key = resolve(dataDir);
  const url = dataDirDatabases.get(key);
  if (url === undefined) return;
  dataDirDatabases.delete(key);
  await dropTestDatabase(url);
}

/** Removes a data dir of createTestDataDir, and drops its database in the PostgreSQL pass. */
export async function removeTestDataDir(dataDir: string): Promise<void> {
  await rm(dataDir, { recursive: true, force: true });
  await detachTestDatabase(dataDir);
}

/**
 * Another process holding the write lock a data dir's service needs, until the returned function
 * releases it: SQLite's write lock on the file (BEGIN IMMEDIATE), or on PostgreSQL the row of
 * table_versions every write to the jobs raises (and the readiness probe writes).
 */
export async function holdWriteLock(dataDir: string): Promise<() => Promise<void>> {
  const url = databaseEnv(dataDir).DISK2ISO_DATABASE_URL;
  if (url === undefined) {
    const holder = new BetterSqlite3(databaseFile(dataDir), { timeout: 5000 });
    holder.exec('BEGIN IMMEDIATE');
    return async () => {
      holder.exec('ROLLBACK');
      holder.close();
    };
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('begin');
  await client.query("select version from table_versions where name = 'jobs' for update");
  return async () => {
    await client.query('rollback');
    await client.end();
  };
}

/** Where `disk2iso status` says it read a data dir's state from: the data directory, or the database's URL with its password masked. */
export function shownDatabaseOf(dataDir: string): string {
  const url = databaseEnv(dataDir).DISK2ISO_DATABASE_URL;
  return url === undefined ? `the data directory ${dataDir}` : redactedUrl(url);
}
