import { monitorEventLoopDelay } from 'node:perf_hooks';
import { localActor } from '../src/auth/principal.js';
import { loadConfig } from '../src/config/load.js';
import { NOTIFICATION_EVENT_TYPES } from '../src/config/schema.js';
import { databaseFile, openDatabase } from '../src/db/database.js';
import { readChangeCounter } from '../src/db/table-versions.js';
import { silentLogger } from '../src/log.js';
import { startServer } from '../src/server.js';

/**
 * Child process of the notifications benchmark: the real service (startServer, as `disk2iso serve`
 * runs it) images one source through POST /api/v1/jobs, and reports the event loop's delay over
 * the job, its times, and the outbox afterwards. With `channels`, every event is sent by e-mail to
 * the SMTP server at SMTP_PORT and to a webhook at WEBHOOK_PORT, both on 127.0.0.1.
 */
const [dataDir, device, mode, webhookPort = '0', smtpPort = '0'] = process.argv.slice(2);
if (!dataDir || !device || (mode !== 'none' && mode !== 'channels')) {
  console.error('usage: service-run DATA_DIR DEVICE none|channels [WEBHOOK_PORT SMTP_PORT]');
  process.exit(2);
}
const channels = mode === 'channels';

/** The histogram's timer interval; every value it records includes it (an idle loop reads this much). */
const LOOP_SAMPLE_MS = 5;
const EVENTS = NOTIFICATION_EVENT_TYPES.join(',');

const config = loadConfig({
  env: {
    DISK2ISO_DATA_DIR: dataDir,
    DISK2ISO_EXTRA_DEVICES: device,
    DISK2ISO_DRIVES_DEMO: 'off',
    DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
    ...(channels
      ? {
          DISK2ISO_NOTIFICATIONS_ALLOW_PRIVATE_DESTINATIONS: 'true',
          DISK2ISO_NOTIFICATIONS_EMAIL_ON_COMPLETION: 'true',
          DISK2ISO_NOTIFICATIONS_EMAIL_ADDRESS: 'bench@example.org',
          DISK2ISO_NOTIFICATIONS_EMAIL_EVENTS: EVENTS,
          DISK2ISO_NOTIFICATIONS_SMTP_HOST: '127.0.0.1',
          DISK2ISO_NOTIFICATIONS_SMTP_PORT: smtpPort,
          DISK2ISO_NOTIFICATIONS_SMTP_SECURITY: 'none',
        }
      : {}),
  },
});
const server = await startServer({ config, log: silentLogger(), version: 'bench', listen: false });
const actor = localActor('bench');
await server.auth.users.add({ name: 'bench-admin', role: 'admin', password: 'Bench-Password-42' }, actor);
const { key } = await server.auth.apiKeys.create({ user: 'bench-admin', name: 'bench' }, actor);

async function api<T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
  const response = await server.app.inject({
    method,
    url,
    headers: { 'x-api-key': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  if (response.statusCode >= 300) throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`);
  return response.json() as T;
}

if (channels) {
  await api('POST', '/api/v1/notifications/webhooks', {
    name: 'never answers',
    url: `http://127.0.0.1:${webhookPort}/hook`,
    events: NOTIFICATION_EVENT_TYPES.filter((type) => type !== 'service.started'),
    enabled: true,
  });
}

interface Job {
  id: string;
  status: string;
  size_bytes: number;
  started_at: string | null;
  finished_at: string | null;
}

const { devices } = await api<{ devices: Array<{ id: string; path: string }> }>('GET', '/api/v1/devices');
const deviceId = devices.find((candidate) => candidate.path === device)?.id;
if (deviceId === undefined) throw new Error(`${device} is not offered as a drive: ${JSON.stringify(devices)}`);

// Every write to the jobs table (each progress update is one) raises this counter; the outbox must not grow with it.
const database = await openDatabase({ file: databaseFile(dataDir) });
const jobWritesBefore = await readChangeCounter(database.kysely, 'jobs');

const delay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
delay.enable();
const started = performance.now();
const created = await api<Job>('POST', '/api/v1/jobs', { device: deviceId });
let job = created;
while (job.status !== 'completed' && job.status !== 'failed' && job.status !== 'paused' && job.status !== 'cancelled') {
  await new Promise((resolve) => setTimeout(resolve, 100));
  job = await api<Job>('GET', `/api/v1/jobs/${created.id}`);
}
const jobWrites = (await readChangeCounter(database.kysely, 'jobs')) - jobWritesBefore;
const wallSeconds = (performance.now() - started) / 1000;
delay.disable();
if (job.status !== 'completed') throw new Error(`the job ended ${job.status}`);

const deliveries = (
  await api<{ deliveries: Array<{ status: string; attempts: number; channel: string; last_error: string | null }> }>(
    'GET',
    '/api/v1/notifications/deliveries?limit=500',
  )
).deliveries;
const events = await database.kysely
  .selectFrom('notification_events')
  .select(({ fn }) => fn.countAll<number>().as('count'))
  .executeTakeFirstOrThrow();
await database.close();
await server.close('benchmark done');

const jobSeconds = job.started_at && job.finished_at ? (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000 : NaN;
process.stdout.write(
  JSON.stringify({
    loopSampleMs: LOOP_SAMPLE_MS,
    loopHistogramP99Ms: delay.percentile(99) / 1e6,
    loopHistogramMaxMs: delay.max / 1e6,
    wallSeconds,
    jobSeconds,
    sizeBytes: job.size_bytes,
    jobWrites,
    outboxEvents: Number(events.count),
    deliveries: deliveries.map((entry) => ({ status: entry.status, attempts: entry.attempts, channel: entry.channel, error: entry.last_error })),
  }),
);
