import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestServer, api, startTestServer, waitFor } from '../http/support.js';
import { testDriveId } from '../support/database.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type MadeIso, makeIso, sha256File } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';

/**
 * The loop driver hands FUSE a few hundred KiB per read, and the engine keeps up to three reads in
 * flight: at this delay an 8 MiB disc takes a few seconds and drive A's 160 MiB disc well over
 * half a minute, long enough to queue, reorder and pause around it (the delay drops to zero once
 * that is done).
 */
const SLOW_READ_MS = 150;

interface Drive {
  iso: MadeIso;
  fault: FaultFs;
  loop: LoopDevice;
}

describe('the queue through the API: drives in parallel, one job per drive, priorities, pause, resume, cancel', () => {
  let work: string;
  const drives: Drive[] = [];
  let service: TestServer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-scheduling-'));
    for (const [label, seed, dataMiB] of [
      ['DRIVE_A', 21, 160],
      ['DRIVE_B', 22, 8],
    ] as const) {
      const iso = await makeIso({ dir: work, label, dataMiB, files: 2, seed });
      const fault = await mountFaultFs({ backingFile: iso.path, delayMs: SLOW_READ_MS });
      drives.push({ iso, fault, loop: await attachLoop(fault.file, { sectorSize: 2048 }) });
    }
    service = await startTestServer({ devices: drives.map((drive) => drive.loop.path) });
  });

  after(async () => {
    try {
      await service?.close();
    } finally {
      for (const drive of drives) {
        await drive.loop.detach();
        await drive.fault.unmount();
      }
      await rm(work, { recursive: true, force: true });
    }
  });

  const job = async (id: string) => (await api(service.url, 'GET', `/api/v1/jobs/${id}`)).body;
  const create = async (drive: Drive): Promise<string> => {
    const created = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(drive.loop.name) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body.id;
  };
  const patch = async (id: string, body: unknown) => {
    const response = await api(service.url, 'PATCH', `/api/v1/jobs/${id}`, body);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body;
  };
  const statusIs = (id: string, status: string) => async () => (await job(id)).status === status;
  /** Waits until the job is no longer active, then checks where it ended up (with its log when it is wrong). */
  const settlesAs = async (id: string, status: string): Promise<void> => {
    await waitFor(`${id} to settle`, async () => !['running', 'verifying'].includes((await job(id)).status));
    const settled = await job(id);
    const log = settled.status === status ? null : (await api(service.url, 'GET', `/api/v1/jobs/${id}/logs`)).body;
    assert.equal(settled.status, status, JSON.stringify({ settled, log }));
  };

  it('runs, queues, reorders, pauses, resumes and cancels', async () => {
    const [driveA, driveB] = drives as [Drive, Drive];
    const first = await create(driveA);
    const second = await create(driveB);
    await waitFor('jobs on both drives to run at the same time', async () => {
      const running = await api(service.url, 'GET', '/api/v1/jobs?status=running,verifying');
      return running.body.total === 2;
    });

    const third = await create(driveA);
    const fourth = await create(driveA);
    assert.equal((await job(third)).status, 'queued', 'a busy drive makes the next job wait');
    assert.equal((await job(third)).queue_position, 1);
    assert.equal((await job(fourth)).queue_position, 2);
    const raised = await patch(fourth, { priority: 'high' });
    assert.equal(raised.priority, 'high');
    assert.equal(raised.queue_position, 1, 'a higher priority moves a job forward');
    assert.equal((await job(third)).queue_position, 2);
    const queued = await api(service.url, 'GET', '/api/v1/jobs?status=queued&sort=name');
    assert.deepEqual(queued.body.jobs.map((entry: { id: string }) => entry.id).sort(), [third, fourth].sort());

    // Creating a job reads no drive, so all of the above can happen before the first read of drive A.
    await waitFor('the first job to copy', async () => (await job(first)).bytes_done > 0);
    await patch(first, { action: 'pause' });
    await settlesAs(first, 'paused');
    const paused = await job(first);
    assert.ok(paused.bytes_done > 0 && paused.bytes_done < driveA.iso.sizeBytes, `paused part way: ${paused.bytes_done}`);
    await waitFor('the high-priority job to take the drive', async () => ['running', 'verifying', 'completed'].includes((await job(fourth)).status));
    assert.equal((await job(third)).status, 'queued', 'the normal one still waits');
    assert.equal((await job(third)).queue_position, 1);

    const waiting = await patch(third, { action: 'pause' });
    assert.equal(waiting.status, 'paused');
    assert.equal(waiting.queue_position, null);
    const notRetryable = await api(service.url, 'PATCH', `/api/v1/jobs/${third}`, { action: 'retry' });
    assert.equal(notRetryable.status, 409, 'only failed or cancelled jobs are retried');

    await driveA.fault.setDelay(0);
    await driveB.fault.setDelay(0);
    await waitFor('the second and fourth jobs to complete', async () => (await statusIs(second, 'completed')()) && (await statusIs(fourth, 'completed')()));

    assert.equal((await patch(first, { action: 'resume' })).status, 'queued');
    await waitFor('the paused job to complete', statusIs(first, 'completed'));
    const firstLog = await api(service.url, 'GET', `/api/v1/jobs/${first}/logs`);
    assert.ok(
      firstLog.body.logs.some((line: { message: string }) => line.message === 'continuing from the rescue map'),
      'resume continued from the map',
    );
    await patch(third, { action: 'resume' });
    await waitFor('the other paused job to complete', statusIs(third, 'completed'));

    for (const [id, drive] of [
      [first, driveA],
      [second, driveB],
      [third, driveA],
      [fourth, driveA],
    ] as const) {
      const finished = await job(id);
      assert.equal(await sha256File(finished.output_file), drive.iso.sha256, `${id} (${basename(finished.output_file)}) is its disc`);
    }
    assert.ok((await job(fourth)).started_at < (await job(third)).started_at, 'the raised job ran first');
    const names = new Set(await Promise.all([first, third, fourth].map(async (id) => basename((await job(id)).output_file))));
    assert.equal(names.size, 3, 'three images of one disc get three names');

    await driveA.fault.setDelay(SLOW_READ_MS);
    const cancelled = await create(driveA);
    await waitFor('the job to start copying', async () => (await job(cancelled)).bytes_done > 0);
    const output = (await job(cancelled)).output_file;
    const removed = await api(service.url, 'DELETE', `/api/v1/jobs/${cancelled}`);
    assert.equal(removed.status, 204);
    assert.equal((await api(service.url, 'GET', `/api/v1/jobs/${cancelled}`)).status, 404);
    const left = (await readdir(service.outputDir)).filter((file) => file.startsWith(basename(output)));
    assert.deepEqual(left, [], 'a removed running job leaves no partial files');
  });
});
