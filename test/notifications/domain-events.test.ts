import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DomainEvent, DomainEventType } from '../../src/notifications/model.js';
import { STORAGE_HYSTERESIS_PERCENT, nextStorageLevel } from '../../src/system/storage-watch.js';
import { type LiveClient, type TestServer, api, followEvents, startTestServer, verifyArchive, waitFor } from '../http/support.js';
import { attachTestDatabase, detachTestDatabase, testDriveId } from '../support/database.js';
import { requireTool, run } from '../tools/exec.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type WebhookReceiver, signatureValid, startReceiver } from './receiver.js';

const ALLOW_PRIVATE = { DISK2ISO_NOTIFICATIONS_ALLOW_PRIVATE_DESTINATIONS: 'true' };
const FAST_RETRIES = { pollMs: 50, retryBaseMs: 1, retryMaxMs: 1 };

interface Hook {
  type: string;
  data: Record<string, unknown> & { event_id: string };
}

/** The durable stream as the repository holds it, oldest first, of the given types. */
async function recorded(service: TestServer, types: readonly DomainEventType[]): Promise<DomainEvent[]> {
  return (await service.server.notifications.listEvents({ types, limit: 1000 })).reverse();
}

const hooks = (receiver: WebhookReceiver, secret: string): Hook[] =>
  receiver.received.map((hook) => {
    assert.ok(signatureValid(secret, hook), 'every webhook is signed');
    return JSON.parse(hook.body) as Hook;
  });

async function subscribe(service: TestServer, receiver: WebhookReceiver, events: readonly DomainEventType[]): Promise<string> {
  const created = await api(service.url, 'POST', '/api/v1/notifications/webhooks', { name: 'domain', url: `http://127.0.0.1:${receiver.port}/`, events });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.secret as string;
}

const DISC_TYPES = ['disc.inserted', 'disc.removed', 'disc.unimageable', 'disc.waiting', 'drive.appeared', 'drive.vanished'] as const;

/**
 * A loop device is a drive whose disc is its backing file: detaching it is taking the disc out,
 * attaching it to another file is putting another in. An image file that comes and goes under a
 * configured path is a drive appearing and vanishing.
 */
describe('disc and drive events are recorded, sent to webhooks and carried by the live stream', () => {
  let work: string;
  let loop: LoopDevice;
  let first: MadeIso;
  let second: MadeIso;
  let blank: string;
  let otherBlank: string;
  let laterDrive: string;
  let dataDir: string;
  let receiver: WebhookReceiver;
  let service: TestServer | undefined;
  let secret: string;
  let live: LiveClient;
  let losetup: string;

  const start = () => startTestServer({ devices: [loop.path, laterDrive], dataDir, env: ALLOW_PRIVATE, notifications: FAST_RETRIES });
  // Detached only for a moment: tests running in parallel take free loop devices.
  const swapDisc = async (file: string) => {
    await run(losetup, ['--detach', loop.path]);
    await run(losetup, ['--read-only', '--sector-size', '2048', '--direct-io=off', loop.path, file]);
  };
  const ofType = async (type: DomainEventType) => (await recorded(service as TestServer, [type])).map((event) => event.payload);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-domain-discs-'));
    dataDir = join(work, 'data');
    await mkdir(dataDir);
    await attachTestDatabase(dataDir);
    [first, second] = await Promise.all([
      makeIso({ dir: join(work, 'a'), label: 'EVENT_FIRST', dataMiB: 1, files: 1, seed: 31 }),
      makeIso({ dir: join(work, 'b'), label: 'EVENT_SECOND', dataMiB: 1, files: 1, seed: 32 }),
    ]);
    // Zeros: no volume descriptors, nothing that tells a size to image.
    blank = join(work, 'blank.bin');
    await writeFile(blank, Buffer.alloc(4 * 1024 * 1024));
    otherBlank = join(work, 'other-blank.bin');
    await writeFile(otherBlank, Buffer.alloc(6 * 1024 * 1024));
    laterDrive = join(work, 'later.iso');
    losetup = await requireTool('losetup', 'mount');
    loop = await attachLoop(first.path, { sectorSize: 2048 });
    receiver = await startReceiver();
    service = await start();
    secret = await subscribe(service, receiver, DISC_TYPES);
    live = await followEvents(service.url);
    const stored = await api(service.url, 'PUT', `/api/v1/devices/${testDriveId(loop.name)}/automation`, {
      mode: 'notify',
      name_template: '{label}',
      read_attempts: 1,
      checksums: ['sha256'],
      verify: true,
      eject: false,
      duplicates: 'ask',
    });
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
  });

  after(async () => {
    live?.close();
    await service?.close();
    await receiver?.close();
    await loop?.detach();
    await rm(work, { recursive: true, force: true });
    if (dataDir !== undefined) await detachTestDatabase(dataDir);
  });

  it('records a removal and an insertion with label, kind and size, and the notice that the disc waits', { timeout: 60_000 }, async () => {
    await swapDisc(second.path);
    await waitFor('the new disc to wait on the dashboard', async () => (await ofType('disc.waiting')).length === 1);
    assert.deepEqual(await ofType('disc.removed'), [{ drive_id: testDriveId(loop.name), label: 'EVENT_FIRST', kind: 'data', size_bytes: first.sizeBytes }]);
    const inserted = await ofType('disc.inserted');
    assert.equal(inserted.length, 1);
    assert.equal(inserted[0]?.drive_id, testDriveId(loop.name));
    assert.equal(inserted[0]?.label, 'EVENT_SECOND');
    assert.equal(inserted[0]?.kind, 'data');
    assert.equal(inserted[0]?.size_bytes, second.sizeBytes);
    const waiting = await ofType('disc.waiting');
    assert.equal(waiting[0]?.name, 'EVENT_SECOND');
    assert.equal(waiting[0]?.reason, 'inserted');

    await waitFor('the three events to reach the webhook', () => receiver.received.length >= 3);
    const sent = hooks(receiver, secret);
    assert.deepEqual(
      sent.map((hook) => hook.type),
      ['disc.removed', 'disc.inserted', 'disc.waiting'],
    );
    const ids = (await recorded(service as TestServer, ['disc.removed', 'disc.inserted', 'disc.waiting'])).map((event) => event.id);
    assert.deepEqual(
      sent.map((hook) => hook.data.event_id),
      ids,
    );
    assert.equal(sent[1]?.data.label, 'EVENT_SECOND');

    await waitFor('the live stream to carry them', () => live.messages.filter((message) => message.type === 'domain_event').length >= 3);
    const carried = live.messages.filter((message) => message.type === 'domain_event');
    assert.deepEqual(
      carried.map((message) => [message.event_id, (message.data as { type: string }).type]),
      ids.map((id, index) => [id, ['disc.removed', 'disc.inserted', 'disc.waiting'][index]]),
    );
  });

  it('keeps the waiting disc across a restart, and drops it once another disc took its place while the service was down', { timeout: 60_000 }, async () => {
    live.close();
    await service?.close();
    service = await start();
    assert.deepEqual(
      service.server.automation.notices().map((notice) => [notice.driveId, notice.name]),
      [[testDriveId(loop.name), 'EVENT_SECOND']],
    );
    // Nothing happened to the drive: the restart raises no event about it.
    assert.equal((await ofType('disc.inserted')).length, 1);

    await service.close();
    await swapDisc(blank);
    service = await start();
    // The first look at each drive, done before the start returns, already finds the disc gone.
    assert.deepEqual(service.server.automation.notices(), []);
    await service.close();
    service = await start();
    assert.deepEqual(service.server.automation.notices(), []);
    live = await followEvents(service.url);
  });

  it('records a disc that cannot be imaged, with why, and queues nothing', { timeout: 60_000 }, async () => {
    await swapDisc(otherBlank);
    await waitFor('the unimageable disc to be recorded', async () => (await ofType('disc.unimageable')).length === 1);
    const [unimageable] = await ofType('disc.unimageable');
    assert.equal(unimageable?.drive_id, testDriveId(loop.name));
    assert.equal(typeof unimageable?.reason, 'string');
    assert.notEqual(unimageable?.message, '');
    assert.equal((await api((service as TestServer).url, 'GET', '/api/v1/jobs')).body.jobs.length, 0);
    await waitFor('the webhook to get it', () => hooks(receiver, secret).some((hook) => hook.type === 'disc.unimageable'));
    await waitFor('the live stream to carry it', () =>
      live.messages.some((message) => message.type === 'domain_event' && (message.data as { type: string }).type === 'disc.unimageable'),
    );
  });

  it('records a drive that appears and vanishes', { timeout: 60_000 }, async () => {
    await copyFile(first.path, laterDrive);
    await waitFor('the drive to appear', async () => (await ofType('drive.appeared')).length === 1);
    const [appeared] = await ofType('drive.appeared');
    assert.equal(appeared?.path, laterDrive);
    await rm(laterDrive);
    await waitFor('the drive to vanish', async () => (await ofType('drive.vanished')).length === 1);
    assert.deepEqual(await ofType('drive.vanished'), [{ drive_id: appeared?.drive_id }]);
    await waitFor('the webhook to get both', () => {
      const types = hooks(receiver, secret).map((hook) => hook.type);
      return types.includes('drive.appeared') && types.includes('drive.vanished');
    });
  });
});

describe('verification results are recorded as they are stored', () => {
  let work: string;
  let iso: MadeIso;
  let receiver: WebhookReceiver;
  let service: TestServer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-domain-verify-'));
    iso = await makeIso({ dir: work, label: 'ROTTING', dataMiB: 1, files: 1, seed: 41 });
    receiver = await startReceiver();
    service = await startTestServer({ devices: [iso.path], env: ALLOW_PRIVATE, notifications: FAST_RETRIES });
  });
  after(async () => {
    await service?.close();
    await receiver?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('passes after imaging, and fails with the expected and actual checksums once a byte of the image flipped', { timeout: 120_000 }, async () => {
    const secret = await subscribe(service, receiver, ['verification.passed', 'verification.failed']);
    const deviceId = (await api(service.url, 'GET', '/api/v1/devices')).body.devices[0].id;
    const job = await api(service.url, 'POST', '/api/v1/jobs', { device: deviceId, options: { checksums: ['sha256', 'md5'], verify: true } });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    await waitFor('the job to complete', async () => (await api(service.url, 'GET', `/api/v1/jobs/${job.body.id}`)).body.status === 'completed');
    const archive = (await api(service.url, 'GET', '/api/v1/archives')).body.archives[0];
    const [passed] = await recorded(service, ['verification.passed']);
    assert.equal(passed?.payload.trigger, 'after_imaging');
    assert.deepEqual(passed?.payload.archive, { id: archive.id, filename: archive.filename, path: archive.path, size_bytes: iso.sizeBytes, status: 'ok' });

    // Bit rot: one byte in the middle of the archived image changes.
    const handle = await open(archive.path, 'r+');
    const offset = Math.floor(iso.sizeBytes / 2);
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await handle.write(byte, 0, 1, offset);
    await handle.close();
    const task = await verifyArchive(service.url, archive.id);
    assert.equal(task.status, 'completed');

    const failed = await recorded(service, ['verification.failed']);
    assert.equal(failed.length, 1);
    const payload = failed[0]?.payload ?? {};
    assert.equal(payload.trigger, 'requested');
    assert.equal((payload.archive as { status: string }).status, 'damaged');
    const sha256 = (payload.checksums as Array<{ algorithm: string; expected: string; actual: string; ok: boolean }>).find(
      (entry) => entry.algorithm === 'sha256',
    );
    assert.equal(sha256?.expected, iso.sha256);
    assert.notEqual(sha256?.actual, iso.sha256);
    assert.match(sha256?.actual ?? '', /^[0-9a-f]{64}$/);
    assert.equal(sha256?.ok, false);

    await waitFor('both to reach the webhook', () => receiver.received.length >= 2);
    assert.deepEqual(
      hooks(receiver, secret).map((hook) => [hook.type, hook.data.event_id]),
      [
        ['verification.passed', passed?.id],
        ['verification.failed', failed[0]?.id],
      ],
    );
  });
});

describe('the storage thresholds, on a small file system of its own', () => {
  let work: string;
  let mountPoint: string;
  let receiver: WebhookReceiver;
  let service: TestServer | undefined;
  let dataDir: string;
  const fill = 'fill.bin';
  const STORAGE_TYPES = ['storage.warning_passed', 'storage.stop_passed', 'storage.stop_cleared', 'storage.warning_cleared'] as const;
  const env = { ...ALLOW_PRIVATE, DISK2ISO_STORAGE_WARN_THRESHOLD_PERCENT: '50', DISK2ISO_STORAGE_STOP_THRESHOLD_PERCENT: '80' };

  const start = async () => {
    service = await startTestServer({
      dataDir,
      env: { ...env, DISK2ISO_STORAGE_OUTPUT_DIR: mountPoint },
      notifications: FAST_RETRIES,
      storage: { intervalMs: 50 },
    });
    return service;
  };
  /** Grows or shrinks the one file on the 16 MiB file system to `percent` of it, never passing through an emptier state. */
  const fillTo = async (percent: number) => {
    const target = Math.floor((16 * 1024 * 1024 * percent) / 100);
    const handle = await open(join(mountPoint, fill), 'r+');
    const { size } = await handle.stat();
    if (target > size) await handle.write(Buffer.alloc(target - size, 1), 0, target - size, size);
    else await handle.truncate(target);
    await handle.close();
  };
  const types = async () => (await recorded(service as TestServer, STORAGE_TYPES)).map((event) => event.type);
  // Several looks (one every 50 ms) at the same use: a crossing is recorded once, not once per look.
  const settle = () => new Promise((resolve) => setTimeout(resolve, 400));

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-domain-storage-'));
    mountPoint = join(work, 'output');
    dataDir = join(work, 'data');
    await Promise.all([mkdir(mountPoint), mkdir(dataDir)]);
    await attachTestDatabase(dataDir);
    await run(await requireTool('mount', 'mount'), ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mountPoint]);
    await writeFile(join(mountPoint, fill), '');
    receiver = await startReceiver();
  });
  after(async () => {
    await service?.close();
    await receiver?.close();
    await run('umount', [mountPoint]).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
    if (dataDir !== undefined) await detachTestDatabase(dataDir);
  });

  it('enters and leaves each level at its threshold, less the hysteresis on the way down', () => {
    assert.equal(nextStorageLevel('ok', 49.9, 50, 80), 'ok');
    assert.equal(nextStorageLevel('ok', 50, 50, 80), 'warning');
    assert.equal(nextStorageLevel('ok', 95, 50, 80), 'stop');
    assert.equal(nextStorageLevel('stop', 80 - STORAGE_HYSTERESIS_PERCENT / 2, 50, 80), 'stop');
    assert.equal(nextStorageLevel('stop', 80 - STORAGE_HYSTERESIS_PERCENT, 50, 80), 'warning');
    assert.equal(nextStorageLevel('warning', 50 - STORAGE_HYSTERESIS_PERCENT / 2, 50, 80), 'warning');
    assert.equal(nextStorageLevel('warning', 40, 50, 80), 'ok');
  });

  it('records each crossing once, up and down, and sends it to a webhook', { timeout: 60_000 }, async () => {
    const running = await start();
    const secret = await subscribe(running, receiver, STORAGE_TYPES);
    await settle();
    assert.deepEqual(await types(), []);
    await fillTo(60);
    await waitFor('the warning', async () => (await types()).length === 1);
    await settle();
    assert.deepEqual(await types(), ['storage.warning_passed']);
    await fillTo(85);
    await waitFor('the stop', async () => (await types()).length === 2);
    // Just below the stop threshold, within the hysteresis: still stopped, nothing new.
    await fillTo(80 - STORAGE_HYSTERESIS_PERCENT / 4);
    await settle();
    assert.deepEqual(await types(), ['storage.warning_passed', 'storage.stop_passed']);
    await fillTo(70);
    await waitFor('the stop to clear', async () => (await types()).length === 3);
    await fillTo(5);
    await waitFor('the warning to clear', async () => (await types()).length === 4);
    await settle();
    assert.deepEqual(await types(), [...STORAGE_TYPES]);
    const [passed] = await recorded(running, ['storage.warning_passed']);
    assert.equal(passed?.payload.threshold_percent, 50);
    assert.equal(passed?.payload.path, mountPoint);
    assert.ok((passed?.payload.used_percent as number) >= 50);

    await waitFor('all four to reach the webhook', () => receiver.received.length >= 4);
    assert.deepEqual(
      hooks(receiver, secret).map((hook) => hook.type),
      [...STORAGE_TYPES],
    );
  });

  it('does not announce a crossing again after a restart', { timeout: 60_000 }, async () => {
    await fillTo(60);
    await waitFor('the warning', async () => (await types()).length === 5);
    await service?.close();
    await start();
    await settle();
    assert.deepEqual((await types()).slice(4), ['storage.warning_passed']);
  });
});

describe('the live stream sends a domain event only to clients that may read its subject', () => {
  let service: TestServer;
  before(async () => {
    service = await startTestServer();
  });
  after(async () => {
    await service?.close();
  });

  it('gives a key that reads only jobs the job events, not those of discs or the output disk', { timeout: 30_000 }, async () => {
    const created = await api(service.url, 'POST', '/api/v1/api-keys', { name: 'jobs only', scopes: ['jobs:read'] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const limited = await followEvents(service.url, { 'x-api-key': created.body.key });
    const full = await followEvents(service.url);
    try {
      const disc = await service.server.notifications.raise('disc.inserted', { drive_id: 'sr0', label: 'SECRET_LABEL' });
      const storage = await service.server.notifications.raise('storage.stop_passed', { path: '/srv/out' });
      const job = await service.server.notifications.raise('job.queued', { job: { id: 'job_1', name: 'VISIBLE' } });
      const carried = (client: LiveClient) => client.messages.filter((message) => message.type === 'domain_event').map((message) => message.event_id);
      await waitFor('the job event to reach both', () => carried(limited).includes(job.id) && carried(full).includes(job.id));
      assert.deepEqual(carried(full), [disc.id, storage.id, job.id]);
      assert.deepEqual(carried(limited), [job.id]);
      assert.deepEqual(limited.messages.find((message) => message.event_id === job.id)?.data, {
        id: job.id,
        type: 'job.queued',
        at: job.at,
        payload: { job: { id: 'job_1', name: 'VISIBLE' } },
      });
    } finally {
      limited.close();
      full.close();
    }
  });
});
