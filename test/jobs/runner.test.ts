import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnavailableError } from '../../src/errors.js';
import type { ImagingResult } from '../../src/imaging/types.js';
import { type JobStatus, pauseReason } from '../../src/jobs/model.js';
import type { JobQueue } from '../../src/jobs/queue.js';
import {
  BOUND,
  type JobsHarness,
  aborted,
  copyProgress,
  dataDisc,
  engineRunningUntilStopped,
  fakeEngine,
  firstRun,
  gate,
  imagingResult,
  opticalDrive,
  stopAsked,
  waitFor,
  withJobs,
} from './support.js';

const OTHER_WORKER = 'other-worker';

/** Another worker takes the job over: it judged the runner's process dead (wrongly, or the lease ran out). */
async function takeOver(queue: JobQueue, jobId: string): Promise<void> {
  const recovered = await queue.recoverExpired({ holderGone: async () => true });
  assert.deepEqual(
    recovered.map((job) => job.id),
    [jobId],
  );
  const claimed = await queue.claimNext(OTHER_WORKER, { leaseMs: 60_000 });
  assert.equal(claimed?.id, jobId);
}

async function createJob(harness: JobsHarness, name: string): Promise<string> {
  return (await harness.service.create({ device: 'sr0', name }, 'tester')).id;
}

async function logText(harness: JobsHarness, jobId: string): Promise<string> {
  return (await harness.service.logs(jobId)).map((line) => line.message).join('\n');
}

describe('job runner: shutdown', () => {
  it('pauses a running job and puts it back in the queue with its progress, where the next start continues it', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const id = await createJob(harness, 'shutdown');
      const engine = engineRunningUntilStopped(40);
      const runner = await harness.startRunner(engine);
      const request = await firstRun(engine);

      await runner.stop();
      assert.equal(request.signal?.reason, 'pause', 'the engine was asked to pause (map saved), not to cancel');
      const stopped = await harness.job(id);
      assert.equal(stopped.status, 'queued');
      assert.equal(stopped.progress, 40);
      assert.equal(stopped.bytesDone, copyProgress(request, 40).bytesDone);
      assert.equal(stopped.leaseOwner, null);
      assert.equal(stopped.errorCode, null);
      assert.deepEqual(
        harness.finished.map((job) => [job.id, job.status]),
        [[id, 'queued']],
      );

      const next = fakeEngine(async (nextRequest) => imagingResult(nextRequest));
      await harness.startRunner(next, 'next-runner');
      await waitFor('the job to complete', async () => (await harness.job(id)).status === 'completed');
      assert.equal((await harness.job(id)).attempts, 2);
      assert.match(await logText(harness, id), /continuing from the rescue map/);
    });
  });

  it('leaves a job the user paused paused, also when the shutdown comes while that pause is under way', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const id = await createJob(harness, 'user_pause');
      const mapSaved = gate();
      const engine = fakeEngine(async (request) => {
        request.onProgress?.(copyProgress(request, 40));
        await aborted(request.signal);
        // Saving the map takes a moment; the shutdown starts meanwhile.
        await mapSaved.opened;
        return imagingResult(request, { outcome: 'paused', verified: null });
      });
      const runner = await harness.startRunner(engine);
      const request = await firstRun(engine);

      await harness.service.update(id, { action: 'pause' });
      assert.equal(await stopAsked(request), 'pause');
      const stopping = runner.stop();
      mapSaved.open();
      await stopping;

      const job = await harness.job(id);
      assert.equal(job.status, 'paused');
      assert.equal(pauseReason(job), 'requested');
      assert.equal(job.progress, 40);
    });
  });

  it('leaves a job paused for a full disk paused when the disk filled up during the shutdown', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const id = await createJob(harness, 'full_at_shutdown');
      const engine = fakeEngine(async (request) => {
        request.onProgress?.(copyProgress(request, 30));
        await aborted(request.signal);
        throw new UnavailableError('no_space', 'no space left on the output file system');
      });
      const runner = await harness.startRunner(engine);
      await firstRun(engine);
      await runner.stop();

      const job = await harness.job(id);
      assert.equal(job.status, 'paused');
      assert.equal(pauseReason(job), 'disk_full');
      assert.equal(job.progress, 30);
    });
  });
});

describe('job runner: lost lease', () => {
  it('stops the run when a heartbeat finds another worker holds the job, and records no end', BOUND, async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    await withJobs({}, async (harness) => {
      const id = await createJob(harness, 'heartbeat_lost');
      const engine = fakeEngine(async (request) => {
        await aborted(request.signal);
        return imagingResult(request, { outcome: 'paused', verified: null });
      });
      const runner = await harness.startRunner(engine);
      const request = await firstRun(engine);

      await takeOver(harness.queue, id);
      // A run that reports no progress (a long read) learns of it only from its heartbeat.
      t.mock.timers.tick(harness.config.jobs.lease_seconds * 1000);
      assert.equal(await stopAsked(request), 'pause');
      await waitFor('the run to end', () => runner.active().length === 0);

      const job = await harness.job(id);
      assert.equal(job.status, 'running', 'the other worker still runs it');
      assert.equal(job.leaseOwner, OTHER_WORKER);
      assert.equal(job.errorCode, null);
      assert.deepEqual(harness.finished, []);
    });
  });

  it('stops the run when a progress update finds another worker holds the job, and records no end', BOUND, async (t) => {
    // No heartbeat in this test: the update alone must find it.
    t.mock.timers.enable({ apis: ['setInterval'] });
    await withJobs({}, async (harness) => {
      const id = await createJob(harness, 'update_lost');
      const takenOver = gate();
      const engine = fakeEngine(async (request) => {
        await takenOver.opened;
        request.onProgress?.(copyProgress(request, 50));
        await aborted(request.signal);
        return imagingResult(request, { outcome: 'paused', verified: null });
      });
      const runner = await harness.startRunner(engine);
      const request = await firstRun(engine);

      await takeOver(harness.queue, id);
      takenOver.open();
      assert.equal(await stopAsked(request), 'pause');
      await waitFor('the run to end', () => runner.active().length === 0);

      const job = await harness.job(id);
      assert.equal(job.status, 'running');
      assert.equal(job.leaseOwner, OTHER_WORKER);
      assert.equal(job.progress, 0, "the lost run's progress is not recorded over the other worker's");
      assert.equal(job.errorCode, null);
      assert.deepEqual(harness.finished, []);
      assert.equal((await harness.archives.list()).total, 0);
    });
  });
});

describe('job runner: the disc in the drive', () => {
  const others = {
    'another volume id': dataDisc({ volumeId: 'OTHER_DISC', volumeLabel: 'OTHER_DISC' }),
    'another size': dataDisc({ imageSizeBytes: 8 * 1024 * 1024, deviceSizeBytes: 8 * 1024 * 1024 }),
    'another creation time': dataDisc({ createdAt: '2021-03-04T05:06:07.000Z' }),
  };
  for (const [what, other] of Object.entries(others)) {
    it(`fails the job with different_disc and never starts the engine when the disc has ${what}`, BOUND, async () => {
      await withJobs({}, async (harness) => {
        const id = await createJob(harness, 'swapped');
        harness.drives.insert('sr0', other);
        const engine = fakeEngine(async (request) => imagingResult(request));
        await harness.startRunner(engine);

        await waitFor('the job to end', () => harness.finished.find((job) => job.id === id));
        const job = await harness.job(id);
        assert.equal(job.status, 'failed');
        assert.equal(job.errorCode, 'different_disc');
        assert.deepEqual(engine.requests, []);
        assert.equal((await harness.archives.list()).total, 0);
      });
    });
  }

  it('runs the job when the disc is the one it was created for', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const id = await createJob(harness, 'same_disc');
      harness.drives.insert('sr0', dataDisc());
      const engine = fakeEngine(async (request) => imagingResult(request));
      await harness.startRunner(engine);

      await waitFor('the job to end', () => harness.finished.find((job) => job.id === id));
      assert.equal((await harness.job(id)).status, 'completed');
      assert.equal(engine.requests.length, 1);
    });
  });
});

describe('job runner: full disk', () => {
  for (const code of ['no_space', 'storage_threshold', 'insufficient_space'] as const) {
    it(`pauses the job for a full disk, progress kept, when the engine stops with ${code}`, BOUND, async () => {
      await withJobs({}, async (harness) => {
        const id = await createJob(harness, code);
        const engine = fakeEngine(async (request) => {
          request.onProgress?.(copyProgress(request, 30));
          throw new UnavailableError(code, 'the output file system is too full');
        });
        await harness.startRunner(engine);

        await waitFor('the job to end', () => harness.finished.find((job) => job.id === id));
        const view = await harness.service.get(id);
        assert.equal(view.status, 'paused');
        assert.equal(view.pause_reason, 'disk_full');
        assert.equal(view.error?.code, code);
        assert.equal(view.progress, 30);
      });
    });
  }

  it('fails the job, not pauses it, when the engine stops for anything else', BOUND, async () => {
    await withJobs({}, async (harness) => {
      const id = await createJob(harness, 'device_gone');
      const engine = fakeEngine(async () => {
        throw new UnavailableError('device_gone', 'the drive went away');
      });
      await harness.startRunner(engine);

      await waitFor('the job to end', () => harness.finished.find((job) => job.id === id));
      const view = await harness.service.get(id);
      assert.equal(view.status, 'failed');
      assert.equal(view.pause_reason, null);
      assert.equal(view.error?.code, 'device_gone');
    });
  });
});

describe('job runner: eject after success', () => {
  interface EjectCase {
    name: string;
    deleteSourceOnSuccess: boolean;
    ejectable: boolean;
    /** What the engine returns, or the error it throws. */
    result: Partial<ImagingResult> | UnavailableError;
    status: JobStatus;
    ejects: boolean;
  }
  const badSectors = { badBytes: 2048, badAreas: 1, areas: [{ pos: 0, size: 2048 }] };
  const cases: EjectCase[] = [
    { name: 'a complete, verified image without bad sectors', deleteSourceOnSuccess: true, ejectable: true, result: {}, status: 'completed', ejects: true },
    {
      // Unverified, the image is not yet known to be a copy: the disc stays until someone checks it.
      name: 'a complete image when verification is off',
      deleteSourceOnSuccess: true,
      ejectable: true,
      result: { verified: null },
      status: 'completed',
      ejects: false,
    },
    { name: 'storage.delete_source_on_success off', deleteSourceOnSuccess: false, ejectable: true, result: {}, status: 'completed', ejects: false },
    { name: 'a drive that cannot eject', deleteSourceOnSuccess: true, ejectable: false, result: {}, status: 'completed', ejects: false },
    { name: 'unreadable sectors in the image', deleteSourceOnSuccess: true, ejectable: true, result: { badSectors }, status: 'completed', ejects: false },
    { name: 'a failed verification', deleteSourceOnSuccess: true, ejectable: true, result: { verified: false }, status: 'completed', ejects: false },
    { name: 'a paused run', deleteSourceOnSuccess: true, ejectable: true, result: { outcome: 'paused', verified: null }, status: 'paused', ejects: false },
    {
      name: 'a cancelled run',
      deleteSourceOnSuccess: true,
      ejectable: true,
      result: { outcome: 'cancelled', verified: null },
      status: 'cancelled',
      ejects: false,
    },
    {
      name: 'a failed run',
      deleteSourceOnSuccess: true,
      ejectable: true,
      result: new UnavailableError('media_unreadable', 'the disc cannot be read'),
      status: 'failed',
      ejects: false,
    },
  ];
  for (const scenario of cases) {
    it(`${scenario.ejects ? 'ejects' : 'does not eject'} the disc after ${scenario.name}`, BOUND, async () => {
      const env = { DISK2ISO_STORAGE_DELETE_SOURCE_ON_SUCCESS: String(scenario.deleteSourceOnSuccess) };
      const drives = [{ drive: opticalDrive('sr0', { ejectable: scenario.ejectable }), media: dataDisc() }];
      await withJobs({ env, drives }, async (harness) => {
        const id = await createJob(harness, 'eject');
        const engine = fakeEngine(async (request) => {
          if (scenario.result instanceof Error) throw scenario.result;
          return imagingResult(request, scenario.result);
        });
        const runner = await harness.startRunner(engine);
        await waitFor('the job to end', () => harness.finished.find((job) => job.id === id));
        // The eject follows the job's end; stop() waits for the whole run.
        await runner.stop();

        assert.equal((await harness.job(id)).status, scenario.status);
        assert.deepEqual(harness.drives.ejected, scenario.ejects ? ['sr0'] : []);
      });
    });
  }

  it('keeps the job completed and logs a warning when the eject fails', BOUND, async () => {
    await withJobs({ env: { DISK2ISO_STORAGE_DELETE_SOURCE_ON_SUCCESS: 'true' } }, async (harness) => {
      harness.drives.ejectError = new Error('tray jammed');
      const id = await createJob(harness, 'jammed');
      const runner = await harness.startRunner(fakeEngine(async (request) => imagingResult(request)));
      await waitFor('the job to end', () => harness.finished.find((job) => job.id === id));
      await runner.stop();

      assert.deepEqual(harness.drives.ejected, ['sr0']);
      assert.equal((await harness.job(id)).status, 'completed');
      assert.match(await logText(harness, id), /eject failed: tray jammed/);
    });
  });
});
