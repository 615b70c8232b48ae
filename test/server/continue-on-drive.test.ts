import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createDriveService } from '../../src/drives/service.js';
import { type TestServer, api, startTestServer, waitFor } from '../http/support.js';
import { readMap } from '../imaging/helpers.js';
import { testDriveId } from '../support/database.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type MadeIso, makeIso, sha256File } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type WebTestServer, startWebTestServer } from '../web/support/server.js';

/** At this delay per FUSE read the 24 MiB disc takes well over ten seconds: long enough to pause it part way. */
const SLOW_READ_MS = 150;
/** The engine saves its map within seconds of reading; a pause after this much leaves a clear share of the disc to B. */
const RESCUED_ON_A_BEFORE_PAUSE = 4 * 1024 * 1024;

interface Drive {
  fault: FaultFs;
  loop: LoopDevice;
}

/** Bytes the kernel has read from a block device since it was attached (/sys/block/NAME/stat counts 512-byte sectors). */
async function bytesReadFrom(loop: LoopDevice): Promise<number> {
  const fields = (await readFile(`/sys/block/${loop.name}/stat`, 'utf8')).trim().split(/\s+/);
  return Number(fields[2]) * 512;
}

async function rescuedBytes(mapPath: string): Promise<number> {
  return (await readMap(mapPath)).sums()['+'];
}

describe('a job continues on another drive holding the same disc, from its rescue map', () => {
  let work: string;
  let disc: MadeIso;
  let otherDisc: MadeIso;
  /** Copies of one disc in two drives, and another disc of the same size in a third. */
  let driveA: Drive;
  let driveB: Drive;
  let driveC: Drive;
  const attached: Drive[] = [];

  const insert = async (image: string, delayMs: number): Promise<Drive> => {
    const fault = await mountFaultFs({ backingFile: image, delayMs });
    const drive = { fault, loop: await attachLoop(fault.file, { sectorSize: 2048 }) };
    attached.push(drive);
    return drive;
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-continue-'));
    disc = await makeIso({ dir: work, label: 'MOVE_DISC', dataMiB: 24, files: 3, seed: 41 });
    otherDisc = await makeIso({ dir: work, label: 'ELSE_DISC', dataMiB: 24, files: 3, seed: 41 });
    assert.equal(otherDisc.sizeBytes, disc.sizeBytes, 'the wrong disc has the right size: only the volume id tells them apart');
    for (const copy of ['a.iso', 'b.iso']) await copyFile(disc.path, join(work, copy));
    driveA = await insert(join(work, 'a.iso'), SLOW_READ_MS);
    driveB = await insert(join(work, 'b.iso'), 0);
    driveC = await insert(otherDisc.path, SLOW_READ_MS);
  });

  after(async () => {
    try {
      for (const drive of attached) {
        await drive.loop.detach();
        await drive.fault.unmount();
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  describe('through the API', () => {
    let service: TestServer;

    before(async () => {
      service = await startTestServer({ devices: [driveA.loop.path, driveB.loop.path, driveC.loop.path] });
    });

    after(async () => {
      await service?.close();
    });

    const job = async (id: string) => (await api(service.url, 'GET', `/api/v1/jobs/${id}`)).body;
    const patch = (id: string, body: unknown) => api(service.url, 'PATCH', `/api/v1/jobs/${id}`, body);
    const settled = async (id: string) => {
      await waitFor(`${id} to settle`, async () => !['queued', 'running', 'verifying'].includes((await job(id)).status));
      return job(id);
    };

    it('pauses on drive A, refuses a wrong disc on C without reading, and completes on B from the map, byte-identical', async () => {
      const created = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(driveA.loop.name) });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id: string = created.body.id;
      const mapPath = `${created.body.output_file}.map`;
      // Enough rescued on A that what B is spared stands out from B's disc check and the drive-state probes.
      await waitFor(
        'a saved map with 4 MiB rescued',
        async () =>
          (await readMap(mapPath).then(
            (map) => map.sums()['+'],
            () => 0,
          )) >= RESCUED_ON_A_BEFORE_PAUSE,
      );
      assert.equal((await patch(id, { action: 'pause' })).status, 200);
      const paused = await settled(id);
      assert.equal(paused.status, 'paused');
      const rescuedOnA = await rescuedBytes(mapPath);
      assert.ok(rescuedOnA > 0 && rescuedOnA < disc.sizeBytes, `paused part way: ${rescuedOnA} of ${disc.sizeBytes}`);

      // Drive A goes away (a USB drive unplugged; it may come back under another name).
      await driveA.loop.detach();

      const unknown = await patch(id, { action: 'resume', device: 'loop-nowhere' });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error.code, 'unknown_device');
      const notADrive = await patch(id, { action: 'resume', device: '/etc/passwd' });
      assert.equal(notADrive.status, 404, 'only a discovered drive, whatever path is given');
      const withPause = await patch(id, { action: 'pause', device: testDriveId(driveB.loop.name) });
      assert.equal(withPause.status, 400);
      assert.equal(withPause.body.error.code, 'validation_failed');
      const unchanged = await job(id);
      assert.deepEqual([unchanged.status, unchanged.device_id], ['paused', testDriveId(driveA.loop.name)], 'refusals change nothing');

      // C holds another disc, and is busy with a job of its own: the moved job waits for it (one job per drive).
      const occupying = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(driveC.loop.name) });
      await waitFor('the job on C to run', async () => (await job(occupying.body.id)).status === 'running');
      const toC = await patch(id, { action: 'resume', device: testDriveId(driveC.loop.name) });
      assert.equal(toC.status, 200, JSON.stringify(toC.body));
      assert.deepEqual([toC.body.status, toC.body.device_id, toC.body.device], ['queued', testDriveId(driveC.loop.name), driveC.loop.path]);
      const waiting = await job(id);
      assert.equal((await job(occupying.body.id)).status, 'running');
      assert.deepEqual([waiting.status, waiting.queue_position], ['queued', 1], 'it waits while C runs another job');
      assert.equal((await api(service.url, 'DELETE', `/api/v1/jobs/${occupying.body.id}`)).status, 204);

      const refused = await settled(id);
      assert.equal(refused.status, 'failed', JSON.stringify(refused));
      assert.equal(refused.error.code, 'different_disc');
      assert.match(refused.error.message, /volume id ELSE_DISC.*volume id MOVE_DISC.*nothing was read/);
      assert.equal(await rescuedBytes(mapPath), rescuedOnA, 'the map is untouched');

      const readBefore = await bytesReadFrom(driveB.loop);
      const toB = await patch(id, { action: 'retry', device: driveB.loop.path });
      assert.equal(toB.status, 200, JSON.stringify(toB.body));
      assert.equal(toB.body.device_id, testDriveId(driveB.loop.name), 'a drive may be named by its device path');
      const done = await settled(id);
      assert.equal(done.status, 'completed', JSON.stringify(done));
      assert.equal(await sha256File(done.output_file), disc.sha256, 'the image is byte-identical to the disc');
      assert.equal(done.attempts, 3, 'A, then C (refused), then B');

      const readFromB = (await bytesReadFrom(driveB.loop)) - readBefore;
      assert.ok(readFromB < disc.sizeBytes - rescuedOnA / 2, `B read only what A had not: ${readFromB} bytes of ${disc.sizeBytes}, ${rescuedOnA} rescued on A`);
      const messages: string[] = (await api(service.url, 'GET', `/api/v1/jobs/${id}/logs`)).body.logs.map((line: { message: string }) => line.message);
      assert.ok(
        messages.includes(`retry requested on ${testDriveId(driveB.loop.name)} (${driveB.loop.path}) instead of ${testDriveId(driveC.loop.name)}`),
        messages.join('\n'),
      );
      assert.ok(
        messages.some((message) => message.startsWith('resuming from') && message.includes(`: ${rescuedOnA} of ${disc.sizeBytes} bytes already rescued`)),
        `the engine went on from the map A left:\n${messages.join('\n')}`,
      );
    });

    it('refuses to move a running job', async () => {
      await driveB.fault.setDelay(SLOW_READ_MS);
      try {
        const created = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(driveB.loop.name) });
        await waitFor('the job to run', async () => (await job(created.body.id)).status === 'running');
        const refused = await patch(created.body.id, { action: 'resume', device: testDriveId(driveC.loop.name) });
        assert.equal(refused.status, 409);
        assert.equal(refused.body.error.code, 'invalid_state');
        assert.equal((await job(created.body.id)).device_id, testDriveId(driveB.loop.name));
        assert.equal((await api(service.url, 'DELETE', `/api/v1/jobs/${created.body.id}`)).status, 204);
      } finally {
        await driveB.fault.setDelay(0);
      }
    });
  });

  describe('on the job page', () => {
    let web: WebTestServer;

    before(async () => {
      web = await startWebTestServer({ devices: [driveB.loop.path, driveC.loop.path], listen: false });
    });

    after(async () => {
      await web?.close();
    });

    it('offers the drives that hold the same disc for a job whose drive is gone, and continues it there', async () => {
      // A drive service of its own, outside any node: it knows the drives by their local names.
      const media = await createDriveService({ config: web.config }).probe(driveB.loop.name);
      assert.ok(media.imageSizeBytes, 'the probe found the disc and its size');
      await mkdir(web.config.storage.output_dir, { recursive: true });
      // The job's drive came back under another name: loop999 is gone, the disc is now in B.
      const orphan = await web.queue.enqueue({
        name: 'MOVE_DISC',
        deviceId: testDriveId('loop999'),
        devicePath: '/dev/loop999',
        outputFile: join(web.config.storage.output_dir, 'MOVE_DISC.iso'),
        sizeBytes: media.imageSizeBytes,
        options: {
          read_attempts: 1,
          verify: true,
          checksums: ['sha256'],
          disc: {
            label: media.volumeLabel,
            volume_id: media.volumeId,
            created_at: media.createdAt,
            kind: media.kind,
            size_bytes: media.imageSizeBytes,
            sector_size: 2048,
          },
        },
      });
      await waitFor('the job to fail on its vanished drive', async () => (await web.jobs.get(orphan.id)).status === 'failed');
      assert.equal((await web.jobs.get(orphan.id)).error?.code, 'unknown_device');

      const page = await web.send('GET', `/jobs/${orphan.id}`);
      assert.equal(page.status, 200);
      assert.ok(page.body.includes('class="inline-form job-move"'), 'the page offers to continue on another drive');
      const form = page.body.slice(page.body.indexOf('class="inline-form job-move"'));
      const options = [...form.slice(0, form.indexOf('</form>')).matchAll(/<option value="([^"]+)"/g)].map((match) => match[1]);
      assert.deepEqual(options, [testDriveId(driveB.loop.name)], 'only the drive with the same disc, not C');
      assert.match(form, /name="action" value="retry"/);
      const viewerPage = await web.send('GET', `/jobs/${orphan.id}`, { session: web.sessions.viewer });
      assert.doesNotMatch(viewerPage.body, /job-move/, 'a viewer is not offered it');

      const moved = await web.send('POST', `/jobs/${orphan.id}/action`, {
        form: { action: 'retry', device: testDriveId(driveB.loop.name), return_to: `/jobs/${orphan.id}` },
      });
      assert.equal(moved.status, 303);
      assert.equal(moved.location, `/jobs/${orphan.id}?notice=job_retry`);
      await waitFor('the job to settle on B', async () => !['queued', 'running', 'verifying'].includes((await web.jobs.get(orphan.id)).status));
      const done = await web.jobs.get(orphan.id);
      assert.equal(done.status, 'completed', JSON.stringify({ done, log: await web.jobs.logs(orphan.id) }));
      assert.equal(done.device_id, testDriveId(driveB.loop.name));
      assert.equal(await sha256File(done.output_file), disc.sha256);
    });
  });
});
