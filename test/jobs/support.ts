import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { type ArchiveRepository, createArchiveRepository } from '../../src/db/archive-repository.js';
import type { Database } from '../../src/db/database.js';
import { type JobRepository, createJobRepository } from '../../src/db/job-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import type { DriveService } from '../../src/drives/service.js';
import type { Drive, MediaInfo } from '../../src/drives/types.js';
import { NotFoundError } from '../../src/errors.js';
import { createEventBus } from '../../src/events/bus.js';
import type { ImagingProgress, ImagingRequest, ImagingResult } from '../../src/imaging/types.js';
import type { JobEventBus, JobEvents } from '../../src/jobs/events.js';
import type { JobRecord, LeaseHolder } from '../../src/jobs/model.js';
import type { JobQueue } from '../../src/jobs/queue.js';
import { type JobRunner, createJobRunner } from '../../src/jobs/runner.js';
import { type JobService, type JobServiceDeps, createJobService } from '../../src/jobs/service.js';
import { silentLogger } from '../../src/log.js';
import type { KnownDrives } from '../../src/system/devices.js';
import { withTempDir } from '../db/support.js';
import { openTestDatabase } from '../support/database.js';

/**
 * The job runner and the job service with everything real that needs no root (the queue and
 * repositories on a fresh database of either engine, the event bus, the output directory) and fakes for what
 * does: the drives (sysfs, device nodes, eject) and the imaging engine (reads of a device).
 */

export function opticalDrive(id: string, overrides: Partial<Drive> = {}): Drive {
  return {
    id,
    path: `/dev/${id}`,
    kind: 'optical',
    vendor: 'TEST',
    model: 'FAKE DRIVE',
    revision: null,
    capabilities: ['cd', 'dvd'],
    ejectable: true,
    description: `Fake drive ${id}`,
    ...overrides,
  };
}

/** A readable data disc of 4 MiB. */
export function dataDisc(overrides: Partial<MediaInfo> = {}): MediaInfo {
  return {
    present: true,
    deviceSizeBytes: 4 * 1024 * 1024,
    imageSizeBytes: 4 * 1024 * 1024,
    sizeSource: 'iso9660',
    logicalSectorSize: 2048,
    fileSystems: ['iso9660'],
    volumeLabel: 'HOLIDAY_2020',
    volumeId: 'HOLIDAY_2020',
    createdAt: '2020-08-01T12:00:00.000Z',
    kind: 'data',
    mediaType: 'dvd',
    ...overrides,
  };
}

/** Drives with discs the test puts in and takes out; both the runner's drive service and the service's view of drives. */
interface FakeDrives extends DriveService, KnownDrives {
  /** Puts `media` in drive `id`: what the next probe reads and what the service knows of the drive. */
  insert(id: string, media: MediaInfo): void;
  /** Ids of the drives ejected, in order. */
  readonly ejected: string[];
  /** When set, eject fails with this error (after recording the attempt). */
  ejectError: Error | null;
}

function fakeDrives(drives: Array<{ drive: Drive; media: MediaInfo }>): FakeDrives {
  const byId = new Map(drives.map(({ drive }) => [drive.id, drive]));
  const media = new Map(drives.map(({ drive, media }) => [drive.id, media]));
  const get = async (id: string): Promise<Drive> => {
    const drive = byId.get(id);
    if (!drive) throw new NotFoundError('unknown_device', `no drive ${id}`);
    return drive;
  };
  const mediaOf = async (id: string): Promise<MediaInfo> => {
    await get(id);
    return media.get(id) ?? dataDisc({ present: false, imageSizeBytes: null, deviceSizeBytes: null });
  };
  const fake: FakeDrives = {
    ejected: [],
    ejectError: null,
    insert(id, inserted) {
      media.set(id, inserted);
    },
    list: async () => [...byId.values()],
    get,
    probe: mediaOf,
    knownMedia: mediaOf,
    pending: () => null,
    async eject(id) {
      await get(id);
      fake.ejected.push(id);
      if (fake.ejectError) throw fake.ejectError;
    },
    resolveDemoImage: async () => null,
  };
  return fake;
}

/** A progress report of the copy pass at `percent` of the request's source. */
export function copyProgress(request: ImagingRequest, percent: number, badBytes = 0): ImagingProgress {
  const size = request.source.sizeBytes;
  return {
    phase: 'copying',
    bytesDone: Math.round((size * percent) / 100),
    bytesTotal: size,
    percent,
    rateBps: 1e6,
    etaSeconds: 3,
    badBytes,
    errorCount: badBytes > 0 ? 1 : 0,
    position: 0,
    buffered: false,
    readCalls: 0,
    readBytes: 0,
  };
}

/** What the engine returns for `request`; a completed run by default, with no bad sectors and verified. */
export function imagingResult(request: ImagingRequest, overrides: Partial<ImagingResult> = {}): ImagingResult {
  const at = new Date().toISOString();
  return {
    outcome: 'completed',
    outputPath: request.outputPath,
    partPath: `${request.outputPath}.part`,
    mapPath: `${request.outputPath}.map`,
    sizeBytes: request.source.sizeBytes,
    checksums: { md5: 'd41d8cd98f00b204e9800998ecf8427e' },
    badSectors: { badBytes: 0, badAreas: 0, areas: [] },
    verified: true,
    resumed: false,
    timings: { startedAt: at, finishedAt: at, copySeconds: 0, hashSeconds: 0, verifySeconds: 0 },
    reads: { calls: 0, bytes: 0, failed: 0, probes: 0 },
    ...overrides,
  };
}

/** Resolves once `signal` is aborted, as the real engine stops at its next read. */
export function aborted(signal: AbortSignal | undefined): Promise<void> {
  assert.ok(signal, 'the runner gives the engine a signal');
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** A promise the test resolves by hand: a step of a fake that waits for the test. */
export function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** An engine the test scripts; it records every request the runner made. */
export interface FakeEngine {
  runImaging(request: ImagingRequest): Promise<ImagingResult>;
  readonly requests: ImagingRequest[];
}

export function fakeEngine(behaviour: (request: ImagingRequest) => Promise<ImagingResult>): FakeEngine {
  const requests: ImagingRequest[] = [];
  return {
    requests,
    async runImaging(request) {
      requests.push(request);
      return behaviour(request);
    },
  };
}

/** Reports `percent`, then runs until the runner stops it, and stops as the signal's reason says. */
export function engineRunningUntilStopped(percent: number): FakeEngine {
  return fakeEngine(async (request) => {
    request.onProgress?.(copyProgress(request, percent));
    await aborted(request.signal);
    return imagingResult(request, { outcome: request.signal?.reason === 'cancel' ? 'cancelled' : 'paused', verified: null });
  });
}

/** Polls `check` until it gives a value; a bound for a broken run, no speed requirement. */
export async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false> | T | null | undefined | false): Promise<T> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const value = await check();
    if (value !== null && value !== undefined && value !== false) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** The request of the engine's first run, once the runner has started it. */
export function firstRun(engine: FakeEngine): Promise<ImagingRequest> {
  return waitFor('the runner to start the engine', () => engine.requests[0]);
}

/** Waits until the runner has asked the engine to stop; the reason it gave. */
export async function stopAsked(request: ImagingRequest): Promise<unknown> {
  await waitFor('the runner to stop the engine', () => request.signal?.aborted);
  return request.signal?.reason;
}

/**
 * For every test here: a run that never ends (a fake waiting for a stop that never comes) fails
 * its test instead of hanging the suite. A bound for a broken run, no speed requirement.
 */
export const BOUND = { timeout: 30_000 };

/** Who holds the runner's leases: a process no runner here ever takes for dead. */
const TEST_HOLDER: LeaseHolder = { host: 'test-host', bootId: 'test-boot', pidNamespace: 'pid:[1]', pid: 1, startTicks: 1 };

export interface JobsHarness {
  config: Config;
  /** The output directory (storage.output_dir). */
  output: string;
  queue: JobQueue;
  jobRepository: JobRepository;
  archives: ArchiveRepository;
  drives: FakeDrives;
  events: JobEventBus;
  service: JobService;
  /** Every job.finished event, in order. */
  finished: JobRecord[];
  /** A job service over the same stores with other dependencies (a slower remove, a queue that counts). */
  serviceWith(overrides: Partial<JobServiceDeps>): JobService;
  /** A runner over the same stores with `engine`, started; stopped (if not already) when the test ends. */
  startRunner(engine: FakeEngine, workerId?: string): Promise<JobRunner>;
  /** The stored job. */
  job(id: string): Promise<JobRecord>;
}

export interface HarnessOptions {
  /** DISK2ISO_* settings, e.g. DISK2ISO_STORAGE_DELETE_SOURCE_ON_SUCCESS. */
  env?: Record<string, string>;
  /** Default: one ejectable optical drive sr0 holding dataDisc(). */
  drives?: Array<{ drive: Drive; media: MediaInfo }>;
  /** What the queue, the repositories and the runners use instead of the test's database (one that can fail, say). */
  database?: (database: Database) => Database;
}

export async function withJobs(options: HarnessOptions, work: (harness: JobsHarness) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const output = join(dir, 'images');
    await mkdir(output);
    const config = loadConfig({ env: { DISK2ISO_DATA_DIR: dir, DISK2ISO_STORAGE_OUTPUT_DIR: output, ...options.env } });
    const opened = await openTestDatabase(dir);
    const database = options.database?.(opened) ?? opened;
    const queue = createSqliteQueue(database);
    const jobRepository = createJobRepository(database);
    const archives = createArchiveRepository(database);
    const drives = fakeDrives(options.drives ?? [{ drive: opticalDrive('sr0'), media: dataDisc() }]);
    const log = silentLogger();
    const listenerErrors: unknown[] = [];
    const events = createEventBus<JobEvents>((error) => listenerErrors.push(error));
    const finished: JobRecord[] = [];
    events.on('job.finished', ({ job }) => finished.push(job));
    const serviceWith = (overrides: Partial<JobServiceDeps>) => createJobService({ config, queue, jobs: jobRepository, drives, events, log, ...overrides });
    const runners: JobRunner[] = [];
    try {
      await work({
        config,
        output,
        queue,
        jobRepository,
        archives,
        drives,
        events,
        service: serviceWith({}),
        finished,
        serviceWith,
        async startRunner(engine, workerId = 'runner-under-test') {
          const runner = createJobRunner({
            config,
            queue,
            jobs: jobRepository,
            archives,
            drives,
            events,
            log,
            runImaging: (request) => engine.runImaging(request),
            workerId,
            leaseHolder: TEST_HOLDER,
            holderGone: async () => false,
            pollMs: 20,
          });
          runners.push(runner);
          await runner.start();
          return runner;
        },
        async job(id) {
          const job = await queue.get(id);
          assert.ok(job, `job ${id} exists`);
          return job;
        },
      });
    } finally {
      for (const runner of runners) await runner.stop();
      await opened.close();
    }
    assert.deepEqual(listenerErrors, [], 'no event listener failed');
  });
}
