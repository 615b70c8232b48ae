import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { createDriveService } from '../../src/drives/service.js';
import { createDriveStates } from '../../src/drives/state.js';
import { createEventBus } from '../../src/events/bus.js';
import type { ImagingProgress, ImagingRequest, ImagingResult } from '../../src/imaging/types.js';
import type { JobEvents } from '../../src/jobs/events.js';
import { currentLeaseHolder, leaseHolderGone } from '../../src/jobs/lease-holder.js';
import { newWorkerId } from '../../src/jobs/queue.js';
import { createJobRunner } from '../../src/jobs/runner.js';
import { createJobService } from '../../src/jobs/service.js';
import { silentLogger } from '../../src/log.js';
import { activeJobsByDevice, createDeviceStatusService } from '../../src/system/devices.js';
import { withTempDir } from '../db/support.js';
import { openTestDatabase } from '../support/database.js';

/**
 * The runner with the real queue, repositories, drive service (its demo drive) and job service;
 * only the engine is replaced, by one that reports progress as the real one does and then stops.
 * How the real engine stops is tested in test/imaging; this is about what the runner records.
 */
async function withRunner(
  engine: (request: ImagingRequest) => Promise<ImagingResult>,
  work: (context: { jobs: ReturnType<typeof createJobService>; events: ReturnType<typeof createEventBus<JobEvents>>; output: string }) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const output = join(dir, 'images');
    await mkdir(output);
    const config = loadConfig({
      env: { DISK2ISO_DATA_DIR: dir, DISK2ISO_STORAGE_OUTPUT_DIR: output, DISK2ISO_DRIVES_DEMO: 'on', DISK2ISO_DRIVES_SCAN_OPTICAL: 'false' },
    });
    const database = await openTestDatabase(dir);
    const queue = createSqliteQueue(database);
    const jobRepository = createJobRepository(database);
    const log = silentLogger();
    const drives = createDriveService({ config, log });
    const driveStates = createDriveStates({ drives, busyDeviceIds: async () => new Set((await activeJobsByDevice(jobRepository)).keys()) });
    await driveStates.start();
    const devices = createDeviceStatusService({ drives, states: driveStates, jobs: jobRepository });
    const events = createEventBus<JobEvents>(() => undefined);
    const jobs = createJobService({ config, queue, jobs: jobRepository, drives: devices, events, log });
    const runner = createJobRunner({
      config,
      queue,
      jobs: jobRepository,
      archives: createArchiveRepository(database),
      drives,
      events,
      log,
      runImaging: engine,
      leaseHolder: await currentLeaseHolder(),
      holderGone: leaseHolderGone,
      workerId: newWorkerId(),
      pollMs: 20,
    });
    await runner.start();
    try {
      await work({ jobs, events, output });
    } finally {
      await runner.stop();
      await driveStates.stop();
      await database.close();
    }
  });
}

/** A copy-pass progress event at `bytesDone` of `bytesTotal`, shown as `percent`. */
function copying(bytesDone: number, bytesTotal: number, percent: number): ImagingProgress {
  return {
    phase: 'copying',
    bytesDone,
    bytesTotal,
    percent,
    rateBps: 1e6,
    etaSeconds: 3,
    badBytes: 0,
    errorCount: 0,
    position: 0,
    buffered: false,
    readCalls: 0,
    readBytes: 0,
  };
}

function stopped(request: ImagingRequest, outcome: 'paused' | 'cancelled'): ImagingResult {
  const at = new Date().toISOString();
  return {
    outcome,
    outputPath: request.outputPath,
    partPath: `${request.outputPath}.part`,
    mapPath: `${request.outputPath}.map`,
    sizeBytes: request.source.sizeBytes,
    checksums: {},
    badSectors: { badBytes: 0, badAreas: 0, areas: [] },
    verified: null,
    resumed: false,
    timings: { startedAt: at, finishedAt: at, copySeconds: 0, hashSeconds: 0, verifySeconds: 0 },
    reads: { calls: 0, bytes: 0, failed: 0, probes: 0 },
  };
}

/** Reports 10 %, then 60 % right after (a live update the database has not seen yet), then stops. */
function engineStoppingAfterTwoUpdates(outcome: 'paused' | 'cancelled') {
  return async (request: ImagingRequest): Promise<ImagingResult> => {
    const size = request.source.sizeBytes;
    const report = (percent: number) => request.onProgress?.(copying(Math.round((size * percent) / 100), size, percent));
    report(10);
    report(60);
    return stopped(request, outcome);
  };
}

async function waitForStatus(jobs: ReturnType<typeof createJobService>, id: string, status: string): Promise<void> {
  // A bound for a broken run, no speed requirement.
  for (let attempt = 0; attempt < 500 && (await jobs.get(id)).status !== status; attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal((await jobs.get(id)).status, status);
}

describe('the job runner when a run stops', () => {
  it('records the last progress a live update showed, so a paused job never goes backwards', async () => {
    await withRunner(engineStoppingAfterTwoUpdates('paused'), async ({ jobs, events }) => {
      const live: number[] = [];
      events.on('job.updated', ({ job }) => live.push(job.progress));
      const job = await jobs.create({ device: 'demo', name: 'paused_run' }, 'tester');
      await waitForStatus(jobs, job.id, 'paused');
      const paused = await jobs.get(job.id);
      assert.equal(live.at(-1), 60, 'the last live update showed 60 %');
      assert.equal(paused.progress, 60);
      assert.equal(paused.bytes_done, Math.round(((paused.size_bytes ?? 0) * 60) / 100));
    });
  });

  for (const keep of [true, false]) {
    it(`${keep ? 'keeps' : 'removes'} the partial image and map on cancel when the user chose so, after the engine stopped`, async () => {
      const engine = async (request: ImagingRequest): Promise<ImagingResult> => {
        await writeFile(`${request.outputPath}.part`, 'rescued');
        await writeFile(`${request.outputPath}.map`, '# map');
        // A save of the map a crash cut short, as an earlier run of the job may have left it.
        await writeFile(`${request.outputPath}.map.tmp`, '# half a map');
        request.onProgress?.(copying(2048, request.source.sizeBytes, 1));
        assert.equal(request.options.keepPartialOnCancel, true, 'the engine never deletes; the runner decides after the stop');
        if (!request.signal?.aborted) await new Promise((resolve) => request.signal?.addEventListener('abort', resolve, { once: true }));
        return stopped(request, 'cancelled');
      };
      await withRunner(engine, async ({ jobs, output }) => {
        const job = await jobs.create({ device: 'demo', name: 'cancelled_run' }, 'tester');
        await waitForStatus(jobs, job.id, 'running');
        await jobs.update(job.id, { action: 'cancel', keep_partial: keep });
        await waitForStatus(jobs, job.id, 'cancelled');
        const left = (await readdir(output)).sort();
        assert.deepEqual(left, keep ? ['cancelled_run.iso.map', 'cancelled_run.iso.map.tmp', 'cancelled_run.iso.part'] : []);
        const log = (await jobs.logs(job.id)).map((line) => line.message).join('\n');
        assert.match(log, keep ? /partial image and map kept/ : /partial image and map removed/);
      });
    });
  }
});
