import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { packageRoot } from '../src/config/load.js';
import { databaseFile, openDatabase } from '../src/db/database.js';
import { openPostgres } from '../src/db/postgres.js';
import { type PostgresServer, startPostgres } from '../test/support/postgres.js';
import { type FaultFs, mountFaultFs } from '../test/tools/faultfs.js';
import { type LoopDevice, attachLoop } from '../test/tools/loop.js';
import { SEEDED_JOBS, createApiKey, seedJobs, serviceEnv } from './api.js';
import { type LoadResult, type ServerProcess, type SseClient, type SseEvent, httpRequest, loadTest, openSse, startServerProcess } from './api-clients.js';
import { machineDescription, markdownTable, percentile, writeSection } from './report.js';

/** A DVD drive at 1x (1,385,000 bytes/s): the slowest optical drive a tower of DVD burners still has. */
const DRIVE_RATE_BPS = 1_385_000;
/** Per drive; at 1x each job reads for about 48 s, so the 20-drive run takes about a minute. */
const SOURCE_MIB = 64;
const DRIVES_PER_WORKER = 5;
const WEB_INSTANCES = 2;
/** The runs of the growth table, in drives; a worker is a tower of up to five drives, so 1, 1, 2 and 4 workers. */
const DRIVE_STEPS: readonly number[] = (process.env.BENCH_SCALE_DRIVES ?? '1,5,10,20').split(',').map(Number);
const SSE_CLIENTS_PER_WEB = 5;
/**
 * PostgreSQL adds a backend's counters to pg_stat_database at most once a second, and an idle
 * backend only after 10 s: the run waits this long after startup so startup's queries are not
 * counted in it, and stops every instance (a backend that exits reports what it still holds)
 * before reading the counters at the end.
 */
const STATS_SETTLE_MS = 11_000;
/** prom-client's monitorEventLoopDelay resolution: every sample includes it (an idle loop reads this much). */
const LOOP_RESOLUTION_MS = 10;
/** Not measurements: only keep a run that hangs from hanging the benchmark. */
const DRIVES_LISTED_DEADLINE_MS = 60_000;
const RUN_DEADLINE_MS = 300_000;
const LIST_CONNECTIONS = 50;
const LIST_WARMUP_MS = 1_000;
const LIST_DURATION_MS = 5_000;
/** The machine's speed drifts within a minute (other tenants): the modes take turns, and each round is compared in itself. */
const LIST_ROUNDS = 3;
const LIST_PATH = `/api/v1/jobs?limit=${LIST_CONNECTIONS}`;
const uncachedPath = (request: number): string => `${LIST_PATH}&offset=${request % (SEEDED_JOBS - LIST_CONNECTIONS + 1)}`;
const BENCH_APPLICATION = 'disk2iso-bench';

interface Drive {
  source: string;
  sha256: string;
  fault: FaultFs;
  loop: LoopDevice;
}

/** Random bytes to `file`, hashed as they are written. */
async function writeRandomSource(file: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'w');
  try {
    const chunk = 16 * 2 ** 20;
    for (let written = 0; written < bytes; written += chunk) {
      const data = randomBytes(Math.min(chunk, bytes - written));
      hash.update(data);
      await handle.write(data);
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 2 ** 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

interface ProcStat {
  ppid: number;
  /** utime + stime, seconds. */
  own: number;
  /** cutime + cstime: children it reaped, seconds. */
  reaped: number;
}

async function procStat(pid: number): Promise<ProcStat | null> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (text === null) return null;
  // Fields after the command, which may hold spaces, in parentheses: state is field 3.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const field = (number: number): number => Number(fields[number - 3]);
  return { ppid: field(4), own: (field(14) + field(15)) / CLOCK_TICKS, reaped: (field(16) + field(17)) / CLOCK_TICKS };
}

/** CPU seconds of a process, every thread (the engine's hash workers too). */
async function processCpu(pid: number): Promise<number> {
  return (await procStat(pid))?.own ?? Number.NaN;
}

/** CPU seconds of the PostgreSQL server: the postmaster, its live children (backends, walwriter…) and the children it reaped. */
async function postgresCpu(postmaster: number): Promise<number> {
  const root = await procStat(postmaster);
  if (root === null) return Number.NaN;
  let total = root.own + root.reaped;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = await procStat(Number(entry));
    if (child?.ppid === postmaster) total += child.own;
  }
  return total;
}

/** Busy and total jiffies of the whole machine (/proc/stat), to show what else ran. */
async function machineCpu(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: (total - idle) / CLOCK_TICKS, total: total / CLOCK_TICKS };
}

/** TCP connections a process holds to the PostgreSQL port (its sockets in /proc/PID/fd, matched in /proc/net/tcp). */
async function connectionsTo(pid: number, port: number): Promise<number> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined) inodes.add(inode);
  }
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  let count = 0;
  for (const line of (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1)) {
    const columns = line.trim().split(/\s+/);
    // rem_address is column 2 (ADDR:PORT in hex), the inode column 9; state 01 is ESTABLISHED.
    if (columns[2]?.endsWith(`:${portHex}`) && columns[3] === '01' && inodes.has(columns[9] ?? '')) count += 1;
  }
  return count;
}

interface DatabaseCounters {
  xactCommit: number;
  xactRollback: number;
  tupReturned: number;
  tupFetched: number;
  tupInserted: number;
  tupUpdated: number;
  tupDeleted: number;
}

async function databaseCounters(admin: pg.Client, database: string): Promise<DatabaseCounters> {
  // A fresh snapshot, not the one cached for the rest of this transaction.
  await admin.query('select pg_stat_clear_snapshot()');
  const row = (
    await admin.query<Record<string, string>>(
      'select xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted from pg_stat_database where datname = $1',
      [database],
    )
  ).rows[0];
  if (row === undefined) throw new Error(`no pg_stat_database row for ${database}`);
  return {
    xactCommit: Number(row.xact_commit),
    xactRollback: Number(row.xact_rollback),
    tupReturned: Number(row.tup_returned),
    tupFetched: Number(row.tup_fetched),
    tupInserted: Number(row.tup_inserted),
    tupUpdated: Number(row.tup_updated),
    tupDeleted: Number(row.tup_deleted),
  };
}

/** The value of a metric without labels in Prometheus text. */
function metricValue(text: string, name: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

/**
 * The updated_at of a job.updated event in one notification of the event bridge (`d2i1 NODE
 * INSTANCE SEQ PART PARTS`, a newline, the JSON of [stream, type, payload]), or null for anything else.
 */
function bridgedJobUpdateTime(text: string): number | null {
  const newline = text.indexOf('\n');
  const header = text.slice(0, Math.max(0, newline)).split(' ');
  if (header[0] !== 'd2i1' || header[4] !== '1' || header[5] !== '1') return null;
  const [stream, type, payload] = JSON.parse(text.slice(newline + 1)) as [string, string, { job?: { updatedAt?: string } }];
  if (stream !== 'jobs' || type !== 'job.updated' || payload.job?.updatedAt === undefined) return null;
  return Date.parse(payload.job.updatedAt);
}

interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

interface IdleLoop {
  /** Starts a new window. */
  reset(): void;
  report(): Promise<LoopDelay>;
  stop(): void;
}

/** bench/idle-loop.js as a process of its own: what the scheduler alone does to an event loop meanwhile. */
async function startIdleLoop(): Promise<IdleLoop> {
  const child = spawn(process.execPath, [join(packageRoot(), 'dist', 'bench', 'idle-loop.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting: Array<(line: string) => void> = [];
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench/idle-loop.js ended (${code}) before it was ready`)));
    lines.on('line', (line) => {
      if (line === 'idle loop ready') resolve();
      else waiting.shift()?.(line);
    });
  });
  return {
    reset: () => child.stdin.write('reset\n'),
    report: () =>
      new Promise((resolve) => {
        waiting.push((line) => resolve(JSON.parse(line) as LoopDelay));
        child.stdin.write('report\n');
      }),
    stop: () => {
      child.stdin.end();
      child.kill();
    },
  };
}

interface Instance {
  role: 'web' | 'worker';
  name: string;
  process: ServerProcess;
  drives: Drive[];
}

interface RunFigures {
  drives: number;
  workers: number;
  seconds: number;
  /** Each job's start after the first POST and its run (started_at to finished_at), in seconds. */
  jobs: Array<{ status: string; identical: boolean; startedAfter: number; seconds: number }>;
  updates: number;
  deliveredShare: number;
  latencies: number[];
  /** From the worker's updated_at to a job.updated notification's arrival at the benchmark's own LISTEN connection. */
  bridgeLatencies: number[];
  eventLoop: Array<{ name: string; p99Ms: number; maxMs: number }>;
  /** The idle reference process over the same window. */
  idleLoop: LoopDelay;
  cpu: { workers: number; web: number; postgres: number; machineBusy: number };
  counters: DatabaseCounters;
  notifications: number;
  notificationBytes: number;
  connections: { web: number[]; workers: number[]; total: number };
  loadBefore: number;
  loadAfter: number;
}

async function startInstance(bin: string, role: 'web' | 'worker', name: string, settings: Record<string, string>, drives: Drive[]): Promise<Instance> {
  const env = serviceEnv({
    ...settings,
    DISK2ISO_CLUSTER_NODE_NAME: name,
    ...(drives.length > 0 ? { DISK2ISO_EXTRA_DEVICES: drives.map((drive) => drive.loop.path).join(',') } : {}),
  });
  // Executed as `npm start` runs it, so its first line's Node flags apply.
  const process = await startServerProcess(bin, ['serve', '--role', role, '--port', '0'], env, /disk2iso listening on (http:\/\/\S+)/);
  return { role, name, process, drives };
}

/**
 * One run: `drives` drives in towers of five on as many workers, two web instances, one fresh
 * database. Every job is made through a web instance's API, alternating between them, all at once;
 * SSE clients on both web instances receive the workers' events through the event bridge.
 */
async function scaleRun(server: PostgresServer, admin: pg.Client, idle: IdleLoop, allDrives: Drive[], work: string, drives: number): Promise<RunFigures> {
  const workers = Math.ceil(drives / DRIVES_PER_WORKER);
  const databaseName = `scale_${drives}`;
  const url = await server.createDatabase(databaseName);
  const setupDir = join(work, `setup-${drives}`);
  const outputDir = join(work, `output-${drives}`);
  await mkdir(setupDir, { recursive: true });
  await mkdir(outputDir, { recursive: true });
  const database = await openPostgres(url);
  const credentials = await createApiKey(database, setupDir).finally(() => database.close());

  const common = {
    DISK2ISO_DATABASE_URL: url,
    DISK2ISO_STORAGE_OUTPUT_DIR: outputDir,
    DISK2ISO_DRIVES_DEMO: 'off',
    DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
    DISK2ISO_LOG_LEVEL: 'warning',
    DISK2ISO_METRICS_ALLOW_ADDRESSES: '127.0.0.1',
    // All requests come from one address; the per-address limit (10/s by default) would refuse the SSE clients and job posts.
    DISK2ISO_SECURITY_RATE_LIMIT_PER_SECOND: '100000',
    DISK2ISO_SECURITY_RATE_LIMIT_BURST: '100000',
  };
  const bin = join(packageRoot(), 'bin', 'disk2iso');
  const instances: Instance[] = [];
  const clients: SseClient[] = [];
  let listener: pg.Client | undefined;
  try {
    // All at once, as a cluster comes up after a power cut: each node creates its pg-boss queue at
    // start on the fresh database (a creation PostgreSQL ends as a deadlock's victim is made again).
    const starting: Array<Promise<Instance>> = [];
    for (let index = 0; index < workers; index += 1) {
      const own = allDrives.slice(index * DRIVES_PER_WORKER, Math.min(drives, (index + 1) * DRIVES_PER_WORKER));
      const dataDir = join(work, `worker-${drives}-${index}`);
      await mkdir(dataDir, { recursive: true });
      starting.push(startInstance(bin, 'worker', `tower-${index + 1}`, { ...common, DISK2ISO_DATA_DIR: dataDir }, own));
    }
    for (let index = 0; index < WEB_INSTANCES; index += 1) {
      const dataDir = join(work, `web-${drives}-${index}`);
      await mkdir(dataDir, { recursive: true });
      starting.push(startInstance(bin, 'web', `front-${index + 1}`, { ...common, DISK2ISO_DATA_DIR: dataDir }, []));
    }
    const started = await Promise.allSettled(starting);
    for (const outcome of started) if (outcome.status === 'fulfilled') instances.push(outcome.value);
    const failed = started.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const webs = instances.filter((instance) => instance.role === 'web');
    const workerInstances = instances.filter((instance) => instance.role === 'worker');

    // The drive ids as the web instances list them (NODE.ID), each with its disc.
    const deviceOf = new Map<string, string>();
    const listedBy = Date.now() + DRIVES_LISTED_DEADLINE_MS;
    for (const web of webs) {
      for (;;) {
        const listed = JSON.parse((await httpRequest(`${web.process.url}/api/v1/devices`, { headers: credentials })).body) as {
          devices: Array<{ id: string; path: string; node: string | null; has_media: boolean }>;
        };
        for (const worker of workerInstances) {
          for (const drive of worker.drives) {
            const device = listed.devices.find((candidate) => candidate.node === worker.name && candidate.path === drive.loop.path && candidate.has_media);
            if (device !== undefined) deviceOf.set(drive.loop.path, device.id);
          }
        }
        if (deviceOf.size === drives) break;
        if (Date.now() > listedBy) throw new Error(`${web.name} lists ${deviceOf.size} of ${drives} drives with their discs`);
        await sleep(250);
      }
    }

    const arrivals = new Map<string, number[]>();
    const finishedJobs = new Set<string>();
    let onAllFinished = (): void => undefined;
    const allFinished = new Promise<void>((resolve) => {
      onAllFinished = resolve;
    });
    const jobIds = new Set<string>();
    const record = (event: SseEvent): void => {
      const key = `${event.event}\n${event.data}`;
      const times = arrivals.get(key) ?? [];
      times.push(performance.timeOrigin + event.arrivedAt);
      arrivals.set(key, times);
      if (event.event === 'job_finished') {
        finishedJobs.add((JSON.parse(event.data) as { job_id: string }).job_id);
        if (jobIds.size === drives && [...jobIds].every((id) => finishedJobs.has(id))) onAllFinished();
      }
    };
    for (const web of webs) {
      for (let index = 0; index < SSE_CLIENTS_PER_WEB; index += 1) clients.push(openSse(`${web.process.url}/api/v1/events`, record, credentials));
    }
    await Promise.all(clients.map((client) => client.ready));

    listener = new pg.Client({ connectionString: url, application_name: BENCH_APPLICATION });
    await listener.connect();
    let notifications = 0;
    let notificationBytes = 0;
    let counting = false;
    const bridgeLatencies: number[] = [];
    listener.on('notification', (message) => {
      if (!counting) return;
      const arrivedAt = Date.now();
      const text = message.payload ?? '';
      notifications += 1;
      notificationBytes += Buffer.byteLength(text);
      const stateAt = bridgedJobUpdateTime(text);
      if (stateAt !== null) bridgeLatencies.push(arrivedAt - stateAt);
    });
    await listener.query('listen disk2iso_events');

    await sleep(STATS_SETTLE_MS);
    const metricsOf = (instance: Instance): Promise<string> => httpRequest(`${instance.process.url}/metrics`).then((response) => response.body);
    // A scrape resets each process's event-loop histogram: the one at the end covers the run alone.
    await Promise.all(instances.map(metricsOf));
    idle.reset();
    const cpuBefore = await Promise.all(instances.map((instance) => processCpu(instance.process.pid)));
    const postgresBefore = await postgresCpu(server.pid);
    const machineBefore = await machineCpu();
    const countersBefore = await databaseCounters(admin, databaseName);
    const loadBefore = loadavg()[0] ?? Number.NaN;
    counting = true;

    const startedAt = performance.now();
    const postedAt = Date.now();
    const sources = new Map<string, Drive>();
    const creations = workerInstances
      .flatMap((worker) => worker.drives)
      .map(async (drive, index) => {
        const web = webs[index % webs.length] as Instance;
        const created = await httpRequest(`${web.process.url}/api/v1/jobs`, {
          method: 'POST',
          headers: credentials,
          json: { device: deviceOf.get(drive.loop.path), name: `scale-${drives}-${index}` },
        });
        if (created.status !== 201) throw new Error(`POST /api/v1/jobs on ${web.name}: ${created.status} ${created.body}`);
        const id = (JSON.parse(created.body) as { id: string }).id;
        sources.set(id, drive);
        jobIds.add(id);
      });
    await Promise.all(creations);
    if ([...jobIds].every((id) => finishedJobs.has(id))) onAllFinished();
    const giveUp = new AbortController();
    const deadline = sleep(RUN_DEADLINE_MS, undefined, { signal: giveUp.signal }).then(() => {
      throw new Error(`the ${drives}-drive run did not finish within ${RUN_DEADLINE_MS / 1000} s (${finishedJobs.size} of ${drives} jobs seen finished)`);
    });
    deadline.catch(() => undefined);
    try {
      await Promise.race([allFinished, deadline]);
    } finally {
      giveUp.abort();
    }
    const seconds = (performance.now() - startedAt) / 1000;
    counting = false;

    const cpuAfter = await Promise.all(instances.map((instance) => processCpu(instance.process.pid)));
    const postgresAfter = await postgresCpu(server.pid);
    const machineAfter = await machineCpu();
    const scrapes = await Promise.all(instances.map(metricsOf));
    const idleLoop = await idle.report();
    const connections = await Promise.all(instances.map((instance) => connectionsTo(instance.process.pid, server.port)));
    const loadAfter = loadavg()[0] ?? Number.NaN;

    const jobs: Array<{ id: string; status: string; output: string; startedAt: number; finishedAt: number }> = [];
    for (const id of jobIds) {
      const job = JSON.parse((await httpRequest(`${webs[0]?.process.url}/api/v1/jobs/${id}`, { headers: credentials })).body) as {
        status: string;
        output_file: string;
        started_at: string | null;
        finished_at: string | null;
      };
      jobs.push({
        id,
        status: job.status,
        output: job.output_file,
        startedAt: Date.parse(job.started_at ?? ''),
        finishedAt: Date.parse(job.finished_at ?? ''),
      });
    }

    // Stopped before the counters are read: each backend reports what it still held as it exits.
    await Promise.all(instances.map((instance) => instance.process.stop()));
    await listener.end();
    listener = undefined;
    const countersAfter = await databaseCounters(admin, databaseName);

    const latencies: number[] = [];
    let updates = 0;
    let delivered = 0;
    let expected = 0;
    for (const [key, times] of arrivals) {
      if (!key.startsWith('job_update\n')) continue;
      const message = JSON.parse(key.slice(key.indexOf('\n') + 1)) as { job_id: string; data: { updated_at: string } };
      if (!jobIds.has(message.job_id)) continue;
      updates += 1;
      delivered += times.length;
      expected += clients.length;
      // Both clocks are this machine's: the worker stamps the state, this process the arrival.
      const stateAt = Date.parse(message.data.updated_at);
      for (const time of times) latencies.push(time - stateAt);
    }
    const sum = (values: number[]): number => values.reduce((total, value) => total + value, 0);
    const cpuOf = (role: Instance['role']): number =>
      sum(instances.map((instance, index) => (instance.role === role ? (cpuAfter[index] ?? 0) - (cpuBefore[index] ?? 0) : 0)));
    const judged = await Promise.all(
      jobs.map(async (job) => {
        const drive = sources.get(job.id);
        const identical = job.status === 'completed' && drive !== undefined && (await sha256File(job.output)) === drive.sha256;
        return { status: job.status, identical, startedAfter: (job.startedAt - postedAt) / 1000, seconds: (job.finishedAt - job.startedAt) / 1000 };
      }),
    );
    const delta = Object.fromEntries(
      Object.entries(countersAfter).map(([name, value]) => [name, value - countersBefore[name as keyof DatabaseCounters]]),
    ) as unknown as DatabaseCounters;
    return {
      drives,
      workers,
      seconds,
      jobs: judged,
      updates,
      deliveredShare: expected === 0 ? 0 : delivered / expected,
      latencies,
      bridgeLatencies,
      eventLoop: instances.map((instance, index) => ({
        name: `${instance.role} ${instance.name}`,
        p99Ms: metricValue(scrapes[index] ?? '', 'nodejs_eventloop_lag_p99_seconds') * 1000,
        maxMs: metricValue(scrapes[index] ?? '', 'nodejs_eventloop_lag_max_seconds') * 1000,
      })),
      idleLoop,
      cpu: {
        workers: cpuOf('worker'),
        web: cpuOf('web'),
        postgres: postgresAfter - postgresBefore,
        machineBusy: (machineAfter.busy - machineBefore.busy) / seconds,
      },
      counters: delta,
      notifications,
      notificationBytes,
      connections: {
        web: instances.flatMap((instance, index) => (instance.role === 'web' ? [connections[index] ?? 0] : [])),
        workers: instances.flatMap((instance, index) => (instance.role === 'worker' ? [connections[index] ?? 0] : [])),
        total: sum(connections),
      },
      loadBefore,
      loadAfter,
    };
  } finally {
    for (const client of clients) client.close();
    await listener?.end().catch(() => undefined);
    await Promise.all(instances.map((instance) => instance.process.stop()));
  }
}

interface ListRound {
  embeddedCached: LoadResult;
  clusterCached: LoadResult;
  embeddedUncached: LoadResult;
  clusterUncached: LoadResult;
}

interface ListFigures {
  rounds: ListRound[];
  seedSeconds: { embedded: number; cluster: number };
  mix: string;
}

/**
 * The job list side by side: the embedded service (SQLite) and a web instance of the cluster
 * (PostgreSQL), each with the same 10,000 jobs seeded through the same queue code, one after the
 * other under the same load.
 */
async function listSideBySide(server: PostgresServer, work: string): Promise<ListFigures> {
  const bin = join(packageRoot(), 'bin', 'disk2iso');
  const embeddedDir = join(work, 'list-embedded');
  const clusterDir = join(work, 'list-cluster');
  await mkdir(embeddedDir, { recursive: true });
  await mkdir(clusterDir, { recursive: true });
  const url = await server.createDatabase('list_cluster');

  const sqlite = await openDatabase({ file: databaseFile(embeddedDir) });
  const postgres = await openPostgres(url);
  let embeddedKey: Record<string, string>;
  let clusterKey: Record<string, string>;
  const seedSeconds = { embedded: 0, cluster: 0 };
  let mix = '';
  try {
    // Both at once: SQLite's statements run while PostgreSQL's round trips wait.
    const started = performance.now();
    const timed = <T>(work: Promise<T>, into: 'embedded' | 'cluster'): Promise<T> =>
      work.then((result) => {
        seedSeconds[into] = (performance.now() - started) / 1000;
        return result;
      });
    const [seeded] = await Promise.all([timed(seedJobs(sqlite, embeddedDir), 'embedded'), timed(seedJobs(postgres, clusterDir), 'cluster')]);
    mix = Object.entries(seeded)
      .map(([status, count]) => `${count} ${status}`)
      .join(', ');
    embeddedKey = await createApiKey(sqlite, embeddedDir);
    clusterKey = await createApiKey(postgres, clusterDir);
  } finally {
    await sqlite.close();
    await postgres.close();
  }

  const common = {
    DISK2ISO_DRIVES_DEMO: 'off',
    DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
    DISK2ISO_LOG_LEVEL: 'warning',
    DISK2ISO_SECURITY_RATE_LIMIT_PER_SECOND: '100000',
    DISK2ISO_SECURITY_RATE_LIMIT_BURST: '100000',
  };
  const services: ServerProcess[] = [];
  try {
    const embedded = await startServerProcess(
      bin,
      ['serve', '--port', '0'],
      serviceEnv({ ...common, DISK2ISO_DATA_DIR: embeddedDir }),
      /disk2iso listening on (http:\/\/\S+)/,
    );
    services.push(embedded);
    const cluster = await startServerProcess(
      bin,
      ['serve', '--role', 'web', '--port', '0'],
      serviceEnv({ ...common, DISK2ISO_DATA_DIR: clusterDir, DISK2ISO_DATABASE_URL: url, DISK2ISO_CLUSTER_NODE_NAME: 'front-list' }),
      /disk2iso listening on (http:\/\/\S+)/,
    );
    services.push(cluster);
    for (const [service, key] of [
      [embedded, embeddedKey],
      [cluster, clusterKey],
    ] as const) {
      const page = await httpRequest(`${service.url}${LIST_PATH}`, { headers: key });
      const listed = JSON.parse(page.body) as { jobs?: unknown[]; total?: number };
      if (page.status !== 200 || listed.jobs?.length !== LIST_CONNECTIONS || listed.total !== SEEDED_JOBS) {
        throw new Error(
          `GET ${LIST_PATH}: status ${page.status}, ${listed.jobs?.length} jobs of ${listed.total}; expected ${LIST_CONNECTIONS} of ${SEEDED_JOBS}`,
        );
      }
    }
    const load = (service: ServerProcess, key: Record<string, string>, pathOf?: (request: number) => string) =>
      loadTest(`${service.url}${LIST_PATH}`, LIST_CONNECTIONS, LIST_WARMUP_MS, LIST_DURATION_MS, key, pathOf);
    const rounds: ListRound[] = [];
    for (let round = 0; round < LIST_ROUNDS; round += 1) {
      const embeddedCached = await load(embedded, embeddedKey);
      const clusterCached = await load(cluster, clusterKey);
      const embeddedUncached = await load(embedded, embeddedKey, uncachedPath);
      const clusterUncached = await load(cluster, clusterKey, uncachedPath);
      rounds.push({ embeddedCached, clusterCached, embeddedUncached, clusterUncached });
    }
    return { rounds, seedSeconds, mix };
  } finally {
    for (const service of services) await service.stop();
  }
}

const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');
const rate = (result: LoadResult): number => result.requests / result.seconds;

export async function benchScale(): Promise<void> {
  const work = join(packageRoot(), 'bench', 'work', `scale-${process.pid}`);
  await mkdir(work, { recursive: true });
  const drives: Drive[] = [];
  let server: PostgresServer | undefined;
  let admin: pg.Client | undefined;
  let idle: IdleLoop | undefined;
  const benchStarted = performance.now();
  try {
    const maxDrives = Math.max(...DRIVE_STEPS);
    console.log(`scale benchmark: ${maxDrives} sources of ${SOURCE_MIB} MiB served by faultfs at ${DRIVE_RATE_BPS} bytes/s`);
    for (let index = 0; index < maxDrives; index += 1) {
      const source = join(work, `source-${index}.img`);
      const sha256 = await writeRandomSource(source, SOURCE_MIB * 2 ** 20);
      const fault = await mountFaultFs({ backingFile: source, rateBps: DRIVE_RATE_BPS });
      const loop = await attachLoop(fault.file, { sectorSize: 2048, readOnly: true }).catch(async (error: unknown) => {
        await fault.unmount();
        throw error;
      });
      drives.push({ source, sha256, fault, loop });
    }
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url('postgres'), application_name: BENCH_APPLICATION });
    await admin.connect();
    idle = await startIdleLoop();

    const runs: RunFigures[] = [];
    for (const count of DRIVE_STEPS) {
      console.log(`run with ${count} drives`);
      const run = await scaleRun(server, admin, idle, drives, work, count);
      console.log(
        `  ${run.seconds.toFixed(1)} s, ${run.jobs.filter((job) => job.identical).length}/${count} identical, delivery p99 ${percentile(run.latencies, 0.99).toFixed(1)} ms, jobs started after ${run.jobs.map((job) => job.startedAfter.toFixed(1)).join(' ')} s, ran ${run.jobs.map((job) => job.seconds.toFixed(1)).join(' ')} s`,
      );
      runs.push(run);
    }
    console.log('job list: embedded and cluster side by side');
    const list = await listSideBySide(server, work);

    const ms = (value: number): string => value.toFixed(1);
    const full = runs[runs.length - 1] as RunFigures;
    const headline = markdownTable(
      ['measure', 'value'],
      [
        ['jobs (all made through the web instances, alternating)', `${full.jobs.length}, on ${full.workers} workers x ${DRIVES_PER_WORKER} drives`],
        ['run time (first POST to the last job_finished on an SSE client)', `${full.seconds.toFixed(1)} s`],
        ['jobs completed with an image byte-identical to its source (sha256)', `${full.jobs.filter((job) => job.identical).length} of ${full.jobs.length}`],
        [
          'job_update events of the jobs, delivered to every SSE client',
          `${full.updates} events x ${WEB_INSTANCES * SSE_CLIENTS_PER_WEB} clients, ${(full.deliveredShare * 100).toFixed(2)} % delivered`,
        ],
        [
          'delivery, worker state (updated_at) to an SSE client on a web instance: p50 / p99 / max',
          `${ms(percentile(full.latencies, 0.5))} / ${ms(percentile(full.latencies, 0.99))} / ${ms(Math.max(...full.latencies))} ms`,
        ],
        [
          'of which the worker and PostgreSQL: updated_at to the notification at a LISTEN connection of the benchmark, p50 / p99 / max',
          `${ms(percentile(full.bridgeLatencies, 0.5))} / ${ms(percentile(full.bridgeLatencies, 0.99))} / ${ms(Math.max(...full.bridgeLatencies))} ms (${full.bridgeLatencies.length} job.updated notifications)`,
        ],
        ...full.eventLoop.map((loop) => [
          `event-loop delay of ${loop.name}: p99 / max (histogram, includes the ${LOOP_RESOLUTION_MS} ms resolution)`,
          `${ms(loop.p99Ms)} / ${ms(loop.maxMs)} ms`,
        ]),
        [
          `event-loop delay of an idle Node process (bench/idle-loop.ts, the reference): p99 / max (histogram, includes the ${LOOP_RESOLUTION_MS} ms resolution)`,
          `${ms(full.idleLoop.p99Ms)} / ${ms(full.idleLoop.maxMs)} ms`,
        ],
        [
          'machine CPU busy during the run (all tenants), load average before / after',
          `${full.cpu.machineBusy.toFixed(2)} of 2 cores; ${full.loadBefore.toFixed(1)} / ${full.loadAfter.toFixed(1)}`,
        ],
      ],
    );
    const perDrive = (value: number, run: RunFigures): string => {
      const share = value / run.drives;
      return share.toFixed(share >= 100 ? 0 : share >= 10 ? 1 : 2);
    };
    const growth = markdownTable(
      [
        'drives (workers x drives)',
        'run s',
        'identical',
        'delivery p50 / p99 ms',
        'of which worker to NOTIFY p50 / p99 ms',
        'worst event-loop p99 ms (instance); idle reference',
        'CPU s per drive: workers',
        'CPU s: web (both)',
        'CPU s: PostgreSQL',
        'CPU s per drive, all',
        'transactions per drive',
        'rows read per drive (returned / fetched)',
        'rows written per drive (ins / upd / del)',
        'NOTIFY per drive (KiB)',
        'connections: worker / web / all',
      ],
      runs.map((run) => {
        const worst = run.eventLoop.reduce((a, b) => (b.p99Ms > a.p99Ms ? b : a));
        const all = run.cpu.workers + run.cpu.web + run.cpu.postgres;
        const c = run.counters;
        return [
          `${run.drives} (${run.workers} x ${run.drives / run.workers})`,
          run.seconds.toFixed(1),
          `${run.jobs.filter((job) => job.identical).length}/${run.drives}`,
          `${ms(percentile(run.latencies, 0.5))} / ${ms(percentile(run.latencies, 0.99))}`,
          `${ms(percentile(run.bridgeLatencies, 0.5))} / ${ms(percentile(run.bridgeLatencies, 0.99))}`,
          `${ms(worst.p99Ms)} (${worst.name}); ${ms(run.idleLoop.p99Ms)}`,
          perDrive(run.cpu.workers, run),
          run.cpu.web.toFixed(2),
          run.cpu.postgres.toFixed(2),
          perDrive(all, run),
          perDrive(c.xactCommit + c.xactRollback, run),
          `${perDrive(c.tupReturned, run)} / ${perDrive(c.tupFetched, run)}`,
          `${perDrive(c.tupInserted, run)} / ${perDrive(c.tupUpdated, run)} / ${perDrive(c.tupDeleted, run)}`,
          `${perDrive(run.notifications, run)} (${(run.notificationBytes / 1024 / run.drives).toFixed(0)})`,
          `${run.connections.workers.join(', ')} / ${run.connections.web.join(', ')} / ${run.connections.total}`,
        ];
      }),
    );
    const listRow = (name: string, result: LoadResult): string[] => [
      name,
      rate(result).toFixed(0),
      result.p50Ms.toFixed(0),
      result.p99Ms.toFixed(0),
      String(result.failures),
    ];
    const listTable = markdownTable(
      ['round', 'mode', 'requests/s', 'p50 ms', 'p99 ms', 'failed', 'cluster / embedded'],
      list.rounds.flatMap((round, index) => {
        const share = (cluster: LoadResult, embedded: LoadResult): string => `${((rate(cluster) / rate(embedded)) * 100).toFixed(0)} %`;
        return [
          [String(index + 1), ...listRow(`embedded (SQLite), GET ${LIST_PATH}`, round.embeddedCached), ''],
          [
            String(index + 1),
            ...listRow(`cluster web instance (PostgreSQL), GET ${LIST_PATH}`, round.clusterCached),
            share(round.clusterCached, round.embeddedCached),
          ],
          [String(index + 1), ...listRow('embedded, offset N different on every request (no cached list)', round.embeddedUncached), ''],
          [
            String(index + 1),
            ...listRow('cluster web instance, offset N different on every request', round.clusterUncached),
            share(round.clusterUncached, round.embeddedUncached),
          ],
        ];
      }),
    );
    const median = (values: number[]): number => percentile(values, 0.5);
    const cachedShare = median(list.rounds.map((round) => rate(round.clusterCached) / rate(round.embeddedCached)));
    const uncachedShare = median(list.rounds.map((round) => rate(round.clusterUncached) / rate(round.embeddedUncached)));
    const deliveryP99 = percentile(full.latencies, 0.99);
    const worstLoop = Math.max(...full.eventLoop.map((loop) => loop.p99Ms));
    const goals = [
      `- every job byte-identical: ${met(full.jobs.every((job) => job.identical) && runs.every((run) => run.jobs.every((job) => job.identical)))} (all ${runs.length} runs)`,
      `- event delivery p99, worker to an SSE client on a web instance: ${ms(deliveryP99)} ms (goal < 150 ms): ${met(deliveryP99 < 150)}`,
      // Judged beyond the histogram's resolution, as bench:imaging judges it: an idle loop reads the resolution itself.
      `- event-loop delay p99 of every instance: worst ${ms(worstLoop - LOOP_RESOLUTION_MS)} ms beyond the ${LOOP_RESOLUTION_MS} ms resolution (histogram ${ms(worstLoop)} ms) (goal < 20 ms): ${met(worstLoop - LOOP_RESOLUTION_MS < 20)}; an idle Node process beside them: ${ms(full.idleLoop.p99Ms - LOOP_RESOLUTION_MS)} ms beyond (histogram ${ms(full.idleLoop.p99Ms)} ms)`,
      `- job list in cluster mode, median of the rounds: ${(cachedShare * 100).toFixed(0)} % of the embedded mode's requests/s (goal >= 50 %): ${met(cachedShare >= 0.5)}; uncached pages ${(uncachedShare * 100).toFixed(0)} %`,
    ].join('\n');
    const body = `## Cluster at scale (\`npm run bench:scale\`)

Machine: ${machineDescription()}; 2 cores shared with other tenants. Command: \`npm run bench:scale\` (as root). Bench run time ${((performance.now() - benchStarted) / 1000 / 60).toFixed(1)} min.

**Setup.** ${maxDrives} drives: each a read-only loop device (2048-byte sectors) over its own faultfs mount (test/tools/faultfs.c) serving ${SOURCE_MIB} MiB of random data at ${DRIVE_RATE_BPS.toLocaleString('en')} bytes/s, a DVD drive at 1x (faultfs sleeps each read's length / rate), so each job reads for about ${((SOURCE_MIB * 2 ** 20) / DRIVE_RATE_BPS).toFixed(0)} s. Workers are \`disk2iso serve --role worker\` processes with ${DRIVES_PER_WORKER} drives each (a drive tower), ${WEB_INSTANCES} \`serve --role web\` instances, all executed as \`bin/disk2iso\` (with its Node flags), on one throwaway PostgreSQL 15 (fsync off) on this machine, with a shared output folder; each run has a fresh database and fresh processes, all started at the same moment. The jobs (defaults: MD5 + SHA-256, verified after imaging) are made with \`POST /api/v1/jobs\` on the web instances, alternating, all at once; a run ends when an SSE client has seen every job's job_finished. ${SSE_CLIENTS_PER_WEB} SSE clients (\`GET /api/v1/events\`) on each web instance, in the benchmark process, receive the workers' events through the event bridge (LISTEN/NOTIFY): a job_update's \`updated_at\` is the moment the worker stamped that state, so delivery is its arrival minus that, on this machine's one clock (the SSE coalescing of at most four progress updates a second per job is in it). Event-loop delay is each process's own \`nodejs_eventloop_lag_p99_seconds\` from \`GET /metrics\` (prom-client's monitorEventLoopDelay at ${LOOP_RESOLUTION_MS} ms resolution, reset at every scrape: scraped at the start and read at the end of the run). CPU is utime + stime from /proc/PID/stat over the run: each instance (every thread, the engine's hash workers too); PostgreSQL is the postmaster, its live children and the backends it reaped; the faultfs daemons and the loop driver (the drives) are not counted. Database work is pg_stat_database of the run's database (pg-boss's schema included) from the start to the end of the run: transactions (xact_commit + xact_rollback; a statement outside a transaction is one), rows returned by scans / fetched by index, rows inserted / updated / deleted; the instances are stopped before the end is read so every backend has reported its counts. NOTIFY is every notification on the event bridge's channel, counted by a listener of the benchmark. Connections are each process's established TCP connections to PostgreSQL at the end of the run.

**${full.drives} drives at once.**

${headline}

**How the cost grows** (the same run at ${DRIVE_STEPS.join(', ')} drives; workers x drives each: ${runs.map((run) => `${run.workers} x ${run.drives / run.workers}`).join(', ')}; always ${WEB_INSTANCES} web instances):

${growth}

**Job list, side by side.** ${SEEDED_JOBS} jobs (${list.mix}) seeded into each database through the same queue code (src/db/sqlite-queue.ts, both engines, at the same time: ${list.seedSeconds.embedded.toFixed(0)} s into SQLite, ${list.seedSeconds.cluster.toFixed(0)} s into PostgreSQL); the embedded service (\`serve\`, SQLite) and a cluster web instance (\`serve --role web\`, PostgreSQL), taking turns under the same load, ${LIST_ROUNDS} rounds: autocannon in the benchmark process, ${LIST_CONNECTIONS} keep-alive connections, ${LIST_WARMUP_MS / 1000} s warm-up discarded, ${LIST_DURATION_MS / 1000} s measured, with an API key. The first row of each mode is answered from the service's list cache while the jobs' change counter stays the same (each request still reads the counter, and the credentials counter for the API key, from the database); the second asks for a different page every time.

${listTable}

${goals}
`;
    console.log(body);
    await writeSection('scale', body);
  } finally {
    idle?.stop();
    await admin?.end().catch(() => undefined);
    await server?.stop().catch((error: unknown) => console.error(`cleanup failed: ${String(error)}`));
    for (const drive of drives.reverse()) {
      await drive.loop.detach().catch((error: unknown) => console.error(`cleanup failed: ${String(error)}`));
      await drive.fault.unmount().catch((error: unknown) => console.error(`cleanup failed: ${String(error)}`));
    }
    await rm(work, { recursive: true, force: true });
  }
}
