import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import pg from 'pg';

/**
 * A throwaway PostgreSQL server for one test file: its own cluster in a temporary directory, its
 * own port and unix socket, never the system's cluster (which a fresh Debian install may or may not
 * have created and started: either way it is left alone). initdb refuses to run as root, so the
 * cluster belongs to the `postgres` user the Debian package creates.
 */
export interface PostgresServer {
  readonly port: number;
  /** The postmaster's process id. */
  readonly pid: number;
  /** The directory holding the cluster and the unix socket. */
  readonly dir: string;
  /** The superuser's password; TCP connections need it, the unix socket does not. */
  readonly password: string;
  /** Milliseconds from initdb to the server accepting connections. */
  readonly startMs: number;
  /** A new empty database (`name` or a name of its own); returns its TCP URL (with the password). */
  createDatabase(name?: string): Promise<string>;
  /** The TCP URL of an existing database. */
  url(database: string): string;
  /** Stops the server (fast shutdown) and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
const START_TIMEOUT_MS = 30_000;

/** The newest PostgreSQL 15+ Debian installs side by side under /usr/lib/postgresql/VERSION/bin. */
function postgresBinaries(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .map(Number)
        .filter((version) => Number.isInteger(version) && version >= 15)
        .sort((a, b) => b - a)
    : [];
  if (versions.length === 0) throw new Error('PostgreSQL 15 or newer is not installed (Debian package postgresql; scripts/test.sh installs it)');
  return join(root, String(versions[0]), 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Runs a program as the postgres user. setpriv execs it in place (runuser would fork and stay in
 * between), so `--pdeathsig` ties the server to this process: if the test process dies without
 * reaching its `after` hook, the kernel sends the server SIGQUIT and no orphan is left running.
 */
function asPostgres(program: string, args: readonly string[]): string[] {
  return ['--reuid', SUPERUSER, '--regid', SUPERUSER, '--init-groups', '--pdeathsig', 'QUIT', '--', program, ...args];
}

export async function startPostgres(): Promise<PostgresServer> {
  const started = performance.now();
  const bin = postgresBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'disk2iso-pg-'));
  const owner = spawnSync('id', ['-u', SUPERUSER], { encoding: 'utf8' });
  const group = spawnSync('id', ['-g', SUPERUSER], { encoding: 'utf8' });
  if (owner.status !== 0 || group.status !== 0) throw new Error('no postgres OS user: install the Debian package postgresql');
  chownSync(dir, Number(owner.stdout), Number(group.stdout));
  const password = randomBytes(12).toString('hex');
  const passwordFile = join(dir, 'pwfile');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  chownSync(passwordFile, Number(owner.stdout), Number(group.stdout));
  let server: ChildProcess | undefined;
  const remove = (): void => {
    if (server?.exitCode === null && server.pid !== undefined) {
      try {
        process.kill(server.pid, 'SIGQUIT');
      } catch {
        // Already gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // A test file that ends by an uncaught exception skips its after hooks; this still runs.
  process.once('exit', remove);
  try {
    const data = join(dir, 'data');
    const init = spawnSync(
      'setpriv',
      asPostgres(join(bin, 'initdb'), [
        '--pgdata',
        data,
        '--username',
        SUPERUSER,
        '--pwfile',
        passwordFile,
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ]),
      { encoding: 'utf8', cwd: dir },
    );
    if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${init.stderr}`);
    rmSync(passwordFile);
    let port = 0;
    let lastError = '';
    // A port found free can be taken by someone else before the server binds it: try again then.
    for (let attempt = 0; attempt < 5 && server === undefined; attempt++) {
      port = await freePort();
      const logFile = join(dir, `server-${attempt}.log`);
      const log = openSync(logFile, 'a', 0o600);
      const candidate = spawn(
        'setpriv',
        asPostgres(join(bin, 'postgres'), [
          '-D',
          data,
          '-p',
          String(port),
          '-k',
          dir,
          '-c',
          'listen_addresses=127.0.0.1',
          // Durability is worthless for a throwaway cluster and costs the tests time.
          '-c',
          'fsync=off',
          '-c',
          'synchronous_commit=off',
          '-c',
          'full_page_writes=off',
          '-c',
          'max_connections=50',
        ]),
        // Its log goes to a file, not a pipe: scripts/run-tests.mjs waits for the test processes in
        // spawnSync and reads no pipe meanwhile, and a server whose log pipe is full blocks in its
        // next log line (the checkpointer's, under DROP DATABASE) with every test waiting for it.
        { cwd: dir, stdio: ['ignore', 'ignore', log] },
      );
      closeSync(log);
      if (await acceptsConnections(candidate, dir, port)) {
        server = candidate;
      } else {
        candidate.kill('SIGQUIT');
        lastError = readFileSync(logFile, 'utf8');
      }
    }
    if (server === undefined) throw new Error(`postgres did not start: ${lastError}`);
    const running = server;
    const startMs = Math.round(performance.now() - started);
    let databases = 0;
    const url = (database: string) => `postgres://${SUPERUSER}:${password}@127.0.0.1:${port}/${database}`;
    return {
      port,
      pid: running.pid ?? 0,
      dir,
      password,
      startMs,
      url,
      async createDatabase(chosen?: string) {
        databases += 1;
        const name = chosen ?? `test_${process.pid}_${databases}`;
        if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`createDatabase: ${name} is not a plain database name`);
        await withAdmin(dir, port, (client) => client.query(`create database ${name}`));
        return url(name);
      },
      async stop() {
        if (running.exitCode === null) {
          const exited = new Promise((resolveExit) => running.once('exit', resolveExit));
          running.kill('SIGINT');
          await exited;
        }
        process.removeListener('exit', remove);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    process.removeListener('exit', remove);
    remove();
    throw error;
  }
}

async function withAdmin<T>(socketDir: string, port: number, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ host: socketDir, port, user: SUPERUSER, database: 'postgres' });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Polls the unix socket until the server answers, or the process ends (a taken port). */
async function acceptsConnections(server: ChildProcess, socketDir: string, port: number): Promise<boolean> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) return false;
    try {
      await withAdmin(socketDir, port, (client) => client.query('select 1'));
      return true;
    } catch {
      await new Promise((resolveWait) => setTimeout(resolveWait, 50));
    }
  }
  return false;
}

/** The server of a test file: `server()` inside tests, `await server.ready()` inside the file's own before hooks. */
interface PostgresForFile {
  (): PostgresServer;
  ready(): Promise<PostgresServer>;
}

/**
 * One server for the test file that calls this at its top level: started before its first test,
 * stopped and removed after its last, whether they passed or not. Node 20 runs a file's top-level
 * before hooks concurrently, so a hook of the file that needs the server awaits `ready()`.
 */
export function usePostgres(): PostgresForFile {
  let starting: Promise<PostgresServer> | undefined;
  let server: PostgresServer | undefined;
  const ready = (): Promise<PostgresServer> => {
    starting ??= startPostgres().then((started) => {
      server = started;
      process.stderr.write(`# postgres harness started in ${started.startMs} ms on port ${started.port}\n`);
      return started;
    });
    return starting;
  };
  before(ready);
  after(async () => {
    // A start still under way is awaited, so its server is stopped too.
    await starting?.then(
      (started) => started.stop(),
      () => undefined,
    );
  });
  const current = (): PostgresServer => {
    if (server === undefined) throw new Error('usePostgres: the server is used before it started');
    return server;
  };
  return Object.assign(current, { ready });
}
