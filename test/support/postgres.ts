import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chownSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, isIP } from 'node:net';
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
  /** The postmaster's process id (a new one after a restart). */
  readonly pid: number;
  /** The directory holding the cluster and the unix socket. */
  readonly dir: string;
  /** The superuser's password; TCP connections need it, the unix socket does not. */
  readonly password: string;
  /** Milliseconds from initdb to the server accepting connections. */
  readonly startMs: number;
  /** A new empty database (`name` or a name of its own); returns its TCP URL (with the password). */
  createDatabase(name?: string): Promise<string>;
  /** The TCP URL of an existing database, through 127.0.0.1 or another of the addresses it listens on. */
  url(database: string, host?: string): string;
  /**
   * Stops the server (fast shutdown: open sessions are ended, each client sees its connection
   * close) and removes its directory. Safe to call twice. With `keepData` the cluster stays for
   * `start()`, and is still removed when the test process exits.
   */
  stop(options?: { keepData?: boolean }): Promise<void>;
  /** Starts a server stopped with `keepData` again: the same port, data, password and databases. */
  start(): Promise<void>;
  /** `stop({ keepData: true })`, then `start()`: what a database restart looks like to its clients. */
  restart(): Promise<void>;
}

/** An address to listen on besides 127.0.0.1, and the clients (CIDR) that may connect through it with the password. */
interface PostgresListenAddress {
  readonly address: string;
  readonly clients: string;
}

export interface PostgresOptions {
  /** By default the server listens on 127.0.0.1 alone. */
  readonly listen?: readonly PostgresListenAddress[];
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

/** Refuses anything but a plain address and a network of the same family: both end up in the server's configuration. */
function checkListenAddress({ address, clients }: PostgresListenAddress): void {
  const [network, prefix, ...rest] = clients.split('/');
  const family = isIP(address);
  const bits = Number(prefix);
  const valid = family !== 0 && isIP(network ?? '') === family && rest.length === 0 && /^\d{1,3}$/.test(prefix ?? '') && bits <= (family === 4 ? 32 : 128);
  if (!valid) throw new Error(`startPostgres: listen ${address} for ${clients} is not an address and a network (CIDR) of the same family`);
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const started = performance.now();
  const extraListen = options.listen ?? [];
  for (const listen of extraListen) checkListenAddress(listen);
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
    if (server?.exitCode === null && server.signalCode === null && server.pid !== undefined) {
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
  const data = join(dir, 'data');
  const listenAddresses = ['127.0.0.1', ...extraListen.map((listen) => listen.address)].join(',');
  /** The postmaster on `port` once it accepts connections, or what it said when it could not start (a taken port). */
  let launches = 0;
  const launch = async (port: number): Promise<{ process: ChildProcess } | { error: string }> => {
    launches += 1;
    const logFile = join(dir, `server-${launches}.log`);
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
        `listen_addresses=${listenAddresses}`,
        // Durability is worthless for a throwaway cluster and costs the tests time.
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=200',
      ]),
      // Its log goes to a file, not a pipe: scripts/run-tests.mjs waits for the test processes in
      // spawnSync and reads no pipe meanwhile, and a server whose log pipe is full blocks in its
      // next log line (the checkpointer's, under DROP DATABASE) with every test waiting for it.
      { cwd: dir, stdio: ['ignore', 'ignore', log] },
    );
    closeSync(log);
    if (await acceptsConnections(candidate, dir, port)) return { process: candidate };
    candidate.kill('SIGQUIT');
    return { error: readFileSync(logFile, 'utf8') };
  };
  try {
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
    // initdb's own lines admit the loopback addresses only; each further address admits its clients, with the password.
    if (extraListen.length > 0) {
      appendFileSync(join(data, 'pg_hba.conf'), extraListen.map((listen) => `host all all ${listen.clients} scram-sha-256\n`).join(''));
    }
    let port = 0;
    let lastError = '';
    // A port found free can be taken by someone else before the server binds it: try again then.
    for (let attempt = 0; attempt < 5 && server === undefined; attempt++) {
      port = await freePort();
      const launched = await launch(port);
      if ('process' in launched) server = launched.process;
      else lastError = launched.error;
    }
    if (server === undefined) throw new Error(`postgres did not start: ${lastError}`);
    const startMs = Math.round(performance.now() - started);
    let databases = 0;
    const url = (database: string, host = '127.0.0.1') => `postgres://${SUPERUSER}:${password}@${isIP(host) === 6 ? `[${host}]` : host}:${port}/${database}`;
    let removed = false;
    const shutdown = async (): Promise<void> => {
      const running = server;
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise((resolveExit) => running.once('exit', resolveExit));
      running.kill('SIGINT');
      await exited;
    };
    const start = async (): Promise<void> => {
      if (removed) throw new Error('postgres: start after stop() removed the cluster');
      if (server?.exitCode === null && server.signalCode === null) throw new Error('postgres: start while the server runs');
      const launched = await launch(port);
      if ('error' in launched) throw new Error(`postgres did not start again on port ${port}: ${launched.error}`);
      server = launched.process;
    };
    return {
      port,
      get pid() {
        return server?.pid ?? 0;
      },
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
      async stop(stopOptions = {}) {
        await shutdown();
        if (stopOptions.keepData === true) return;
        removed = true;
        process.removeListener('exit', remove);
        rmSync(dir, { recursive: true, force: true });
      },
      start,
      async restart() {
        await shutdown();
        await start();
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
export function usePostgres(options: PostgresOptions = {}): PostgresForFile {
  let starting: Promise<PostgresServer> | undefined;
  let server: PostgresServer | undefined;
  const ready = (): Promise<PostgresServer> => {
    starting ??= startPostgres(options).then((started) => {
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
