import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { NotFoundError } from '../../src/errors.js';
import { createEventBus } from '../../src/events/bus.js';
import type { JobEvents } from '../../src/jobs/events.js';
import type { JobRecord } from '../../src/jobs/model.js';
import type { JobQueue } from '../../src/jobs/queue.js';
import { type JobService, createJobService } from '../../src/jobs/service.js';
import { silentLogger } from '../../src/log.js';
import type { KnownDrives } from '../../src/system/devices.js';
import { withTempDir } from '../db/support.js';
import { openTestDatabase } from '../support/database.js';

/** What a run leaves beside NAME.iso: the partial image, its map, and a map save a crash cut short. */
const PARTIALS = ['.part', '.map', '.map.tmp'];
const WORKER = 'partials-worker';

/** Cancelling and removing need no drive; a service without any shows that none is touched. */
const noDrives: KnownDrives = {
  list: async () => [],
  get: async (id) => {
    throw new NotFoundError('unknown_device', `no drive ${id}`);
  },
  knownMedia: async (id) => {
    throw new NotFoundError('unknown_device', `no drive ${id}`);
  },
};

/** The job service on a real database file and a real output directory, without a runner. */
async function withService(work: (context: { service: JobService; queue: JobQueue; output: string }) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const output = join(dir, 'images');
    await mkdir(output);
    const config = loadConfig({ env: { DISK2ISO_DATA_DIR: dir, DISK2ISO_STORAGE_OUTPUT_DIR: output, DISK2ISO_DRIVES_DEMO: 'off' } });
    const database = await openTestDatabase(dir);
    try {
      const queue = createSqliteQueue(database);
      const jobs = createJobRepository(database);
      const service = createJobService({ config, queue, jobs, drives: noDrives, events: createEventBus<JobEvents>(() => undefined), log: silentLogger() });
      await work({ service, queue, output });
    } finally {
      await database.close();
    }
  });
}

/** A job whose run read something and left its files behind, now in `status`. */
async function jobWithPartials(queue: JobQueue, output: string, name: string, status: 'queued' | 'paused' | 'failed'): Promise<JobRecord> {
  const job = await queue.enqueue({ name, deviceId: `loop-${name}`, devicePath: `/dev/loop-${name}`, outputFile: join(output, `${name}.iso`) });
  for (const suffix of PARTIALS) await writeFile(`${job.outputFile}${suffix}`, `${suffix} of ${name}`);
  if (status === 'queued') return job;
  assert.equal((await queue.claimNext(WORKER, { leaseMs: 60_000, busyDeviceIds: [] }))?.id, job.id);
  await queue.update(job.id, WORKER, { bytesDone: 4096, progress: 1 });
  return status === 'paused'
    ? queue.finish(job.id, WORKER, 'paused')
    : queue.finish(job.id, WORKER, 'failed', { errorCode: 'read_error', errorMessage: 'read error' });
}

describe('discarding a run that never finished', () => {
  for (const status of ['queued', 'paused'] as const) {
    it(`a cancel of a ${status} job that discards removes the partial image, its map and an unfinished map save`, async () => {
      await withService(async ({ service, queue, output }) => {
        const discarded = await jobWithPartials(queue, output, `discard_${status}`, status);
        const kept = await jobWithPartials(queue, output, `keep_${status}`, status);
        assert.equal((await service.update(discarded.id, { action: 'cancel', keep_partial: false })).status, 'cancelled');
        assert.equal((await service.update(kept.id, { action: 'cancel', keep_partial: true })).status, 'cancelled');
        assert.deepEqual((await readdir(output)).sort(), PARTIALS.map((suffix) => `keep_${status}.iso${suffix}`).sort(), 'only the kept job left files');
      });
    });
  }

  it('removing a stopped job removes the same files a cancel does', async () => {
    await withService(async ({ service, queue, output }) => {
      const failed = await jobWithPartials(queue, output, 'failed_run', 'failed');
      await service.remove(failed.id);
      assert.deepEqual(await readdir(output), []);
      assert.equal(await queue.get(failed.id), null);
    });
  });
});
