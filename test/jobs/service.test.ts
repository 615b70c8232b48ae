import assert from 'node:assert/strict';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { MediaInfo } from '../../src/drives/types.js';
import type { ErrorCode } from '../../src/error-codes.js';
import { DomainError } from '../../src/errors.js';
import { pathExists } from '../../src/imaging/output-state.js';
import type { JobRecord } from '../../src/jobs/model.js';
import type { UpdateJobInput } from '../../src/jobs/service.js';
import {
  BOUND,
  type JobsHarness,
  aborted,
  copyProgress,
  dataDisc,
  fakeEngine,
  firstRun,
  gate,
  imagingResult,
  opticalDrive,
  stopAsked,
  waitFor,
  withJobs,
} from './support.js';

const WORKER = 'worker-elsewhere';
const SIZE = dataDisc().imageSizeBytes ?? 0;

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, details?: unknown): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof DomainError, `a domain error, not ${String(error)}`);
    assert.equal(error.code, code);
    if (details !== undefined) assert.deepEqual(error.details, details);
    return true;
  });
}

async function createJob(harness: JobsHarness, name: string): Promise<JobRecord> {
  return harness.job((await harness.service.create({ device: 'sr0', name }, 'tester')).id);
}

/** A job a worker (in another process, say) ran part way and paused, `bytesDone` rescued. */
async function pausedJob(harness: JobsHarness, name: string, bytesDone: number): Promise<JobRecord> {
  const job = await createJob(harness, name);
  const claimed = await harness.queue.claimNext(WORKER, { leaseMs: 60_000 });
  assert.equal(claimed?.id, job.id);
  return harness.queue.finish(job.id, WORKER, 'paused', { bytesDone, progress: Math.floor((bytesDone / SIZE) * 100) });
}

/** Writes what a stopped run leaves: NAME.iso.part and its map. */
async function writePartials(job: JobRecord): Promise<void> {
  await writeFile(`${job.outputFile}.part`, 'rescued');
  await writeFile(`${job.outputFile}.map`, '# map');
}

/** A job the runner completed with `badBytes` unreadable, its image and map written; the runner is stopped again. */
async function completedJob(harness: JobsHarness, name: string, badBytes: number): Promise<JobRecord> {
  const job = await createJob(harness, name);
  const runner = await harness.startRunner(
    fakeEngine(async (request) => {
      await writeFile(request.outputPath, 'image');
      await writeFile(`${request.outputPath}.map`, '# map');
      const badSectors = { badBytes, badAreas: badBytes > 0 ? 1 : 0, areas: badBytes > 0 ? [{ pos: 0, size: badBytes }] : [] };
      return imagingResult(request, { badSectors });
    }),
  );
  await waitFor('the job to end', () => harness.finished.find((finished) => finished.id === job.id));
  await runner.stop();
  const completed = await harness.job(job.id);
  assert.equal(completed.status, 'completed');
  assert.equal(completed.badBytes, badBytes);
  return completed;
}

describe('job service: create', () => {
  const refused: Array<[string, MediaInfo, ErrorCode]> = [
    ['no disc', dataDisc({ present: false, imageSizeBytes: null, deviceSizeBytes: null }), 'no_media'],
    ['a blank disc', dataDisc({ kind: 'blank', fileSystems: [] }), 'blank_media'],
    ['an audio CD', dataDisc({ kind: 'audio', fileSystems: [], mediaType: 'cd' }), 'unsupported_media'],
    ['a disc of unknown size', dataDisc({ imageSizeBytes: null, sizeSource: null }), 'unknown_size'],
  ];
  for (const [what, media, code] of refused) {
    it(`refuses ${what} with ${code} and queues nothing`, BOUND, async () => {
      await withJobs({ drives: [{ drive: opticalDrive('sr0'), media }] }, async (harness) => {
        await rejectsWith(harness.service.create({ device: 'sr0', name: 'refused' }, 'tester'), code);
        assert.equal((await harness.jobRepository.list()).total, 0);
        assert.deepEqual(await readdir(harness.output), []);
      });
    });
  }

  it('queues a readable data disc, recording the disc so a later run can tell it is the same', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const view = await harness.service.create({ device: '/dev/sr0', name: 'holiday' }, 'tester');
      assert.equal(view.status, 'queued');
      assert.equal(view.device_id, 'sr0');
      assert.equal(view.size_bytes, SIZE);
      const disc = view.options['disc'] as Record<string, unknown>;
      assert.equal(disc['volume_id'], 'HOLIDAY_2020');
      assert.equal(disc['size_bytes'], SIZE);
      assert.equal(disc['created_at'], '2020-08-01T12:00:00.000Z');
    });
  });
});

describe('job service: update', () => {
  const invalid: Array<[string, UpdateJobInput, string]> = [
    ['neither an action nor a priority', {}, 'body'],
    ['a device with pause', { action: 'pause', device: 'sr1' }, 'device'],
    ['a device with cancel', { action: 'cancel', device: 'sr1' }, 'device'],
    ['a device with only a priority', { priority: 'high', device: 'sr1' }, 'device'],
    ['keep_partial with pause', { action: 'pause', keep_partial: true }, 'keep_partial'],
    ['keep_partial with resume', { action: 'resume', keep_partial: false }, 'keep_partial'],
    ['keep_partial with only a priority', { priority: 'high', keep_partial: true }, 'keep_partial'],
  ];
  for (const [what, input, field] of invalid) {
    it(`refuses ${what} and changes nothing`, BOUND, async () => {
      const drives = [
        { drive: opticalDrive('sr0'), media: dataDisc() },
        { drive: opticalDrive('sr1'), media: dataDisc() },
      ];
      await withJobs({ drives }, async (harness) => {
        const before = await pausedJob(harness, 'unchanged', 2048);
        await rejectsWith(harness.service.update(before.id, input), 'validation_failed', [{ field }]);
        assert.deepEqual(await harness.job(before.id), before);
      });
    });
  }

  it('takes a device with resume: the job continues on that drive', BOUND, async () => {
    const drives = [
      { drive: opticalDrive('sr0'), media: dataDisc() },
      { drive: opticalDrive('sr1'), media: dataDisc() },
    ];
    await withJobs({ drives }, async (harness) => {
      const paused = await pausedJob(harness, 'moved', 2048);
      const view = await harness.service.update(paused.id, { action: 'resume', device: '/dev/sr1' });
      assert.equal(view.status, 'queued');
      assert.equal(view.device_id, 'sr1');
      assert.equal(view.bytes_done, 2048);
    });
  });
});

describe('job service: cancel', () => {
  it('keeps the partial image and map of a job that has rescued data, unless told otherwise', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const paused = await pausedJob(harness, 'rescued', 2048);
      await writePartials(paused);

      const view = await harness.service.update(paused.id, { action: 'cancel' });
      assert.equal(view.status, 'cancelled');
      assert.equal(view.options['keep_partial_on_cancel'], true, 'the choice is stored for a runner that stops the job later');
      assert.ok(await pathExists(`${paused.outputFile}.part`));
      assert.ok(await pathExists(`${paused.outputFile}.map`));
      assert.match((await harness.service.logs(paused.id)).at(-1)?.message ?? '', /kept/);
    });
  });

  it('discards them when the user says so', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const paused = await pausedJob(harness, 'discarded', 2048);
      await writePartials(paused);

      await harness.service.update(paused.id, { action: 'cancel', keep_partial: false });
      assert.deepEqual(await readdir(harness.output), []);
    });
  });

  for (const keepSetting of [false, true]) {
    it(`${keepSetting ? 'keeps' : 'discards'} the leftovers of a job with nothing rescued as storage.keep_partial_on_cancel says`, BOUND, async () => {
      await withJobs({ env: { DISK2ISO_STORAGE_KEEP_PARTIAL_ON_CANCEL: String(keepSetting) } }, async (harness) => {
        const queued = await createJob(harness, 'nothing_yet');
        await writePartials(queued);

        await harness.service.update(queued.id, { action: 'cancel' });
        assert.equal((await harness.job(queued.id)).status, 'cancelled');
        assert.equal(await pathExists(`${queued.outputFile}.part`), keepSetting);
        assert.equal(await pathExists(`${queued.outputFile}.map`), keepSetting);
      });
    });
  }
});

describe('job service: reading bad areas again', () => {
  it('refuses a job that has not completed', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const paused = await pausedJob(harness, 'unfinished', 2048);
      await rejectsWith(harness.service.retryBadAreas(paused.id), 'no_bad_areas');
      assert.equal((await harness.job(paused.id)).status, 'paused');
    });
  });

  it('refuses a job already queued to read its bad areas again', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const damaged = await completedJob(harness, 'damaged', 2048);
      await harness.service.retryBadAreas(damaged.id);
      const queued = await harness.job(damaged.id);
      assert.equal(queued.status, 'queued');
      await rejectsWith(harness.service.retryBadAreas(damaged.id), 'no_bad_areas');
      assert.deepEqual(await harness.job(damaged.id), queued);
    });
  });

  it('refuses a completed job without unreadable sectors', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const clean = await completedJob(harness, 'clean', 0);
      await rejectsWith(harness.service.retryBadAreas(clean.id), 'no_bad_areas');
      assert.deepEqual(await harness.job(clean.id), clean);
    });
  });

  for (const missing of ['image', 'map'] as const) {
    it(`refuses a damaged job whose ${missing} is missing`, BOUND, async () => {
      await withJobs({}, async (harness) => {
        const damaged = await completedJob(harness, 'damaged', 2048);
        const path = missing === 'image' ? damaged.outputFile : `${damaged.outputFile}.map`;
        await rm(path);
        await rejectsWith(harness.service.retryBadAreas(damaged.id), 'map_missing', { path });
        assert.deepEqual(await harness.job(damaged.id), damaged);
      });
    });
  }

  for (const attempts of [0, 101, 2.5]) {
    it(`refuses ${attempts} read attempts`, BOUND, async () => {
      await withJobs({}, async (harness) => {
        const damaged = await completedJob(harness, 'damaged', 2048);
        await rejectsWith(harness.service.retryBadAreas(damaged.id, attempts), 'validation_failed', [{ field: 'read_attempts' }]);
        assert.deepEqual(await harness.job(damaged.id), damaged);
      });
    });
  }

  it('queues a damaged job again with the read attempts asked for', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const damaged = await completedJob(harness, 'damaged', 2048);
      const view = await harness.service.retryBadAreas(damaged.id, 7);
      assert.equal(view.status, 'queued');
      assert.equal(view.options['read_attempts'], 7);
      assert.equal(view.archive_id, damaged.archiveId);
    });
  });
});

describe('job service: remove', () => {
  it('cancels an active job, waits until its run has stopped, then removes it', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const job = await createJob(harness, 'removed');
      const runStopped = gate();
      const engine = fakeEngine(async (request) => {
        request.onProgress?.(copyProgress(request, 10));
        await aborted(request.signal);
        await runStopped.opened;
        return imagingResult(request, { outcome: 'cancelled', verified: null });
      });
      await harness.startRunner(engine);
      const request = await firstRun(engine);
      let reads = 0;
      const service = harness.serviceWith({
        queue: {
          ...harness.queue,
          get: (id) => {
            reads++;
            return harness.queue.get(id);
          },
        },
      });
      const removed: string[] = [];
      harness.events.on('job.removed', ({ jobId }) => removed.push(jobId));

      let settled = false;
      const removal = service.remove(job.id).finally(() => {
        settled = true;
      });
      assert.equal(await stopAsked(request), 'cancel');
      // Several looks at the job while its run is still stopping.
      await waitFor('the service to look at the job again', () => reads >= 3);
      assert.equal(settled, false, 'remove waits for the run');
      assert.equal((await harness.job(job.id)).status, 'running');

      runStopped.open();
      await removal;
      assert.equal(await harness.queue.get(job.id), null);
      assert.deepEqual(removed, [job.id]);
    });
  });

  it('gives up with job_busy, the job kept, when the run does not stop in time', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const job = await createJob(harness, 'stuck');
      // A worker elsewhere that never looks at its job again.
      assert.equal((await harness.queue.claimNext(WORKER, { leaseMs: 60_000 }))?.id, job.id);
      const service = harness.serviceWith({ removeWaitMs: 300 });

      await rejectsWith(service.remove(job.id), 'job_busy');
      const kept = await harness.job(job.id);
      assert.equal(kept.status, 'running');
      assert.equal(kept.requestedAction, 'cancel', 'the cancel stays asked for');
    });
  });
});
