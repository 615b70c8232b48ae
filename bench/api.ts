import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { localActor } from '../src/auth/principal.js';
import { createAuthService } from '../src/auth/service.js';
import { packageRoot } from '../src/config/load.js';
import { type Database, databaseFile, openDatabase } from '../src/db/database.js';
import { createSqliteQueue } from '../src/db/sqlite-queue.js';
import type { FinishStatus } from '../src/jobs/queue.js';
import { mountFaultFs } from '../test/tools/faultfs.js';
import { attachLoop } from '../test/tools/loop.js';
import {
  type LoadResult,
  type ServerProcess,
  type SseClient,
  type SseEvent,
  httpRequest,
  loadTest,
  openSse,
  residentBytes,
  startServerProcess,
} from './api-clients.js';
import { machineDescription, markdownTable, percentile, writeRandomFile, writeSection } from './report.js';

export const SEEDED_JOBS = 10_000;
const CONNECTIONS = 50;
const WARMUP_MS = 2_000;
const DURATION_MS = 10_000;
const SSE_CLIENTS = 500;
const SOURCE_MIB = 256;
/** Per read of the FUSE source: slows the 256 MiB job down to roughly ten seconds of progress. */
const READ_DELAY_MS = Number(process.env.BENCH_API_READ_DELAY_MS ?? 25);
const RSS_SAMPLE_MS = 100;
/** Not a measurement: only keeps a job that never finishes from hanging the run. */
const JOB_DEADLINE_MS = 180_000;
const LIST_PATH = `/api/v1/jobs?limit=${CONNECTIONS}`;
/** Every request a page the service has not listed lately, so none is answered from its list cache. */
const uncachedPath = (request: number): string => `${LIST_PATH}&offset=${request % (SEEDED_JOBS - CONNECTIONS + 1)}`;

/**
 * Seeds finished and paused jobs (never queued ones: the runner would try to start them on drives
 * that do not exist) through the queue of either engine, so both are seeded the same way.
 */
export async function seedJobs(database: Database, dataDir: string): Promise<Record<string, number>> {
  const mix: Record<string, number> = {};
  const queue = createSqliteQueue(database);
  for (let index = 0; index < SEEDED_JOBS; index += 1) {
    const sizeBytes = 2048 * (200_000 + ((index * 7919) % 2_000_000));
    const job = await queue.enqueue({
      name: `bench-disc-${String(index).padStart(5, '0')}`,
      deviceId: `bench${index % 8}`,
      devicePath: `/dev/bench${index % 8}`,
      outputFile: join(dataDir, 'output', `bench-disc-${index}.iso`),
      sizeBytes,
      options: { read_attempts: 3, verify: true, checksums: ['md5', 'sha256'] },
    });
    const roll = index % 20;
    let status: string;
    if (roll < 1) status = (await queue.requestStop(job.id, 'pause')).status;
    else if (roll < 2) status = (await queue.requestStop(job.id, 'cancel')).status;
    else {
      const finish: FinishStatus = roll < 4 ? 'failed' : 'completed';
      const claimed = await queue.claimNext('bench-seeder', { leaseMs: 60_000 });
      if (claimed?.id !== job.id) throw new Error(`seeding: claimed ${claimed?.id ?? 'nothing'} instead of ${job.id}`);
      const patch =
        finish === 'failed'
          ? {
              progress: 37,
              bytesDone: Math.floor(sizeBytes * 0.37),
              badBytes: 4096,
              errorCount: 2,
              errorCode: 'read_errors',
              errorMessage: 'unreadable sectors remain',
            }
          : { progress: 100, bytesDone: sizeBytes };
      status = (await queue.finish(job.id, 'bench-seeder', finish, patch)).status;
    }
    mix[status] = (mix[status] ?? 0) + 1;
  }
  return mix;
}

/**
 * The service answers no anonymous API request: an admin with an API key is made in the data dir
 * the way the CLI makes one, and every request of the benchmark carries the key.
 */
export async function createApiKey(database: Database, dataDir: string): Promise<Record<string, string>> {
  const auth = createAuthService({ database, dataDir });
  const actor = localActor('bench');
  // Never used to log in; random, and meeting the password rules (upper, lower, digit, length).
  const password = `Bench-${randomBytes(16).toString('hex')}-X9`;
  await auth.users.add({ name: 'bench-admin', role: 'admin', password }, actor);
  const { key } = await auth.apiKeys.create({ user: 'bench-admin', name: 'bench' }, actor);
  return { 'x-api-key': key };
}

/** Every DISK2ISO_* variable of ours is dropped: the service refuses unknown ones and must see only the bench's settings. */
export function serviceEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DISK2ISO_')));
  return { ...env, ...settings };
}

interface LiveFigures {
  clients: number;
  events: number;
  updates: number;
  jobSeconds: number;
  deliveredShare: number;
  latencyP50: number;
  latencyP99: number;
  latencyMax: number;
  spreadP99: number;
  rssBeforeMiB: number;
  rssMaxMiB: number;
}

/** 500 SSE streams watch one real imaging job from creation to finish while the service's RSS is sampled. */
async function measureLive(service: ServerProcess, deviceId: string, credentials: Record<string, string>): Promise<LiveFigures> {
  // Event identity: the same message (type and JSON) reaches every client once; a job_update's JSON
  // holds the time of the state it reports (updated_at), so no two updates of the job look alike.
  const arrivals = new Map<string, number[]>();
  let jobId: string | null = null;
  const finishedClients = new Set<number>();
  let onAllFinished = (): void => undefined;
  const allFinished = new Promise<void>((resolve) => {
    onAllFinished = resolve;
  });
  const record =
    (client: number) =>
    (event: SseEvent): void => {
      // Kept before the job's id is known: its job_created may arrive before the POST's response.
      const key = `${event.event}\n${event.data}`;
      const times = arrivals.get(key) ?? [];
      times.push(event.arrivedAt);
      arrivals.set(key, times);
      if (event.event === 'job_finished' && jobId !== null && event.data.includes(`"job_id":"${jobId}"`)) {
        finishedClients.add(client);
        if (finishedClients.size === SSE_CLIENTS) onAllFinished();
      }
    };

  const rssBeforeMiB = (await residentBytes(service.pid)) / 2 ** 20;
  let rssMax = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rssMax = Math.max(rssMax, await residentBytes(service.pid));
      await sleep(RSS_SAMPLE_MS);
    }
  })();

  const clients: SseClient[] = [];
  try {
    const eventsUrl = `${service.url}/api/v1/events`;
    for (let index = 0; index < SSE_CLIENTS; index += 1) clients.push(openSse(eventsUrl, record(index), credentials));
    await Promise.all(clients.map((client) => client.ready));

    const created = await httpRequest(`${service.url}/api/v1/jobs`, {
      method: 'POST',
      headers: credentials,
      json: { device: deviceId, name: 'bench-live', options: { verify: false } },
    });
    if (created.status !== 201 && created.status !== 200) throw new Error(`POST /api/v1/jobs: ${created.status} ${created.body}`);
    const startedAt = performance.now();
    jobId = (JSON.parse(created.body) as { id: string }).id;
    const giveUp = new AbortController();
    const deadline = sleep(JOB_DEADLINE_MS, undefined, { signal: giveUp.signal }).then(() => {
      throw new Error(`job ${jobId} did not finish within ${JOB_DEADLINE_MS / 1000} s on all ${SSE_CLIENTS} streams (${finishedClients.size} saw it)`);
    });
    // The loser of the race must neither keep the process alive nor reject unhandled later.
    deadline.catch(() => undefined);
    try {
      await Promise.race([allFinished, deadline]);
    } finally {
      giveUp.abort();
    }
    const jobSeconds = (performance.now() - startedAt) / 1000;
    const finished = JSON.parse((await httpRequest(`${service.url}/api/v1/jobs/${jobId}`, { headers: credentials })).body) as { status: string };
    if (finished.status !== 'completed') throw new Error(`job ${jobId} ended ${finished.status}, not completed: its events are no measure`);

    const latencies: number[] = [];
    const spreads: number[] = [];
    let delivered = 0;
    let updates = 0;
    let events = 0;
    for (const [key, times] of arrivals) {
      if (!key.includes(`"job_id":"${jobId}"`)) continue;
      events += 1;
      delivered += times.length;
      const earliest = Math.min(...times);
      for (const time of times) spreads.push(time - earliest);
      if (!key.startsWith('job_update\n')) continue;
      updates += 1;
      // Both clocks are this machine's: the service stamps the state, this process the arrival.
      const stateAt = Date.parse((JSON.parse(key.slice(key.indexOf('\n') + 1)) as { data: { updated_at: string } }).data.updated_at);
      for (const time of times) latencies.push(performance.timeOrigin + time - stateAt);
    }
    return {
      clients: SSE_CLIENTS,
      events,
      updates,
      jobSeconds,
      deliveredShare: delivered / (events * SSE_CLIENTS),
      latencyP50: percentile(latencies, 0.5),
      latencyP99: percentile(latencies, 0.99),
      latencyMax: Math.max(...latencies),
      spreadP99: percentile(spreads, 0.99),
      rssBeforeMiB,
      rssMaxMiB: rssMax / 2 ** 20,
    };
  } finally {
    sampling = false;
    await sampler.catch(() => undefined);
    for (const client of clients) client.close();
  }
}

function loadRow(name: string, result: LoadResult): string[] {
  return [name, (result.requests / result.seconds).toFixed(0), result.p50Ms.toFixed(0), result.p99Ms.toFixed(0), String(result.failures)];
}

const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');

export async function benchApi(): Promise<void> {
  const work = join(packageRoot(), 'bench', 'work', `api-${process.pid}`);
  const dataDir = join(work, 'data');
  await mkdir(dataDir, { recursive: true });
  const cleanups: (() => Promise<void>)[] = [];
  try {
    console.log(`api benchmark: seeding ${SEEDED_JOBS} jobs`);
    const seedingStarted = performance.now();
    const seedDatabase = await openDatabase({ file: databaseFile(dataDir) });
    const mix = await seedJobs(seedDatabase, dataDir).finally(() => seedDatabase.close());
    console.log(`seeded in ${((performance.now() - seedingStarted) / 1000).toFixed(1)} s`);
    const keyDatabase = await openDatabase({ file: databaseFile(dataDir) });
    const credentials = await createApiKey(keyDatabase, dataDir).finally(() => keyDatabase.close());

    const source = join(work, 'source.img');
    await writeRandomFile(source, SOURCE_MIB * 2 ** 20);
    const fault = await mountFaultFs({ backingFile: source, delayMs: READ_DELAY_MS });
    cleanups.push(() => fault.unmount());
    const loop = await attachLoop(fault.file, { sectorSize: 2048, readOnly: true });
    cleanups.push(() => loop.detach());
    console.log(`job source: ${loop.path} over faultfs, ${READ_DELAY_MS} ms per read`);

    const bin = join(packageRoot(), 'bin', 'disk2iso');
    // Executed as `npm start` runs it, so its first line's V8 flags apply.
    const service = await startServerProcess(
      bin,
      ['serve', '--port', '0'],
      serviceEnv({
        DISK2ISO_DATA_DIR: dataDir,
        DISK2ISO_DRIVES_DEMO: 'off',
        DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
        DISK2ISO_EXTRA_DEVICES: loop.path,
        DISK2ISO_LOG_LEVEL: 'warning',
        // All load comes from one address; the per-address limit (10/s by default) would refuse nearly all of it.
        DISK2ISO_SECURITY_RATE_LIMIT_PER_SECOND: '100000',
        DISK2ISO_SECURITY_RATE_LIMIT_BURST: '100000',
      }),
      /disk2iso listening on (http:\/\/\S+)/,
    );
    cleanups.push(() => service.stop());

    const page = await httpRequest(`${service.url}${LIST_PATH}`, { headers: credentials });
    const listed = JSON.parse(page.body) as { jobs: unknown[]; total: number };
    if (page.status !== 200 || listed.jobs.length !== CONNECTIONS || listed.total !== SEEDED_JOBS) {
      throw new Error(`GET ${LIST_PATH}: status ${page.status}, ${listed.jobs?.length} jobs of ${listed.total}; expected ${CONNECTIONS} of ${SEEDED_JOBS}`);
    }
    const bodyFile = join(work, 'page.json');
    await writeFile(bodyFile, page.body);
    const bare = await startServerProcess(
      process.execPath,
      [join(packageRoot(), 'dist', 'bench', 'api-bare.js'), bodyFile],
      serviceEnv({}),
      /bare listening on (http:\/\/\S+)/,
    );
    cleanups.push(() => bare.stop());

    console.log(`GET ${LIST_PATH}: ${CONNECTIONS} connections, ${WARMUP_MS / 1000} s warm-up, ${DURATION_MS / 1000} s measured`);
    const real = await loadTest(`${service.url}${LIST_PATH}`, CONNECTIONS, WARMUP_MS, DURATION_MS, credentials);
    const uncached = await loadTest(`${service.url}${LIST_PATH}`, CONNECTIONS, WARMUP_MS, DURATION_MS, credentials, uncachedPath);
    const reference = await loadTest(`${bare.url}/jobs`, CONNECTIONS, WARMUP_MS, DURATION_MS);
    await bare.stop();

    console.log(`SSE: ${SSE_CLIENTS} streams while a ${SOURCE_MIB} MiB job runs`);
    const live = await measureLive(service, loop.name, credentials);

    const realRate = real.requests / real.seconds;
    const referenceRate = reference.requests / reference.seconds;
    const share = realRate / referenceRate;
    const realP99 = real.p99Ms;
    const uncachedShare = uncached.requests / uncached.seconds / referenceRate;
    const loadTable = markdownTable(
      ['endpoint', 'requests/s', 'p50 ms', 'p99 ms', 'failed'],
      [
        loadRow(`disk2iso GET ${LIST_PATH} (${SEEDED_JOBS} jobs)`, real),
        loadRow(`disk2iso GET ${LIST_PATH}&offset=N, N different on every request (no cached list)`, uncached),
        loadRow('bare Fastify route, same JSON page', reference),
      ],
    );
    const liveTable = markdownTable(
      ['measure', 'value'],
      [
        ['SSE clients', String(live.clients)],
        ['job duration (POST to last job_finished)', `${live.jobSeconds.toFixed(1)} s`],
        ['distinct events of the job (of which job_update)', `${live.events} (${live.updates}); ${(live.updates / live.jobSeconds).toFixed(1)} updates/s`],
        ['events delivered to every client', `${(live.deliveredShare * 100).toFixed(2)} %`],
        [
          'job_update delivery, from the updated_at of its state to its arrival at a client: p50 / p99 / max',
          `${live.latencyP50.toFixed(1)} / ${live.latencyP99.toFixed(1)} / ${live.latencyMax.toFixed(1)} ms`,
        ],
        ['arrival after the earliest arrival of the same event (the spread of one fan-out), p99', `${live.spreadP99.toFixed(1)} ms`],
        ['service RSS before the streams / max while streaming', `${live.rssBeforeMiB.toFixed(0)} / ${live.rssMaxMiB.toFixed(0)} MiB`],
      ],
    );
    const goals = [
      `- list throughput: ${(share * 100).toFixed(0)} % of the bare route (goal >= 30 %): ${met(share >= 0.3)}`,
      `- list p99 at ${CONNECTIONS} connections: ${realP99.toFixed(0)} ms (goal < 20 ms): ${met(realP99 < 20)}`,
      `- uncached pages (no goal of their own): ${(uncachedShare * 100).toFixed(0)} % of the bare route, p99 ${uncached.p99Ms.toFixed(0)} ms`,
      `- event delivery p99: ${live.latencyP99.toFixed(1)} ms (goal < 100 ms): ${met(live.latencyP99 < 100)}`,
      `- service RSS max: ${live.rssMaxMiB.toFixed(0)} MiB (goal < 200 MB): ${met(live.rssMaxMiB * 2 ** 20 < 200e6)}`,
    ].join('\n');
    const seeded = Object.entries(mix)
      .map(([status, count]) => `${count} ${status}`)
      .join(', ');
    const body = `## API (\`npm run bench:api\`)

Machine: ${machineDescription()}. The service (\`bin/disk2iso serve\`, executed as \`npm start\` runs it, so with the Node flags of its first line) and the reference each run as their own process; the load generator and the SSE clients run in the benchmark process, all on loopback.

**List endpoint.** ${SEEDED_JOBS} jobs seeded through the queue API (${seeded}). Load from autocannon (the generator Fastify's own benchmarks use) in the benchmark process, ${CONNECTIONS} keep-alive connections, ${WARMUP_MS / 1000} s warm-up discarded, then ${DURATION_MS / 1000} s measured; latency is from writing a request to the end of its response, in whole milliseconds. The generator shares the two cores with the server it measures. Every request to the service carries an API key (it answers no anonymous API request) and passes its per-address rate limit, raised for the benchmark. The reference is a bare Fastify app, without either, whose one route serializes the same 50-job page (${page.body.length} bytes) that the real endpoint returned. The service keeps the JSON of recent list responses for as long as the jobs table's change counter (raised by triggers on every change to a job, from any process) stays the same, so the first row, with nothing writing to the database, measures lists answered from that cache; the second row asks for a different page every time and so measures reading each page from the database (none of the seeded jobs is queued, so no queue position is counted).

${loadTable}

**Live events.** ${SSE_CLIENTS} \`GET /api/v1/events\` streams, then one real imaging job on a ${SOURCE_MIB} MiB source (a read-only loop device over faultfs with ${READ_DELAY_MS} ms per read, so the job runs for seconds) created with \`POST /api/v1/jobs\`. Each job_update carries \`updated_at\`, the time of the state it reports (stamped when the engine reported its progress), so its delivery is the time from that moment to its arrival at each client, on this machine's one clock: the service's throttle, its writing to ${SSE_CLIENTS} sockets and the benchmark process reading them (one thread for all ${SSE_CLIENTS} streams) are all in it. An event is identified by its type and JSON. Service RSS is VmRSS from /proc every ${RSS_SAMPLE_MS} ms while the streams are open.

${liveTable}

${goals}
`;
    console.log(body);
    await writeSection('api', body);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error(`cleanup failed: ${String(error)}`));
    await rm(work, { recursive: true, force: true });
  }
}
