import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testDriveId } from '../support/database.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type TestServer, api, authHeadersFor, startTestServer, waitFor } from './support.js';

/**
 * Requests never wait on a drive. The drives here are loop devices over faultfs, and while the
 * requests are made faultfs holds every read (its hang switch): a request that read the drive
 * would never answer, and the test would run into its timeout instead of failing an assertion.
 * The time limits only end such a run; nothing here measures how fast anything is.
 */
const SLOW_READ_MS = 100;
const HUNG_TEST_TIMEOUT_MS = 120_000;

interface HungDrive {
  iso: MadeIso;
  fault: FaultFs;
  loop: LoopDevice;
}

async function faultyDrive(dir: string, label: string, seed: number, dataMiB: number, delayMs: number): Promise<HungDrive> {
  const iso = await makeIso({ dir, label, dataMiB, files: 2, seed });
  const fault = await mountFaultFs({ backingFile: iso.path, delayMs });
  return { iso, fault, loop: await attachLoop(fault.file, { sectorSize: 2048 }) };
}

async function release(drive: HungDrive | undefined): Promise<void> {
  if (!drive) return;
  await drive.fault.setHang(false);
}

async function remove(drive: HungDrive | undefined): Promise<void> {
  if (!drive) return;
  await drive.loop.detach();
  await drive.fault.unmount();
}

/**
 * Releases the drive first (a request that read it, the defect, could only end after this), then
 * stops the service and removes the drive.
 */
async function shutDown(drive: HungDrive | undefined, service: TestServer | undefined): Promise<void> {
  await release(drive);
  try {
    await service?.close();
  } finally {
    await remove(drive);
  }
}

describe('a request never waits on a drive', () => {
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-drive-state-'));
  });

  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  describe('a busy drive whose reads hang', () => {
    let drive: HungDrive;
    let service: TestServer;

    before(async () => {
      drive = await faultyDrive(work, 'BUSY_DISC', 41, 64, SLOW_READ_MS);
      service = await startTestServer({ devices: [drive.loop.path] });
    });

    after(() => shutDown(drive, service));

    it('is described from its job by the device list, job creation, the drives page and the status', { timeout: HUNG_TEST_TIMEOUT_MS }, async () => {
      const created = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(drive.loop.name) });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const jobId: string = created.body.id;
      await waitFor('the job to copy', async () => (await api(service.url, 'GET', `/api/v1/jobs/${jobId}`)).body.bytes_done > 0);

      await drive.fault.setHang(true);
      await waitFor('the drive to hold a read of the job', async () => (await drive.fault.stats()).holding);

      const devices = await api(service.url, 'GET', '/api/v1/devices');
      assert.equal(devices.status, 200);
      const listed = devices.body.devices.find((device: { id: string }) => device.id === testDriveId(drive.loop.name));
      assert.deepEqual(
        {
          status: listed.status,
          media_state: listed.media_state,
          job_id: listed.job_id,
          has_media: listed.has_media,
          label: listed.label,
          media_kind: listed.media_kind,
          media_size_bytes: listed.media_size_bytes,
          media_error: listed.media_error,
          media_checked_at: listed.media_checked_at,
        },
        {
          status: 'busy',
          media_state: 'job',
          job_id: jobId,
          has_media: true,
          label: 'BUSY_DISC',
          media_kind: 'data',
          media_size_bytes: drive.iso.sizeBytes,
          media_error: null,
          media_checked_at: null,
        },
      );

      const queued = await api(service.url, 'POST', '/api/v1/jobs', { device: drive.loop.path });
      assert.equal(queued.status, 201, JSON.stringify(queued.body));
      assert.equal(queued.body.status, 'queued', 'it waits for the running job');
      assert.equal(queued.body.name, 'BUSY_DISC', 'named after the disc the running job recorded');
      assert.equal(queued.body.size_bytes, drive.iso.sizeBytes);
      assert.equal(queued.body.options.disc.label, 'BUSY_DISC');

      const page = await fetch(`${service.url}/drives`, { headers: authHeadersFor(service.url) });
      assert.equal(page.status, 200);
      const html = await page.text();
      assert.ok(html.includes(`/jobs/${jobId}`) && html.includes('BUSY_DISC'), 'the drives page shows the job and its disc');

      const status = await api(service.url, 'GET', '/api/v1/system/status');
      assert.equal(status.status, 200);
      assert.equal(status.body.drives.count, 1);

      const held = await drive.fault.stats();
      assert.ok(held.holding, 'the drive held its read all along: every answer above came without it');
      assert.equal(held.heldReads, 1, 'and nothing else reached it');

      await drive.fault.setHang(false);
      for (const id of [queued.body.id, jobId]) assert.equal((await api(service.url, 'DELETE', `/api/v1/jobs/${id}`)).status, 204);
    });
  });

  describe('an idle drive that does not answer', () => {
    let drive: HungDrive;
    let service: TestServer;

    before(async () => {
      drive = await faultyDrive(work, 'SILENT_DISC', 42, 4, 0);
      await drive.fault.setHang(true);
      // The service waits for the first answers before it listens; a shorter timeout keeps that short
      // (still long enough for the healthy probes after the hang on a loaded test machine).
      service = await startTestServer({ devices: [drive.loop.path], drives: { probeTimeoutMs: 2000 } });
    });

    after(() => shutDown(drive, service));

    it('is listed as not responding, a job for it is refused at once, and it recovers by itself', { timeout: HUNG_TEST_TIMEOUT_MS }, async () => {
      for (let round = 0; round < 6; round += 1) {
        const devices = await api(service.url, 'GET', '/api/v1/devices');
        assert.equal(devices.status, 200);
        const listed = devices.body.devices[0];
        assert.equal(listed.id, testDriveId(drive.loop.name));
        assert.equal(listed.status, 'idle');
        assert.equal(listed.media_state, 'not_responding');
        assert.equal(listed.has_media, false);
        assert.match(listed.media_error, new RegExp(`${testDriveId(drive.loop.name)} did not answer`));
      }
      const refused = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(drive.loop.name) });
      assert.equal(refused.status, 503, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, 'drive_not_responding');
      const form = await fetch(`${service.url}/jobs/new`, { headers: authHeadersFor(service.url) });
      assert.equal(form.status, 200);
      assert.match(await form.text(), /does not answer/);
      assert.ok((await drive.fault.stats()).holding, 'the drive held the probe all along');

      await drive.fault.setHang(false);
      await waitFor('the drive to be probed again', async () => (await api(service.url, 'GET', '/api/v1/devices')).body.devices[0].media_state === 'probed');
      const recovered = (await api(service.url, 'GET', '/api/v1/devices')).body.devices[0];
      assert.equal(recovered.label, 'SILENT_DISC');
      assert.equal(recovered.media_error, null);
      assert.ok(Date.parse(recovered.media_checked_at) > 0);
      const accepted = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(drive.loop.name), options: { verify: false } });
      assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
      const finished = async () => (await api(service.url, 'GET', `/api/v1/jobs/${accepted.body.id}`)).body;
      await waitFor('the job to finish', async () => ['completed', 'failed', 'cancelled'].includes((await finished()).status));
      assert.equal((await finished()).status, 'completed', JSON.stringify(await finished()));
    });
  });
});
