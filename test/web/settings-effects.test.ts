import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { createReverifySchedule } from '../../src/archive/reverify-schedule.js';
import { localActor } from '../../src/auth/principal.js';
import { silentLogger } from '../../src/log.js';
import { LANGUAGE_COOKIE } from '../../src/web/i18n.js';
import { CDROM_INFO_FIXTURE, SYSFS_FIXTURE, mockUdevLayer } from '../drives/fixtures.js';
import { type WebhookReceiver, startReceiver } from '../notifications/receiver.js';
import { type Mosquitto, observe, startMosquitto } from '../tools/mosquitto.js';
import { EMBEDDED_ONLY_FIELDS, pageForms, saveConfigForm } from './support/config-page.js';
import { type TestDisc, insertTestDisc } from './support/discs.js';
import { type WebTestServer, startWebTestServer } from './support/server.js';

/**
 * Every setting the configuration page offers does what its help text says. The test reads the
 * page as an admin sees it, takes every field of its forms, and runs the probe of that field from
 * PROBES: the probe changes the setting the way the page does (its form, as a browser submits it)
 * and watches the behaviour the help text promises. A field without a probe fails the walk, so a
 * new setting brings its probe along. Each probe's changes are undone after it, through the page.
 */

interface ReceivedMail {
  id: string | null;
  from: string;
  to: string[];
  raw: string;
  user: string | null;
}

interface MailServer {
  port: number;
  mails: ReceivedMail[];
  close(): Promise<void>;
}

const MQTT_USER = 'walker';
const MQTT_PASSWORD = 'mqtt-Walk-47';
const SMTP_USER = 'mailer';
const SMTP_PASSWORD = 'smtp-Walk-31';

/** A plain SMTP server on 127.0.0.1 without STARTTLS; a sign-in is optional but must be right. */
async function startMailServer(): Promise<MailServer> {
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === SMTP_USER && auth.password === SMTP_PASSWORD) callback(null, { user: auth.username });
      else callback(Object.assign(new Error('authentication failed'), { responseCode: 535 }));
    },
    onData(stream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        mails.push({
          id: /^Message-ID: <([^@>]+)@disk2iso>/im.exec(raw)?.[1] ?? null,
          from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((entry) => entry.address),
          raw,
          user: typeof session.user === 'string' ? session.user : null,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, mails, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, attempts = 600): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface ApiJob {
  id: string;
  status: string;
  priority: string;
  output_file: string;
  pause_reason: string | null;
  archive_id: string | null;
  options: { read_attempts: number; verify: boolean; checksums: string[]; disc?: { sector_size?: number } };
}

/** The NAME.iso.json the engine writes next to an image: what it ran with and how it read. */
interface ImageRecord {
  source: { direct_io: boolean };
  options: { cluster_sectors: number; map_save_interval_ms: number; verify: boolean; checksums: string[] };
  checksums: Record<string, string>;
  verification: unknown;
}

interface Delivery {
  id: string;
  event_id: string;
  event_type: string;
  channel: string;
  status: string;
  attempts: number;
  last_error: string | null;
}

/** What a probe works with: the page, the API, the drives, the mail servers and the webhook receivers. */
interface ProbeKit {
  server: WebTestServer;
  /** Saves a settings form as a browser submits it, with `changes` on top of what the page shows (true/false: tick or untick). */
  save(section: string, changes: Record<string, string | string[] | boolean>): Promise<void>;
  api<T>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** Creates a job on the drive with the settings' defaults and waits until it stops. */
  job(device: 'loop' | 'file' | 'optical'): Promise<ApiJob>;
  imageRecord(job: ApiJob): Promise<ImageRecord>;
  /** Sends the test e-mail from the page; its delivery after the first attempt and the mail that arrived for it (or null). */
  testMail(at?: MailServer): Promise<{ delivery: Delivery; mail: ReceivedMail | null }>;
  /** The events a job raised (as the witness webhook got them, all subscribed), once its last one arrived. */
  jobEvents(job: ApiJob): Promise<Array<{ type: string; eventId: string }>>;
  deliveries(): Promise<Delivery[]>;
  mail: MailServer;
  otherMail: MailServer;
  receiver: WebhookReceiver;
  ejected: string[];
  broker: Mosquitto;
}

interface MqttStatus {
  state: string;
  error: string | null;
}

/** The MQTT form's fields for a working connection to the test's broker. */
const mqttOn = (kit: ProbeKit): Record<string, string | boolean> => ({
  mqtt__enabled: true,
  mqtt__broker_url: kit.broker.url,
  mqtt__username: MQTT_USER,
  mqtt__password: MQTT_PASSWORD,
});

const mqttStatus = async (kit: ProbeKit): Promise<MqttStatus> => (await kit.api<MqttStatus>('GET', '/api/v1/notifications/mqtt')).body;

async function waitForMqtt(kit: ProbeKit, state: string): Promise<MqttStatus> {
  let status: MqttStatus = { state: '', error: null };
  await waitFor(`the MQTT channel to be ${state}`, async () => {
    status = await mqttStatus(kit);
    return status.state === state;
  });
  return status;
}

/** A port nobody listens on: the kernel's pick for a server closed again at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise((resolve) => server.close(resolve));
  return address.port;
}

/**
 * The re-verification schedule as the service builds it, on the service's own config (which the page
 * changes in place), archives and verification path, at a fixed local hour and with imaging running
 * or not as the probe says. A fresh image archived without verification is due whenever the schedule allows.
 */
async function reverifySchedule(kit: ProbeKit, at: { hour: number; imaging?: boolean }) {
  await kit.save('imaging', { imaging__verify: false });
  const job = await kit.job('loop');
  assert.equal(job.status, 'completed');
  const now = new Date();
  now.setHours(at.hour, 30, 0, 0);
  return createReverifySchedule({
    config: kit.server.config,
    archives: kit.server.archiveRepository,
    tasks: { active: async () => [] },
    startVerification: kit.server.archives.startVerification,
    imagingRunning: async () => at.imaging ?? false,
    log: silentLogger(),
    now: () => now,
  });
}

type Probe = (kit: ProbeKit) => Promise<void>;

const TERMINAL = new Set(['completed', 'failed', 'paused', 'cancelled']);
const JOB_END_EVENTS = new Set(['job.completed', 'job.completed_with_errors', 'job.failed', 'job.cancelled', 'job.paused']);

/**
 * The probe of each field of the page, by its form name. A setting new on the page fails the walk
 * until a probe is added here: one that changes it through the page and fails when nothing reads it.
 */
const PROBES: Record<string, Probe> = {
  async storage__output_dir(kit) {
    await kit.save('storage', { storage__output_dir: 'walk-out' });
    const job = await kit.job('loop');
    assert.equal(job.status, 'completed');
    assert.equal(dirname(job.output_file), join(kit.server.config.data_dir, 'walk-out'));
    assert.ok(await exists(job.output_file), 'the image is in the new folder');
  },

  async storage__delete_source_on_success(kit) {
    await kit.save('storage', { storage__delete_source_on_success: true });
    const ejecting = await kit.job('optical');
    assert.equal(ejecting.status, 'completed');
    await waitFor('the tray to open', () => kit.ejected.length === 1);
    await kit.save('storage', { storage__delete_source_on_success: false });
    const keeping = await kit.job('optical');
    assert.equal(keeping.status, 'completed');
    assert.equal(kit.ejected.length, 1, 'no eject once the setting is off');
  },

  async storage__keep_partial_on_cancel(kit) {
    /** A paused job that has a partial image and map but read nothing yet, removed through the API. */
    const removePausedJob = async (name: string, deviceId: string): Promise<string> => {
      const outputFile = join(kit.server.config.storage.output_dir, `${name}.iso`);
      await mkdir(dirname(outputFile), { recursive: true });
      const taken = await kit.server.queue.enqueue({
        name,
        deviceId,
        devicePath: `/dev/${deviceId}`,
        outputFile,
        sizeBytes: 4096,
        options: {},
        claim: { workerId: 'walk-worker', leaseMs: 600_000 },
      });
      await writeFile(`${outputFile}.part`, Buffer.alloc(4096, 1));
      await writeFile(`${outputFile}.map`, '# map\n');
      await kit.server.queue.finish(taken.id, 'walk-worker', 'paused');
      const removed = await kit.api('DELETE', `/api/v1/jobs/${taken.id}`);
      assert.equal(removed.status, 204, JSON.stringify(removed.body));
      return outputFile;
    };
    await kit.save('storage', { storage__keep_partial_on_cancel: true });
    const kept = await removePausedJob('kept', 'loop901');
    assert.ok((await exists(`${kept}.part`)) && (await exists(`${kept}.map`)), 'kept while the setting is on');
    await kit.save('storage', { storage__keep_partial_on_cancel: false });
    const discarded = await removePausedJob('discarded', 'loop902');
    assert.ok(!(await exists(`${discarded}.part`)) && !(await exists(`${discarded}.map`)), 'removed while it is off');
  },

  async storage__log_retention_days(kit) {
    await kit.save('storage', { storage__log_retention_days: '7' });
    const status = await kit.api<{ housekeeping: { retention_days: { logs: number } } }>('GET', '/api/v1/system/status');
    assert.equal(status.body.housekeeping.retention_days.logs, 7, 'the housekeeping of the service keeps logs for the new number of days');
  },

  async storage__warn_threshold_percent(kit) {
    await kit.save('storage', { storage__warn_threshold_percent: '1' });
    const status = await kit.api<{ status: string; warnings: string[] }>('GET', '/api/v1/system/status');
    assert.ok(
      status.body.warnings.some((warning) => warning.includes('warning at 1%')),
      JSON.stringify(status.body.warnings),
    );
    assert.equal(status.body.status, 'degraded');
  },

  async storage__stop_threshold_percent(kit) {
    // The warning threshold must stay below the stop threshold, so it goes down with it.
    await kit.save('storage', { storage__warn_threshold_percent: '1', storage__stop_threshold_percent: '2' });
    const job = await kit.job('loop');
    assert.equal(job.status, 'paused');
    assert.equal(job.pause_reason, 'disk_full');
    assert.equal((await kit.api('DELETE', `/api/v1/jobs/${job.id}`)).status, 204);
  },

  async imaging__read_attempts(kit) {
    await kit.save('imaging', { imaging__read_attempts: '7' });
    assert.equal((await kit.job('loop')).options.read_attempts, 7);
  },

  async imaging__sector_size(kit) {
    const changedAt = new Date().toISOString();
    await kit.save('imaging', { imaging__sector_size: '512' });
    // A drive's disc is probed again every few seconds while someone looks; the next probe reads with the new size.
    await waitFor('the next probe of the drives', async () => {
      const devices = (await kit.api<{ devices: Array<{ path: string; media_checked_at: string | null }> }>('GET', '/api/v1/devices')).body.devices;
      return devices.every((device) => device.media_checked_at !== null && device.media_checked_at > changedAt);
    });
    const job = await kit.job('file');
    assert.equal(job.options.disc?.sector_size, 512, 'a file without a file system tells no sector size: the setting is taken');
  },

  async imaging__verify(kit) {
    await kit.save('imaging', { imaging__verify: false });
    const job = await kit.job('loop');
    assert.equal(job.status, 'completed');
    const record = await kit.imageRecord(job);
    assert.equal(record.options.verify, false);
    assert.equal(record.verification, null, 'the image was not read again');
  },

  async imaging__checksums(kit) {
    await kit.save('imaging', { imaging__checksums: ['sha1'] });
    const record = await kit.imageRecord(await kit.job('loop'));
    assert.deepEqual(Object.keys(record.checksums), ['sha1']);
  },

  async imaging__priority(kit) {
    await kit.save('imaging', { imaging__priority: 'high' });
    assert.equal((await kit.job('loop')).priority, 'high');
  },

  async imaging__cluster_sectors(kit) {
    await kit.save('imaging', { imaging__cluster_sectors: '8' });
    assert.equal((await kit.imageRecord(await kit.job('loop'))).options.cluster_sectors, 8, 'the engine read in clusters of 8 sectors');
  },

  async imaging__direct_io(kit) {
    await kit.save('imaging', { imaging__direct_io: 'off' });
    const record = await kit.imageRecord(await kit.job('loop'));
    assert.equal(record.source.direct_io, false, 'a loop device takes O_DIRECT, so only the setting makes the reads buffered');
  },

  async imaging__map_save_interval_seconds(kit) {
    await kit.save('imaging', { imaging__map_save_interval_seconds: '17' });
    assert.equal((await kit.imageRecord(await kit.job('loop'))).options.map_save_interval_ms, 17_000);
  },

  async archive__reverify_interval_days(kit) {
    const schedule = await reverifySchedule(kit, { hour: 12 });
    await kit.save('archive', { archive__reverify_window_start_hour: '0', archive__reverify_window_end_hour: '0' });
    assert.equal(await schedule.check(), null, '0: no scheduled verification');
    await kit.save('archive', { archive__reverify_interval_days: '1' });
    assert.notEqual(await schedule.check(), null, 'an image never verified is due after a day');
  },

  async archive__reverify_window_start_hour(kit) {
    const schedule = await reverifySchedule(kit, { hour: 12 });
    await kit.save('archive', { archive__reverify_interval_days: '1', archive__reverify_window_start_hour: '13', archive__reverify_window_end_hour: '14' });
    assert.equal(await schedule.check(), null, '12:30 is outside 13 to 14');
    await kit.save('archive', { archive__reverify_window_start_hour: '12' });
    assert.notEqual(await schedule.check(), null, '12:30 is inside 12 to 14');
  },

  async archive__reverify_window_end_hour(kit) {
    const schedule = await reverifySchedule(kit, { hour: 12 });
    await kit.save('archive', { archive__reverify_interval_days: '1', archive__reverify_window_start_hour: '10', archive__reverify_window_end_hour: '12' });
    assert.equal(await schedule.check(), null, '12:30 is past a window ending at 12');
    await kit.save('archive', { archive__reverify_window_end_hour: '13' });
    assert.notEqual(await schedule.check(), null, '12:30 is inside 10 to 13');
  },

  async archive__reverify_pause_while_imaging(kit) {
    const schedule = await reverifySchedule(kit, { hour: 12, imaging: true });
    await kit.save('archive', { archive__reverify_interval_days: '1', archive__reverify_window_start_hour: '0', archive__reverify_window_end_hour: '0' });
    assert.equal(await schedule.check(), null, 'held while a disc is imaged');
    await kit.save('archive', { archive__reverify_pause_while_imaging: false });
    assert.notEqual(await schedule.check(), null, 'queued beside imaging once the setting is off');
  },

  async archive__reverify_max_mib_per_second(kit) {
    const schedule = await reverifySchedule(kit, { hour: 12 });
    await kit.save('archive', { archive__reverify_window_start_hour: '0', archive__reverify_window_end_hour: '0', archive__reverify_max_mib_per_second: '0' });
    const throttle = schedule.throttleFor({ origin: 'schedule' } as Parameters<typeof schedule.throttleFor>[0]);
    assert.ok(throttle !== undefined);
    /** Whether reading `bytes` is allowed before the event loop turns once more. */
    const allowedAtOnce = async (bytes: number): Promise<boolean> => {
      const stop = new AbortController();
      let allowed = false;
      const taking = throttle.take(bytes, stop.signal).then(() => {
        allowed = !stop.signal.aborted;
      });
      await new Promise((resolve) => setImmediate(resolve));
      stop.abort();
      await taking;
      return allowed;
    };
    assert.equal(await allowedAtOnce(64 * 1024 * 1024), true, '0: no cap');
    await kit.save('archive', { archive__reverify_max_mib_per_second: '1' });
    assert.equal(await allowedAtOnce(64 * 1024 * 1024), false, '64 MiB wait for the 1 MiB/s cap');
  },

  async archive__recovery_redundancy_percent(kit) {
    await kit.save('archive', { archive__recovery_redundancy_percent: '10' });
    const job = await kit.job('loop');
    assert.equal(job.status, 'completed');
    const recovery = async () =>
      (await kit.api<{ recovery: { redundancy_percent: number } | null }>('GET', `/api/v1/archives/${job.archive_id}`)).body.recovery;
    await waitFor('the recovery data of the new image', async () => (await recovery()) !== null);
    assert.equal((await recovery())?.redundancy_percent, 10);
  },

  async notifications__email_on_completion(kit) {
    await kit.save('notifications', { notifications__email_on_completion: false });
    const silent = await kit.jobEvents(await kit.job('loop'));
    const silentIds = new Set(silent.map((event) => event.eventId));
    assert.deepEqual(
      (await kit.deliveries()).filter((delivery) => delivery.channel === 'email' && silentIds.has(delivery.event_id)),
      [],
      'no e-mail while it is off',
    );
    await kit.save('notifications', { notifications__email_on_completion: true });
    const mailed = await kit.jobEvents(await kit.job('loop'));
    const completed = mailed.find((event) => event.type === 'job.completed');
    assert.ok((await kit.deliveries()).some((delivery) => delivery.channel === 'email' && delivery.event_id === completed?.eventId));
  },

  async notifications__email_address(kit) {
    await kit.save('notifications', { notifications__email_address: 'walk@example.org' });
    const { mail } = await kit.testMail();
    assert.deepEqual(mail?.to, ['walk@example.org']);
  },

  async notifications__email_events(kit) {
    await kit.save('notifications', { notifications__email_events: ['job.started'] });
    const events = await kit.jobEvents(await kit.job('loop'));
    const byId = new Map(events.map((event) => [event.eventId, event.type]));
    const mailed = (await kit.deliveries()).filter((delivery) => delivery.channel === 'email' && byId.has(delivery.event_id));
    assert.deepEqual(
      mailed.map((delivery) => delivery.event_type),
      ['job.started'],
    );
    assert.ok(
      events.some((event) => event.type === 'job.completed'),
      'the job raised other events too',
    );
  },

  async notifications__email_language(kit) {
    await kit.save('notifications', { notifications__email_language: 'de' });
    const { mail } = await kit.testMail();
    assert.match(mail?.raw ?? '', /^Subject: disk2iso: Test-E-Mail\r$/m);
  },

  async notifications__email_from(kit) {
    const before = await kit.testMail();
    assert.equal(before.mail?.from, 'disk2iso@127.0.0.1', 'empty: disk2iso@ the SMTP host');
    await kit.save('notifications', { notifications__email_from: 'sender@example.org' });
    const { mail } = await kit.testMail();
    assert.equal(mail?.from, 'sender@example.org');
  },

  async notifications__smtp_host(kit) {
    // 127.0.0.2 is this host as well, but the mail server listens on 127.0.0.1 only.
    await kit.save('notifications', { notifications__smtp_host: '127.0.0.2' });
    const { delivery, mail } = await kit.testMail();
    assert.equal(mail, null);
    assert.match(delivery.last_error ?? '', /ECONNREFUSED|127\.0\.0\.2/);
  },

  async notifications__smtp_port(kit) {
    await kit.save('notifications', { notifications__smtp_port: String(kit.otherMail.port) });
    const { mail } = await kit.testMail(kit.otherMail);
    assert.ok(mail !== null, 'the mail reached the server on the new port');
  },

  async notifications__smtp_security(kit) {
    await kit.save('notifications', { notifications__smtp_security: 'starttls' });
    const { delivery, mail } = await kit.testMail();
    assert.equal(mail, null, 'a server without STARTTLS is refused');
    assert.match(delivery.last_error ?? '', /STARTTLS/i);
  },

  async notifications__smtp_user(kit) {
    const before = await kit.testMail();
    assert.equal(before.mail?.user, null);
    await kit.save('notifications', { notifications__smtp_user: SMTP_USER, notifications__smtp_password: SMTP_PASSWORD });
    const { mail } = await kit.testMail();
    assert.equal(mail?.user, SMTP_USER, 'signed in');
  },

  async notifications__smtp_password(kit) {
    await kit.save('notifications', { notifications__smtp_user: SMTP_USER, notifications__smtp_password: 'not-the-password' });
    const refused = await kit.testMail();
    assert.equal(refused.mail, null);
    assert.match(refused.delivery.last_error ?? '', /535|auth/i);
    await kit.save('notifications', { notifications__smtp_password: SMTP_PASSWORD });
    assert.equal((await kit.testMail()).mail?.user, SMTP_USER);
  },

  async notifications__link_base_url(kit) {
    await kit.save('notifications', { notifications__link_base_url: 'https://walk.example.org/' });
    const job = await kit.job('loop');
    const completed = (await kit.jobEvents(job)).find((event) => event.type === 'job.completed');
    const delivery = (await kit.deliveries()).find((entry) => entry.channel === 'email' && entry.event_id === completed?.eventId);
    assert.ok(delivery !== undefined);
    await waitFor('the e-mail', () => kit.mail.mails.some((mail) => mail.id === delivery.id));
    const mail = kit.mail.mails.find((entry) => entry.id === delivery.id);
    assert.ok(mail?.raw.includes(`https://walk.example.org/jobs/${job.id}`), mail?.raw);
  },

  async notifications__browser(kit) {
    const marker = async (): Promise<string | undefined> =>
      /data-live="dashboard"[^>]*data-notify-browser="(on|off)"/.exec((await kit.server.send('GET', '/')).body)?.[1];
    assert.equal(await marker(), 'on');
    await kit.save('notifications', { notifications__browser: false });
    assert.equal(await marker(), 'off');
  },

  async mqtt__enabled(kit) {
    const watcher = await observe(kit.broker.url, { username: MQTT_USER, password: MQTT_PASSWORD }, ['disk2iso/status']);
    try {
      await kit.save('mqtt', { ...mqttOn(kit) });
      await waitFor('online at the broker', () => watcher.on('disk2iso/status').at(-1)?.payload === 'online');
      await kit.save('mqtt', { mqtt__enabled: false });
      await waitFor('offline at the broker', () => watcher.on('disk2iso/status').at(-1)?.payload === 'offline');
      assert.equal((await mqttStatus(kit)).state, 'disabled');
    } finally {
      await watcher.close();
    }
  },

  async mqtt__broker_url(kit) {
    await kit.save('mqtt', { ...mqttOn(kit), mqtt__broker_url: `mqtt://127.0.0.1:${await closedPort()}` });
    await waitForMqtt(kit, 'error');
    await kit.save('mqtt', { mqtt__broker_url: kit.broker.url });
    await waitForMqtt(kit, 'connected');
  },

  async mqtt__username(kit) {
    await kit.save('mqtt', { ...mqttOn(kit), mqtt__username: 'stranger' });
    assert.match((await waitForMqtt(kit, 'error')).error ?? '', /authori[sz]ed/i);
    await kit.save('mqtt', { mqtt__username: MQTT_USER });
    await waitForMqtt(kit, 'connected');
  },

  async mqtt__password(kit) {
    await kit.save('mqtt', { ...mqttOn(kit), mqtt__password: 'not-the-password' });
    assert.match((await waitForMqtt(kit, 'error')).error ?? '', /authori[sz]ed/i);
    await kit.save('mqtt', { mqtt__password: MQTT_PASSWORD });
    await waitForMqtt(kit, 'connected');
  },

  async mqtt__client_id(kit) {
    await kit.save('mqtt', { ...mqttOn(kit), mqtt__client_id: 'walk-client' });
    await waitForMqtt(kit, 'connected');
    await waitFor('the broker to log the client id', () => / as walk-client /.test(kit.broker.output()));
  },

  async mqtt__topic_prefix(kit) {
    const watcher = await observe(kit.broker.url, { username: MQTT_USER, password: MQTT_PASSWORD }, ['walkprefix/status']);
    try {
      await kit.save('mqtt', { ...mqttOn(kit), mqtt__topic_prefix: 'walkprefix' });
      await waitFor('online under the new prefix', () => watcher.on('walkprefix/status').at(-1)?.payload === 'online');
    } finally {
      await watcher.close();
    }
  },

  async mqtt__discovery_prefix(kit) {
    const watcher = await observe(kit.broker.url, { username: MQTT_USER, password: MQTT_PASSWORD }, ['walkha/#']);
    try {
      await kit.save('mqtt', { ...mqttOn(kit), mqtt__discovery_prefix: 'walkha' });
      await waitFor('discovery configs under the new prefix', () =>
        watcher.messages.some((message) => message.topic.startsWith('walkha/') && message.topic.endsWith('/config') && message.payload !== ''),
      );
    } finally {
      await watcher.close();
    }
  },

  async lang(kit) {
    const chosen = await kit.server.send('POST', '/language', { form: { lang: 'de', return_to: '/config' } });
    assert.equal(chosen.status, 303);
    assert.equal(chosen.cookies[LANGUAGE_COOKIE], 'de');
    const page = await kit.server.send('GET', '/config', { cookie: `${LANGUAGE_COOKIE}=${chosen.cookies[LANGUAGE_COOKIE]}` });
    assert.match(page.body, /<html lang="de"/);
  },

  async theme(kit) {
    const chosen = await kit.server.send('POST', '/theme', { form: { theme: 'dark', return_to: '/config' } });
    assert.equal(chosen.status, 303);
    assert.match((await kit.server.send('GET', '/config')).body, /<html lang="[a-z]+" data-theme="dark">/);
    await kit.server.send('POST', '/theme', { form: { theme: 'system', return_to: '/config' } });
    assert.match((await kit.server.send('GET', '/config')).body, /<html lang="[a-z]+">/, 'following the system needs no attribute');
  },

  async return_to(kit) {
    const chosen = await kit.server.send('POST', '/language', { form: { lang: 'en', return_to: '/jobs?state=done' } });
    assert.equal(chosen.location, '/jobs?state=done', 'back where the language was chosen');
  },

  async webhook_name(kit) {
    const added = await kit.server.send('POST', '/config/webhooks', {
      form: { webhook_name: 'walk <name>', webhook_url: `http://127.0.0.1:${kit.receiver.port}/named`, webhook_events: ['job.failed'] },
    });
    assert.equal(added.status, 201, added.body.slice(0, 300));
    const page = (await kit.server.send('GET', '/config')).body;
    assert.ok(/<td[^>]*>walk &lt;name&gt;<\/td>/.test(page), 'listed under its name');
  },

  async webhook_url(kit) {
    const added = await kit.server.send('POST', '/config/webhooks', {
      form: { webhook_name: 'walk url', webhook_url: `http://127.0.0.1:${kit.receiver.port}/walk-url`, webhook_events: ['job.failed'] },
    });
    assert.equal(added.status, 201, added.body.slice(0, 300));
    const id = /<td[^>]*>walk url<\/td>[\s\S]*?action="\/config\/webhooks\/(whk_[a-z0-9]+)\/test"/.exec((await kit.server.send('GET', '/config')).body)?.[1];
    assert.equal((await kit.server.send('POST', `/config/webhooks/${id}/test`, { form: {} })).status, 303);
    await waitFor('the test webhook', () => kit.receiver.received.some((request) => request.url === '/walk-url'));
  },

  async webhook_events(kit) {
    const added = await kit.server.send('POST', '/config/webhooks', {
      form: { webhook_name: 'walk events', webhook_url: `http://127.0.0.1:${kit.receiver.port}/walk-events`, webhook_events: ['job.started'] },
    });
    assert.equal(added.status, 201, added.body.slice(0, 300));
    const job = await kit.job('loop');
    const events = await kit.jobEvents(job);
    const ids = new Set(events.map((event) => event.eventId));
    const got = kit.receiver.received
      .filter((request) => request.url === '/walk-events')
      .map((request) => JSON.parse(request.body) as { type: string; data: { event_id: string } })
      .filter((body) => ids.has(body.data.event_id));
    assert.deepEqual(
      got.map((body) => body.type),
      ['job.started'],
    );
  },
};

describe('every setting on the configuration page has an effect', () => {
  let work: string;
  let disc: TestDisc;
  let server: WebTestServer;
  let apiKey: string;
  let mail: MailServer;
  let otherMail: MailServer;
  let receiver: WebhookReceiver;
  let broker: Mosquitto;
  let kit: ProbeKit;
  const ejected: string[] = [];
  let devRoot: string;
  /** An image file without a file system: nothing in it tells a sector size. */
  let rawFile: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-walk-'));
    disc = await insertTestDisc({ dir: work, label: 'WALK', dataMiB: 2 });
    rawFile = join(work, 'raw.img');
    await writeFile(rawFile, randomBytes(1024 * 1024));
    devRoot = join(work, 'dev');
    await mkdir(devRoot);
    await copyFile(disc.iso.path, join(devRoot, 'sr0'));
    [mail, otherMail, receiver, broker] = await Promise.all([
      startMailServer(),
      startMailServer(),
      startReceiver(),
      startMosquitto({ [MQTT_USER]: MQTT_PASSWORD }),
    ]);
    server = await startWebTestServer({
      listen: false,
      devices: [disc.loop.path, rawFile],
      // Every field of the page changeable: the harness fixes the map save interval by the environment.
      env: { DISK2ISO_IMAGING_MAP_SAVE_INTERVAL_SECONDS: '', DISK2ISO_DRIVES_SCAN_OPTICAL: 'true', DISK2ISO_NOTIFICATIONS_ALLOW_PRIVATE_DESTINATIONS: 'true' },
      // Quick first attempts; a failed one waits long enough not to be retried during the walk.
      notifications: { pollMs: 50, retryBaseMs: 600_000, retryMaxMs: 600_000 },
      drives: {
        sysfsRoot: SYSFS_FIXTURE,
        procCdromInfo: CDROM_INFO_FIXTURE,
        devRoot,
        udev: mockUdevLayer({ [join(devRoot, 'sr0')]: 'sr0-dvd-data' }),
        ejector: async (path) => {
          ejected.push(path);
        },
      },
    });
    ({ key: apiKey } = await server.auth.apiKeys.create({ user: 'admin-user', name: 'walk' }, localActor('test')));

    const api = async <T>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }> => {
      const response = await server.app.inject({
        method: method as 'GET',
        url,
        headers: { 'x-api-key': apiKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      });
      return { status: response.statusCode, body: (response.body === '' ? null : response.json()) as T };
    };

    const save: ProbeKit['save'] = (section, changes) => saveConfigForm(server, section, changes);

    const deviceIds = async (): Promise<Record<'loop' | 'file' | 'optical', string>> => {
      const devices = (await api<{ devices: Array<{ id: string; path: string }> }>('GET', '/api/v1/devices')).body.devices;
      const id = (match: (path: string) => boolean): string => {
        const found = devices.find((device) => match(device.path));
        assert.ok(found !== undefined, JSON.stringify(devices));
        return found.id;
      };
      return { loop: id((path) => path === disc.loop.path), file: id((path) => path === rawFile), optical: id((path) => path === join(devRoot, 'sr0')) };
    };

    const deliveries = async (): Promise<Delivery[]> =>
      (await api<{ deliveries: Delivery[] }>('GET', '/api/v1/notifications/deliveries?limit=500')).body.deliveries;

    const job: ProbeKit['job'] = async (device) => {
      const created = await api<ApiJob>('POST', '/api/v1/jobs', { device: (await deviceIds())[device] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      let current = created.body;
      await waitFor(`job ${current.id} to stop`, async () => {
        current = (await api<ApiJob>('GET', `/api/v1/jobs/${created.body.id}`)).body;
        return TERMINAL.has(current.status);
      });
      return current;
    };

    const witnessed = (jobId: string) =>
      receiver.received
        .filter((request) => request.url === '/witness')
        .map((request) => JSON.parse(request.body) as { type: string; data: { event_id: string; job?: { id?: string } } })
        .filter((body) => body.data.job?.id === jobId);

    kit = {
      server,
      save,
      api,
      job,
      async imageRecord(done) {
        assert.equal(done.status, 'completed');
        return JSON.parse(await readFile(`${done.output_file}.json`, 'utf8')) as ImageRecord;
      },
      async testMail(at = mail) {
        const known = new Set((await deliveries()).map((delivery) => delivery.id));
        assert.equal((await server.send('POST', '/config/email/test', { form: {} })).status, 303);
        let delivery: Delivery | undefined;
        await waitFor('the test e-mail to be tried', async () => {
          delivery = (await deliveries()).find((entry) => !known.has(entry.id) && entry.event_type === 'notification.test');
          return delivery !== undefined && delivery.attempts > 0;
        });
        assert.ok(delivery !== undefined);
        const id = delivery.id;
        return { delivery, mail: delivery.status === 'sent' ? (at.mails.find((entry) => entry.id === id) ?? null) : null };
      },
      async jobEvents(done) {
        await waitFor(`the last event of ${done.id}`, () => witnessed(done.id).some((body) => JOB_END_EVENTS.has(body.type)));
        return witnessed(done.id).map((body) => ({ type: body.type, eventId: body.data.event_id }));
      },
      deliveries,
      mail,
      otherMail,
      receiver,
      ejected,
      broker,
    };

    // The e-mail channel as the probes start from it: on, to the test's mail server, without TLS.
    await save('notifications', {
      notifications__email_on_completion: true,
      notifications__email_address: 'archive@example.org',
      notifications__smtp_host: '127.0.0.1',
      notifications__smtp_port: String(mail.port),
      notifications__smtp_security: 'none',
    });
    // The witness: a webhook for every event, which tells when a job's events were recorded.
    const witness = await api('POST', '/api/v1/notifications/webhooks', {
      name: 'witness',
      url: `http://127.0.0.1:${receiver.port}/witness`,
      events: ['job.queued', 'job.started', 'job.paused', 'job.completed', 'job.completed_with_errors', 'job.failed', 'job.cancelled'],
      enabled: true,
    });
    assert.equal(witness.status, 201, JSON.stringify(witness.body));
  });

  after(async () => {
    await server?.close();
    await Promise.all([mail?.close(), otherMail?.close(), receiver?.close(), broker?.stop()]);
    await disc?.release();
    await rm(work, { recursive: true, force: true });
  });

  it('has a probe for every field of the page, and no probe for a field that is gone', async () => {
    const fields = pageForms((await server.send('GET', '/config')).body).flatMap((form) => form.names);
    assert.ok(fields.length > 20, `the page offers ${fields.length} fields`);
    assert.deepEqual(
      fields.filter((name) => !(name in PROBES) && !EMBEDDED_ONLY_FIELDS.includes(name)),
      [],
      'fields without a probe (those of the embedded database alone are walked in backup-settings.test.ts)',
    );
    assert.deepEqual(
      Object.keys(PROBES).filter((name) => !fields.includes(name)),
      [],
      'probes of fields the page does not offer',
    );
  });

  for (const [name, probe] of Object.entries(PROBES)) {
    it(`${name} has the effect its help text promises`, async () => {
      const page = pageForms((await server.send('GET', '/config')).body);
      const section = page.find((form) => form.names.includes(name));
      assert.ok(section !== undefined, `${name} is not on the page`);
      const before = page.filter((form) => /^\/config\/[a-z]+$/.test(form.action) && form.action !== '/config/webhooks');
      try {
        await probe(kit);
      } finally {
        // What the probe changed goes back through the page, so the next probe starts from the same settings.
        for (const form of before) {
          const restored = await server.send('POST', form.action, { form: Object.fromEntries(form.values) });
          assert.equal(restored.status, 303, restored.body.slice(0, 300));
        }
      }
    });
  }
});
