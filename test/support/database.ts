import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { type Database, openDatabase } from '../../src/db/database.js';
import { openPostgres } from '../../src/db/postgres.js';

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
