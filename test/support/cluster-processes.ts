import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createAuthService } from '../../src/auth/service.js';
import type { NodeRole } from '../../src/cluster/model.js';
import { packageRoot } from '../../src/config/load.js';
import { openPostgres } from '../../src/db/postgres.js';
import { adminKey, api, embeddedTestEnv, useApiKey } from '../http/client.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type NetworkHost, createNetworkHost } from './netns.js';
import { type PostgresServer, startPostgres } from './postgres.js';

/**
 * Real cluster processes for the failure tests of issue 15: one throwaway PostgreSQL server, and
 * `bin/disk2iso serve` processes on it, each a node of its own (data dir, `cluster.node_name`,
 * drives, role) sharing one output folder, optionally inside a network namespace
 * (test/support/netns.ts) whose link a test cuts.
 * The drives are loop devices over FUSE sources (test/tools/faultfs.ts), so a test slows a drive
 * down, counts what was read from it and compares the image with the disc's ISO.
 *
 * A test file calls `useCluster()` at its top level: the hosts and the database are made before its
 * first test and everything (processes, loop devices, mounts, the server, namespaces, files) is
 * removed after its last, whether the tests passed or not. It does not use the engine switch of
 * test/support/database.ts: it starts its own PostgreSQL, and runs once, in the SQLite pass.
 */

/** Cluster timing short enough for a test: heartbeats every second, offline after 3 s, leases of 5 s (the least allowed). */
export const FAST_CLUSTER = {
  DISK2ISO_CLUSTER_HEARTBEAT_SECONDS: '1',
  DISK2ISO_CLUSTER_OFFLINE_AFTER_SECONDS: '3',
  DISK2ISO_JOBS_LEASE_SECONDS: '5',
} as const;

/** A disc for a node's drive: an ISO, served slowly by faultfs, behind a loop device. */
export interface ClusterDisc {
  iso: MadeIso;
  fault: FaultFs;
  loop: LoopDevice;
}

interface ClusterNodeSpec {
  /** cluster.node_name */
  name: string;
  role: NodeRole;
  /** Block devices offered as the node's drives (drives.extra). */
  drives: string[];
  /** Runs the node inside this network host; it listens on the host's address and reaches PostgreSQL through its link. */
  host?: NetworkHost;
  /** More DISK2ISO_* settings. */
  env?: Record<string, string>;
}

export interface ClusterNode {
  readonly name: string;
  readonly dataDir: string;
  /** Starts the process (again, after a kill: the same data dir and name) and resolves to its URL once it listens. */
  start(): Promise<string>;
  /** The URL of the running process. */
  url(): string;
  /** The pid of the running process. */
  pid(): number;
  /** Sends `signal` and waits until the process has ended. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether the process runs. */
  running(): boolean;
  /** Everything the process wrote, every start of it, in order. */
  output(): string;
}

interface Cluster {
  readonly postgres: PostgresServer;
  /** The database every node uses, through 127.0.0.1. */
  readonly databaseUrl: string;
  /** Network hosts by the names given to useCluster. */
  readonly hosts: ReadonlyMap<string, NetworkHost>;
  /** A scratch directory removed after the file. */
  readonly work: string;
  /** A node, made (its data dir) but not started. */
  node(spec: ClusterNodeSpec): Promise<ClusterNode>;
  /** A disc behind a loop device over faultfs; `delayMs` per FUSE read. */
  disc(options: { label: string; dataMiB: number; seed: number; delayMs?: number }): Promise<ClusterDisc>;
  /** One statement on the database from the test, outside every node. */
  query<Row extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<Row[]>;
}

export interface UseClusterOptions {
  /** Network hosts to make (createNetworkHost); PostgreSQL also listens on each one's root address for it. */
  hosts?: string[];
}

interface ClusterForFile {
  (): Cluster;
  ready(): Promise<Cluster>;
}

/** Bytes marked finished ('+') in a GNU ddrescue map file; 0 while there is none. */
export async function finishedBytes(mapPath: string): Promise<number> {
  const text = await readFile(mapPath, 'utf8').catch(() => '');
  let done = 0;
  for (const line of text.split('\n')) {
    const match = /^0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+\+/i.exec(line.trim());
    if (match?.[2]) done += Number.parseInt(match[2], 16);
  }
  return done;
}

/** Polls `check` every 50 ms until it gives a value; a bound of `seconds` for a broken run, no speed requirement. */
export async function eventually<T>(what: string, check: () => Promise<T | null | undefined | false> | T | null | undefined | false, seconds = 60): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await sleep(50);
  }
}

/** GET `path` of a node as the test admin, null when the node does not answer at all (killed, cut off). */
// biome-ignore lint/suspicious/noExplicitAny: tests read bodies field by field, as test/http/client.ts's api() does
export async function tryGet(url: string, path: string): Promise<{ status: number; body: any } | null> {
  try {
    const response = await api(url, 'GET', path, undefined, {});
    return { status: response.status, body: response.body };
  } catch {
    return null;
  }
}

/**
 * The id under which the instance at `url` lists the drive of `node` at `path` (`NODE.NAME` in the
 * cluster), once it lists it with a disc in it: from the node's heartbeat, for another node's drive.
 */
export async function driveOf(url: string, node: string, path: string): Promise<string> {
  const drive = await eventually(`${url} to list ${path} of ${node} with its disc`, async () => {
    const listed = await tryGet(url, '/api/v1/devices');
    const found = listed?.body.devices?.find((device: { node: string | null; path: string }) => device.node === node && device.path === path);
    return found?.has_media === true ? found : null;
  });
  return drive.id;
}

/**
 * The bytes read from `fault` once reading has stopped: the same count twice, a second apart. The
 * read in flight when a run was told to stop still ends at the slow drive's pace.
 */
export async function readingStopped(fault: FaultFs): Promise<number> {
  let last = (await fault.stats()).readBytes;
  const settled = await eventually('reading from the disc to stop', async () => {
    await sleep(1000);
    const now = (await fault.stats()).readBytes;
    const same = now === last;
    last = now;
    return same ? { bytes: now } : null;
  });
  return settled.bytes;
}

const OUTPUT_LIMIT = 2_000_000;
const INT8_OID = 20;

export function useCluster(options: UseClusterOptions = {}): ClusterForFile {
  let starting: Promise<Cluster> | undefined;
  let cluster: Cluster | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];
  const children = new Set<ChildProcess>();

  async function open(): Promise<Cluster> {
    const work = await mkdtemp(join(tmpdir(), 'disk2iso-cluster-'));
    cleanups.push(() => rm(work, { recursive: true, force: true }));
    const hosts = new Map<string, NetworkHost>();
    for (const name of options.hosts ?? []) {
      const host = createNetworkHost({ name });
      cleanups.push(() => host.remove());
      hosts.set(name, host);
    }
    const postgres = await startPostgres({ listen: [...hosts.values()].map((host) => ({ address: host.rootAddress, clients: host.network })) });
    cleanups.push(() => postgres.stop());
    const databaseUrl = await postgres.createDatabase('disk2iso_cluster');
    const databaseName = 'disk2iso_cluster';
    // Migrated once, and the test admin's key made, before any node starts (as `disk2iso user add` would).
    const database = await openPostgres(databaseUrl);
    let key: string;
    try {
      key = await adminKey(createAuthService({ database, dataDir: work }));
    } finally {
      await database.close();
    }
    // Byte counts are bigints, which pg gives as strings; the test compares them as numbers (all far below 2^53).
    const types = {
      getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)),
    } as pg.CustomTypesConfig;
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, connectionTimeoutMillis: 2000, types });
    // A restart of the server ends the pool's idle connections; the next query opens new ones.
    pool.on('error', () => undefined);
    cleanups.push(() => pool.end());

    // The output folder every node shares (an NFS mount at the same path in a real cluster): a web instance names a job's image there, its worker writes it.
    const outputDir = join(work, 'output');
    await mkdir(outputDir);

    const makeNode = async (spec: ClusterNodeSpec): Promise<ClusterNode> => {
      const dataDir = join(work, spec.name);
      await mkdir(dataDir);
      const url = spec.host === undefined ? databaseUrl : postgres.url(databaseName, spec.host.rootAddress);
      const env = embeddedTestEnv(dataDir, spec.drives, {
        DISK2ISO_DATABASE_URL: url,
        DISK2ISO_STORAGE_OUTPUT_DIR: outputDir,
        DISK2ISO_CLUSTER_NODE_NAME: spec.name,
        // Scheduled backups copy the embedded file; in the cluster mode they stay at their default.
        DISK2ISO_BACKUP_INTERVAL_HOURS: '24',
        ...(spec.host === undefined ? {} : { DISK2ISO_SERVER_HOST: spec.host.address }),
        ...FAST_CLUSTER,
        ...spec.env,
      });
      let output = '';
      let child: ChildProcess | undefined;
      let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: null, signal: null });
      let address: string | undefined;
      const isRunning = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;
      return {
        name: spec.name,
        dataDir,
        async start() {
          if (isRunning()) throw new Error(`node ${spec.name} runs already`);
          address = undefined;
          const args = [join(packageRoot(), 'bin', 'disk2iso'), 'serve', '--role', spec.role, '--port', '0'];
          const spawnOptions: SpawnOptions = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] };
          // Either way the node dies with the test process (parent-death signal), should it end without its after hooks.
          const started =
            spec.host === undefined
              ? spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, ...args], spawnOptions)
              : spec.host.spawn(process.execPath, args, spawnOptions);
          child = started;
          children.add(started);
          exited = new Promise((resolve) =>
            started.once('close', (code, signal) => {
              children.delete(started);
              resolve({ code, signal });
            }),
          );
          const listening = new Promise<string>((resolve, reject) => {
            const collect = (chunk: Buffer): void => {
              output = (output + chunk.toString()).slice(-OUTPUT_LIMIT);
              const match = /^disk2iso listening on (\S+)$/m.exec(output.slice(output.lastIndexOf(`# start of ${spec.name}`)));
              if (match?.[1]) resolve(match[1]);
            };
            started.stdout?.on('data', collect);
            started.stderr?.on('data', collect);
            void exited.then(({ code, signal }) => reject(new Error(`node ${spec.name} ended (code ${code}, signal ${signal}) before listening:\n${output}`)));
          });
          output += `\n# start of ${spec.name}\n`;
          address = await listening;
          useApiKey(address, key);
          return address;
        },
        url() {
          if (address === undefined || !isRunning()) throw new Error(`node ${spec.name} is not running`);
          return address;
        },
        pid() {
          if (child?.pid === undefined || !isRunning()) throw new Error(`node ${spec.name} is not running`);
          return child.pid;
        },
        async kill(signal = 'SIGKILL') {
          if (isRunning()) child?.kill(signal);
          return exited;
        },
        running: isRunning,
        output: () => output,
      };
    };

    return {
      postgres,
      databaseUrl,
      hosts,
      work,
      node: makeNode,
      async disc({ label, dataMiB, seed, delayMs = 0 }) {
        const iso = await makeIso({ dir: work, label, dataMiB, files: 2, seed });
        const fault = await mountFaultFs({ backingFile: iso.path, delayMs });
        cleanups.push(() => fault.unmount());
        const loop = await attachLoop(fault.file, { sectorSize: 2048 });
        // Detached before its source is unmounted (the cleanups run last first).
        cleanups.push(() => loop.detach());
        return { iso, fault, loop };
      },
      async query(text, values = []) {
        return (await pool.query(text, values)).rows;
      },
    };
  }

  const ready = (): Promise<Cluster> => {
    starting ??= open().then((opened) => {
      cluster = opened;
      return opened;
    });
    return starting;
  };
  before(ready);
  after(async () => {
    await starting?.catch(() => undefined);
    // The nodes first, so none holds a loop device, a mount or a database connection.
    await Promise.all(
      [...children].map(async (child) => {
        const closed = new Promise((resolve) => child.once('close', resolve));
        child.kill('SIGKILL');
        await closed;
      }),
    );
    const failures: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw new AggregateError(failures, 'cleaning up the cluster failed');
  });
  const current = (): Cluster => {
    if (cluster === undefined) throw new Error('useCluster: the cluster is used before it was made');
    return cluster;
  };
  return Object.assign(current, { ready });
}
