import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { Webhook } from 'standardwebhooks';
import { type TestServer, api, startTestServer, waitFor } from '../http/support.js';
import { testDriveId } from '../support/database.js';
import { requireTool, run } from '../tools/exec.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type Mosquitto, type Observer, observe, startMosquitto } from '../tools/mosquitto.js';
import { type WebhookReceiver, startReceiver } from './receiver.js';

const SERVICE = { username: 'disk2iso', password: 'Service-Pass-1' };
const HOME_ASSISTANT = { username: 'home', password: 'Home-Pass-2' };

interface Mail {
  to: string[];
  raw: string;
}

/** A real SMTP server on 127.0.0.1 that takes every message without sign-in or TLS (smtp_security none). */
async function startMailServer(): Promise<{ port: number; mails: Mail[]; close(): Promise<void> }> {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((entry) => entry.address), raw: Buffer.concat(chunks).toString('utf8') });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, mails, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * The "done when": a disc put into a drive in automatic mode is imaged, archived, verified
 * and released, and every channel hears of it (an e-mail, a signed webhook, Home Assistant's state
 * over MQTT), with no request after the disc went in.
 */
describe('put a disc in, get an archived image and a message on every channel', () => {
  let work: string;
  let second: MadeIso;
  let loop: LoopDevice;
  let broker: Mosquitto;
  let mail: Awaited<ReturnType<typeof startMailServer>>;
  let receiver: WebhookReceiver;
  let home: Observer;
  let service: TestServer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-end-to-end-'));
    const first = await makeIso({ dir: join(work, 'a'), label: 'E2E_FIRST', dataMiB: 1, files: 1, seed: 41 });
    second = await makeIso({ dir: join(work, 'b'), label: 'E2E_SECOND', dataMiB: 4, files: 2, seed: 42 });
    loop = await attachLoop(first.path, { sectorSize: 2048 });
    broker = await startMosquitto({ [SERVICE.username]: SERVICE.password, [HOME_ASSISTANT.username]: HOME_ASSISTANT.password });
    mail = await startMailServer();
    receiver = await startReceiver();
    home = await observe(broker.url, HOME_ASSISTANT, ['disk2iso/#']);
    service = await startTestServer({
      devices: [loop.path],
      notifications: { pollMs: 50 },
      env: {
        DISK2ISO_NOTIFICATIONS_ALLOW_PRIVATE_DESTINATIONS: 'true',
        DISK2ISO_NOTIFICATIONS_EMAIL_ON_COMPLETION: 'true',
        DISK2ISO_NOTIFICATIONS_EMAIL_ADDRESS: 'archivist@example.org',
        DISK2ISO_NOTIFICATIONS_SMTP_HOST: '127.0.0.1',
        DISK2ISO_NOTIFICATIONS_SMTP_PORT: String(mail.port),
        DISK2ISO_NOTIFICATIONS_SMTP_SECURITY: 'none',
        DISK2ISO_MQTT_ENABLED: 'true',
        DISK2ISO_MQTT_BROKER_URL: broker.url,
        DISK2ISO_MQTT_USERNAME: SERVICE.username,
        DISK2ISO_MQTT_PASSWORD: SERVICE.password,
      },
    });
  });

  after(async () => {
    await service?.close();
    await home?.close();
    await receiver?.close();
    await mail?.close();
    await broker?.stop();
    await loop?.detach();
    await rm(work, { recursive: true, force: true });
  });

  it('images, verifies, archives and releases the disc, and e-mail, webhook and MQTT all carry it', { timeout: 180_000 }, async () => {
    const hook = await api(service.url, 'POST', '/api/v1/notifications/webhooks', {
      name: 'archive watcher',
      url: `http://127.0.0.1:${receiver.port}/hook`,
      events: ['job.completed'],
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    const automation = { mode: 'automatic', name_template: '{label}', read_attempts: 1, checksums: ['sha256'], verify: true, eject: true, duplicates: 'skip' };
    const stored = await api(service.url, 'PUT', `/api/v1/devices/${testDriveId(loop.name)}/automation`, automation);
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    const stateTopic = `disk2iso/${testDriveId(loop.name)}/state`;
    await waitFor('Home Assistant to see the drive', () => home.on(stateTopic).length > 0);

    // The disc goes in: the loop device's backing file changes. No request follows.
    const losetup = await requireTool('losetup', 'mount');
    await run(losetup, ['--detach', loop.path]);
    await run(losetup, ['--read-only', '--sector-size', '2048', '--direct-io=off', loop.path, second.path]);

    type Archive = { id: string; filename: string; status: string; checksums: Record<string, string> };
    let archive: Archive | undefined;
    await waitFor('the image to be archived', async () => {
      const archives = (await api(service.url, 'GET', '/api/v1/archives')).body.archives as Archive[];
      archive = archives.find((candidate) => candidate.filename === 'E2E_SECOND.iso');
      return archive !== undefined;
    });
    assert.equal(archive?.checksums['sha256'], second.sha256);
    assert.equal(archive?.status, 'ok');
    // The archive entry is written before the job's end is recorded: wait for that too.
    let jobs: Array<{ id: string; name: string; status: string; device_id: string }> = [];
    await waitFor('its job to end', async () => {
      jobs = (await api(service.url, 'GET', '/api/v1/jobs')).body.jobs;
      return jobs.every((job) => job.status !== 'running' && job.status !== 'verifying');
    });
    assert.deepEqual(
      jobs.map((job) => [job.name, job.device_id, job.status]),
      [['E2E_SECOND', testDriveId(loop.name), 'completed']],
    );
    const jobId = jobs[0]?.id ?? '';
    const verifications = (await api(service.url, 'GET', `/api/v1/archives/${archive?.id}/verifications`)).body.verifications as Array<{
      ok: boolean;
      results: { source?: string };
    }>;
    assert.deepEqual(
      verifications.map((verification) => [verification.ok, verification.results.source]),
      [[true, 'after imaging']],
    );

    await waitFor('the drive to be released', async () => {
      const devices = (await api(service.url, 'GET', '/api/v1/devices')).body.devices as Array<{ id: string; status: string; job_id: string | null }>;
      const drive = devices.find((device) => device.id === testDriveId(loop.name));
      return drive?.status === 'idle' && drive.job_id === null;
    });

    await waitFor('the e-mail', () => mail.mails.length > 0);
    assert.deepEqual(mail.mails[0]?.to, ['archivist@example.org']);
    assert.match(mail.mails[0]?.raw ?? '', /E2E_SECOND/);

    await waitFor('the webhook', () => receiver.received.length > 0);
    const webhook = receiver.received[0];
    assert.ok(webhook !== undefined);
    const verified = new Webhook(hook.body.secret).verify(webhook.body, webhook.headers as Record<string, string>) as {
      type: string;
      data: { job: { id: string; archive_id: string } };
    };
    assert.equal(verified.type, 'job.completed');
    assert.deepEqual([verified.data.job.id, verified.data.job.archive_id], [jobId, archive?.id]);

    const states = () => home.on(stateTopic).map((message) => JSON.parse(message.payload) as { state: string; job: string | null; label: string });
    await waitFor('Home Assistant to see the drive hold the archived disc again', () => {
      const last = states().at(-1);
      return last?.job === null && last.label === 'E2E_SECOND' && ['disc_present', 'idle'].includes(last.state);
    });
    const seen = states().map((state) => `${state.state}:${state.job === jobId ? 'job' : '-'}`);
    const imaging = seen.indexOf('imaging:job');
    assert.ok(imaging >= 0, seen.join(' → '));
    assert.ok(
      seen.slice(imaging).some((entry) => entry === 'disc_present:-' || entry === 'idle:-'),
      seen.join(' → '),
    );
    assert.deepEqual(
      home.on('disk2iso/status').map((message) => message.payload),
      ['online'],
    );
  });
});
