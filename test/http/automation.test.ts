import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DriveEvents } from '../../src/drives/events.js';
import type { AutomationEvents } from '../../src/jobs/automation.js';
import { type WebhookReceiver, signatureValid, startReceiver } from '../notifications/receiver.js';
import { testDriveId } from '../support/database.js';
import { requireTool, run } from '../tools/exec.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type TestServer, api, startTestServer, waitFor } from './support.js';

type Seen = { [K in keyof (DriveEvents & AutomationEvents)]: { type: K; payload: (DriveEvents & AutomationEvents)[K] } }[keyof (DriveEvents &
  AutomationEvents)];

/**
 * A drive that is an image file (drives.extra): putting another image in its place is putting
 * another disc in. Replaced by rename, as a disc is swapped whole, so no probe sees half a file.
 */
describe('discs put into a drive are seen and acted on per drive', () => {
  let work: string;
  let drivePath: string;
  let first: MadeIso;
  let second: MadeIso;
  let third: MadeIso;
  let service: TestServer;
  let driveId: string;
  let receiver: WebhookReceiver;
  let hookSecret: string;
  const seen: Seen[] = [];
  const hooked = (type: string) =>
    receiver.received
      .filter((hook) => signatureValid(hookSecret, hook))
      .map((hook) => JSON.parse(hook.body) as { type: string; data: Record<string, unknown> })
      .filter((hook) => hook.type === type);

  const insert = async (file: string): Promise<void> => {
    const staged = join(work, 'staged.iso');
    await copyFile(file, staged);
    await rename(staged, drivePath);
  };
  const events = <K extends Seen['type']>(type: K) => seen.filter((event) => event.type === type) as Array<Extract<Seen, { type: K }>>;
  const jobs = async () => (await api(service.url, 'GET', '/api/v1/jobs?limit=100')).body.jobs as Array<{ id: string; name: string; status: string }>;
  const setAutomation = async (settings: Record<string, unknown>) => {
    const body = {
      mode: 'automatic',
      name_template: '{label}_{counter}',
      read_attempts: 1,
      checksums: ['sha256'],
      verify: true,
      eject: false,
      duplicates: 'skip',
      ...settings,
    };
    const response = await api(service.url, 'PUT', `/api/v1/devices/${driveId}/automation`, body);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body;
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-automation-'));
    [first, second, third] = await Promise.all([
      makeIso({ dir: join(work, 'a'), label: 'FIRST_DISC', dataMiB: 1, files: 1, seed: 1 }),
      makeIso({ dir: join(work, 'b'), label: 'SECOND_DISC', dataMiB: 1, files: 1, seed: 2 }),
      makeIso({ dir: join(work, 'c'), label: 'THIRD_DISC', dataMiB: 1, files: 1, seed: 3 }),
    ]);
    drivePath = join(work, 'drive.iso');
    await copyFile(first.path, drivePath);
    receiver = await startReceiver();
    service = await startTestServer({
      devices: [drivePath],
      env: { DISK2ISO_NOTIFICATIONS_ALLOW_PRIVATE_DESTINATIONS: 'true' },
      notifications: { pollMs: 50, retryBaseMs: 1, retryMaxMs: 1 },
    });
    const hook = await api(service.url, 'POST', '/api/v1/notifications/webhooks', {
      name: 'duplicates',
      url: `http://127.0.0.1:${receiver.port}/`,
      events: ['disc.duplicate_skipped', 'disc.waiting'],
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    hookSecret = hook.body.secret;
    service.server.discEvents.onAny((type, payload) => seen.push({ type, payload } as Seen));
    const devices = (await api(service.url, 'GET', '/api/v1/devices')).body.devices as Array<{ id: string; path: string }>;
    driveId = devices.find((device) => device.path === drivePath)?.id ?? '';
    assert.notEqual(driveId, '');
  });

  after(async () => {
    await service?.close();
    await receiver?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('starts manual, and refuses a template with an unknown placeholder, changing nothing', async () => {
    const shown = await api(service.url, 'GET', `/api/v1/devices/${driveId}/automation`);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.mode, 'manual');
    assert.equal(shown.body.updated_at, null);
    const refused = await api(service.url, 'PUT', `/api/v1/devices/${driveId}/automation`, {
      ...shown.body,
      device: undefined,
      counter: undefined,
      updated_at: undefined,
      updated_by: undefined,
      name_template: '{label}_{owner}',
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'invalid_name_template');
    assert.equal((await api(service.url, 'GET', `/api/v1/devices/${driveId}/automation`)).body.mode, 'manual');
    const unknown = await api(service.url, 'PUT', '/api/v1/devices/sr9/automation', {
      ...shown.body,
      device: undefined,
      counter: undefined,
      updated_at: undefined,
      updated_by: undefined,
    });
    assert.equal(unknown.status, 404);
  });

  it('in automatic mode images an inserted disc without any further request and archives it', { timeout: 120_000 }, async () => {
    const stored = await setAutomation({});
    assert.equal(stored.mode, 'automatic');
    assert.equal(stored.updated_by, 'test-admin');
    await insert(second.path);
    await waitFor('the automatic job to complete', async () => (await jobs()).some((job) => job.name === 'SECOND_DISC_1' && job.status === 'completed'));
    const archives = (await api(service.url, 'GET', '/api/v1/archives')).body.archives as Array<{ filename: string; checksums: Record<string, string> }>;
    const archived = archives.find((archive) => archive.filename === 'SECOND_DISC_1.iso');
    assert.ok(archived, JSON.stringify(archives));
    assert.equal(archived.checksums['sha256'], second.sha256);
    assert.deepEqual(
      events('disc.removed').map((event) => event.payload.label),
      ['FIRST_DISC'],
    );
    const inserted = events('disc.inserted').map((event) => event.payload);
    assert.equal(inserted.length, 1);
    assert.equal(inserted[0]?.label, 'SECOND_DISC');
    assert.equal(inserted[0]?.sizeBytes, second.sizeBytes);
    assert.equal(inserted[0]?.driveId, driveId);
  });

  it('skips a disc that matches an archived image when its setting says skip', { timeout: 60_000 }, async () => {
    await insert(third.path);
    await waitFor('the third disc to be queued', async () => (await jobs()).some((job) => job.name === 'THIRD_DISC_2' && job.status === 'completed'));
    await insert(second.path);
    await waitFor('the duplicate to be skipped', () => events('disc.skipped').length === 1);
    assert.equal(events('disc.skipped')[0]?.payload.duplicateOf.filename, 'SECOND_DISC_1.iso');
    assert.equal((await jobs()).filter((job) => job.name.startsWith('SECOND_DISC')).length, 1);
    const [recorded] = await service.server.notifications.listEvents({ types: ['disc.duplicate_skipped'] });
    assert.deepEqual(recorded?.payload, {
      drive_id: driveId,
      label: 'SECOND_DISC',
      duplicate_of: { archive_id: events('disc.skipped')[0]?.payload.duplicateOf.archiveId, filename: 'SECOND_DISC_1.iso' },
    });
    await waitFor('the skip to reach the webhook', () => hooked('disc.duplicate_skipped').length === 1);
    assert.equal(hooked('disc.duplicate_skipped')[0]?.data.event_id, recorded?.id);
  });

  it('announces a duplicate instead when its setting says ask, and images it again when it says image', { timeout: 60_000 }, async () => {
    await setAutomation({ duplicates: 'ask' });
    await insert(first.path);
    await waitFor('the first disc to be imaged', async () => (await jobs()).some((job) => job.name === 'FIRST_DISC_3' && job.status === 'completed'));
    await insert(second.path);
    await waitFor('the duplicate to be announced', () => events('disc.notice').length === 1);
    const notice = events('disc.notice')[0]?.payload;
    assert.equal(notice?.reason, 'duplicate');
    assert.equal(notice?.duplicateOf?.filename, 'SECOND_DISC_1.iso');
    const [announced] = await service.server.notifications.listEvents({ types: ['disc.waiting'] });
    assert.equal(announced?.payload.reason, 'duplicate');
    assert.deepEqual(announced?.payload.duplicate_of, { archive_id: notice?.duplicateOf?.archiveId, filename: 'SECOND_DISC_1.iso' });
    await waitFor('the announcement to reach the webhook', () => hooked('disc.waiting').length === 1);
    assert.deepEqual(
      service.server.automation.notices().map((shown) => shown.driveId),
      [driveId],
    );
    assert.equal((await jobs()).filter((job) => job.name.startsWith('SECOND_DISC')).length, 1);

    await setAutomation({ duplicates: 'image' });
    await insert(third.path);
    await waitFor('the third disc to be imaged again', async () => (await jobs()).some((job) => job.name === 'THIRD_DISC_4' && job.status === 'completed'));
    assert.equal(events('disc.skipped').length, 1);
  });

  it('does not queue a blank disc, and says why', { timeout: 60_000 }, async () => {
    const before = (await jobs()).length;
    const blank = join(work, 'blank.iso');
    await writeFile(blank, Buffer.alloc(4 * 1024 * 1024));
    await insert(blank);
    await waitFor('the blank disc to be reported', () => events('disc.unimageable').length === 1);
    const reported = events('disc.unimageable')[0]?.payload;
    assert.equal(reported?.reason, 'blank_media');
    assert.equal(reported?.kind, 'blank');
    assert.equal((await jobs()).length, before);
  });
});

/**
 * A loop device is a drive whose disc is its backing file: detaching it and attaching the same
 * device node to another image is taking one disc out and putting another in (udev and the kernel
 * announce both), as `losetup` does it.
 */
describe('a loop device in automatic mode whose backing file changes', () => {
  let work: string;
  let loop: LoopDevice;
  let service: TestServer;
  let second: MadeIso;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-automation-loop-'));
    const first = await makeIso({ dir: join(work, 'a'), label: 'LOOP_FIRST', dataMiB: 1, files: 1, seed: 21 });
    second = await makeIso({ dir: join(work, 'b'), label: 'LOOP_SECOND', dataMiB: 1, files: 1, seed: 22 });
    loop = await attachLoop(first.path, { sectorSize: 2048 });
    service = await startTestServer({ devices: [loop.path] });
  });

  after(async () => {
    await service?.close();
    await loop?.detach();
    await rm(work, { recursive: true, force: true });
  });

  it('images the new disc and archives it without any further request', { timeout: 120_000 }, async () => {
    const body = { mode: 'automatic', name_template: '{label}', read_attempts: 1, checksums: ['sha256'], verify: true, eject: false, duplicates: 'skip' };
    const stored = await api(service.url, 'PUT', `/api/v1/devices/${testDriveId(loop.name)}/automation`, body);
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    const losetup = await requireTool('losetup', 'mount');
    await run(losetup, ['--detach', loop.path]);
    await run(losetup, ['--read-only', '--sector-size', '2048', '--direct-io=off', loop.path, second.path]);
    await waitFor('the new disc to be archived', async () => {
      const archives = (await api(service.url, 'GET', '/api/v1/archives')).body.archives as Array<{ filename: string; checksums: Record<string, string> }>;
      return archives.some((archive) => archive.filename === 'LOOP_SECOND.iso' && archive.checksums['sha256'] === second.sha256);
    });
    // The archive entry is written before the job's end is recorded: wait for that too.
    let jobs: Array<{ name: string; device_id: string; status: string }> = [];
    await waitFor('its job to end', async () => {
      jobs = (await api(service.url, 'GET', '/api/v1/jobs')).body.jobs;
      return jobs.every((job) => job.status !== 'running' && job.status !== 'verifying');
    });
    assert.deepEqual(
      jobs.map((job) => [job.name, job.device_id, job.status]),
      [['LOOP_SECOND', testDriveId(loop.name), 'completed']],
    );
  });
});
