import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { TEST_ADMIN, type TestServer, anonymousApi, api, startTestServer, verifyArchive, waitFor } from '../http/support.js';
import { holdWriteLock } from '../support/database.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type RunningPrometheus, promtoolCheck, startPrometheus } from '../tools/prometheus.js';

/** The value of one sample line (`name{labels} value`) of an exposition; undefined when absent. */
function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The Prometheus scraper as a client: a proxy in front (trusted) forwards the scraper's address. */
const ALLOWED_SCRAPER = '192.0.2.7';

describe('GET /metrics and readiness of a real service, scraped by a real Prometheus', () => {
  let work: string;
  let iso: MadeIso;
  let service: TestServer;
  let drive: string;
  let metricsKey: string;
  let jobsKey: string;
  let prometheus: RunningPrometheus | undefined;

  const scrape = async (headers: Record<string, string> = { 'x-api-key': metricsKey }) => {
    const response = await fetch(`${service.url}/metrics`, { headers });
    return { status: response.status, contentType: response.headers.get('content-type') ?? '', text: await response.text() };
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-metrics-'));
    iso = await makeIso({ dir: work, label: 'METRICS_DISC', dataMiB: 4, files: 2, seed: 3 });
    service = await startTestServer({
      devices: [iso.path],
      // The test talks to the service from 127.0.0.1, which stands for a reverse proxy here: what it
      // forwards is the client address the allow list is checked against.
      env: { DISK2ISO_SECURITY_TRUSTED_PROXIES: '127.0.0.1', DISK2ISO_METRICS_ALLOW_ADDRESSES: '192.0.2.0/28' },
    });
    drive = (await api(service.url, 'GET', '/api/v1/devices')).body.devices[0].id;
    const test = localActor('test');
    const { apiKeys } = service.server.auth;
    metricsKey = (await apiKeys.create({ user: TEST_ADMIN, name: 'prometheus', scopes: ['metrics:read'] }, test)).key;
    jobsKey = (await apiKeys.create({ user: TEST_ADMIN, name: 'jobs only', scopes: ['jobs:read'] }, test)).key;
  });

  after(async () => {
    try {
      await prometheus?.stop();
      await service?.close();
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('lets in a key with metrics:read (as X-API-Key or bearer), refuses others with 403 and no credentials with 401', async () => {
    const declared = service.server.routeTable.filter((route) => route.url === '/metrics').map((route) => [route.method, route.permission]);
    assert.deepEqual(declared, [
      ['GET', 'metrics:read'],
      ['HEAD', 'metrics:read'],
    ]);
    const byHeader = await scrape();
    assert.equal(byHeader.status, 200, byHeader.text);
    assert.match(byHeader.contentType, /^text\/plain; version=0\.0\.4/);
    assert.equal((await scrape({ authorization: `Bearer ${metricsKey}` })).status, 200, 'a key sent as a bearer token');
    assert.equal((await scrape({ 'x-api-key': service.apiKey })).status, 200, 'an admin key without scopes holds metrics:read');
    const wrongScope = await scrape({ 'x-api-key': jobsKey });
    assert.equal(wrongScope.status, 403);
    assert.equal(JSON.parse(wrongScope.text).error.code, 'permission_denied');
    const anonymous = await scrape({});
    assert.equal(anonymous.status, 401);
    assert.equal(JSON.parse(anonymous.text).error.code, 'unauthenticated');
  });

  it('lets an allowed address scrape without credentials, through the trusted proxy only', async () => {
    const allowed = await scrape({ 'x-forwarded-for': ALLOWED_SCRAPER });
    assert.equal(allowed.status, 200, allowed.text);
    assert.equal((await scrape({ 'x-forwarded-for': '192.0.2.200' })).status, 401, 'an address outside the range');
    assert.equal((await scrape({ 'x-forwarded-for': '::ffff:192.0.2.7' })).status, 200, 'the IPv4-mapped form of an allowed address');
    // Credentials are checked as always, from an allowed address too.
    assert.equal((await scrape({ 'x-forwarded-for': ALLOWED_SCRAPER, 'x-api-key': 'd2i_wrong' })).status, 401);
    assert.equal((await scrape({ 'x-forwarded-for': ALLOWED_SCRAPER, 'x-api-key': jobsKey })).status, 403);
    // A peer that is no trusted proxy names any address it likes in X-Forwarded-For: it is not believed.
    const spoofed = await service.server.app.inject({
      method: 'GET',
      url: '/metrics',
      remoteAddress: '203.0.113.9',
      headers: { 'x-forwarded-for': ALLOWED_SCRAPER },
    });
    assert.equal(spoofed.statusCode, 401);
    const direct = await service.server.app.inject({ method: 'GET', url: '/metrics', remoteAddress: ALLOWED_SCRAPER });
    assert.equal(direct.statusCode, 200, 'the allowed address itself, without a proxy');
  });

  it('is what promtool check metrics calls clean', async () => {
    const { text } = await scrape();
    const lint = await promtoolCheck(text);
    assert.deepEqual(lint, { code: 0, problems: '' });
    for (const name of [
      'disk2iso_jobs',
      'disk2iso_queue_length',
      'disk2iso_imaged_bytes_total',
      'disk2iso_drive_read_rate_bytes_per_second',
      'disk2iso_unreadable_bytes_found_total',
      'disk2iso_verifications_total',
      'disk2iso_verification_failures_total',
      'disk2iso_drive_media_state',
      'disk2iso_output_filesystem_free_bytes',
      'disk2iso_output_filesystem_stop_threshold_ratio',
      'disk2iso_http_request_duration_seconds',
      'process_cpu_seconds_total',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exposed`);
    }
  });

  it('counts a job that ran: Prometheus scrapes the service and its query returns the job counts', async () => {
    prometheus = await startPrometheus({ address: new URL(service.url).host, bearerKey: metricsKey });
    const running = prometheus;
    await waitFor('the first scrape', async () => (await running.query('up{job="disk2iso"}')).some((found) => found.value === 1));
    assert.deepEqual(
      (await running.query('disk2iso_jobs{status="completed"}')).map((found) => found.value),
      [0],
    );

    const created = await api(service.url, 'POST', '/api/v1/jobs', { device: drive, name: 'METRICS_RUN' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const jobId: string = created.body.id;
    await waitFor('the job to complete', async () => (await api(service.url, 'GET', `/api/v1/jobs/${jobId}`)).body.status === 'completed');

    await waitFor('Prometheus to see the completed job', async () =>
      (await running.query('disk2iso_jobs{status="completed"}')).some((found) => found.value === 1),
    );
    const finished = await running.query('disk2iso_jobs_finished_total{status="completed"}');
    assert.deepEqual(
      finished.map((found) => found.value),
      [1],
    );
    const targets = await running.targets();
    assert.deepEqual(
      targets.map((target) => [target.health, target.lastError]),
      [['up', '']],
    );

    const { text } = await scrape();
    assert.equal(sample(text, `disk2iso_imaged_bytes_total{drive="${drive}"}`), iso.sizeBytes, 'every byte of the disc read once');
    assert.equal(sample(text, `disk2iso_unreadable_bytes_found_total{drive="${drive}"}`), 0);
    assert.equal(sample(text, 'disk2iso_verifications_total{trigger="after_imaging"}'), 1);
    assert.equal(sample(text, 'disk2iso_verification_failures_total{trigger="after_imaging"}'), 0);
    assert.equal(sample(text, `disk2iso_drive_busy{drive="${drive}"}`), 0);
    assert.equal(sample(text, `disk2iso_drive_read_rate_bytes_per_second{drive="${drive}"}`), 0);
    assert.equal(sample(text, 'disk2iso_queue_length'), 0);

    const job = await api(service.url, 'GET', `/api/v1/jobs/${jobId}`);
    // Verification runs in the background: counted once its task ends (by the worker's transaction).
    const verified = await verifyArchive(service.url, job.body.archive_id);
    assert.equal(verified.status, 'completed', JSON.stringify(verified));
    const after = (await scrape()).text;
    assert.equal(sample(after, 'disk2iso_verifications_total{trigger="requested"}'), 1);
    assert.equal(sample(after, 'disk2iso_verification_failures_total{trigger="requested"}'), 0);
    // Requests are labelled by their route's pattern: the job's id appears nowhere.
    assert.ok(
      (sample(after, 'disk2iso_http_request_duration_seconds_count{method="GET",route="/api/v1/jobs/:job_id",code="200"}') ?? 0) >= 2,
      'GET /api/v1/jobs/:job_id counted under its pattern',
    );
    assert.ok(!after.includes(jobId), 'no raw URL in the labels');
    assert.ok((sample(after, 'disk2iso_http_request_duration_seconds_count{method="GET",route="/metrics",code="401"}') ?? 0) >= 1);
  });

  it('answers readiness: ready with codes only for anyone, details for system:read', async () => {
    const anonymous = await anonymousApi(service.url, 'GET', '/api/v1/health/ready');
    assert.equal(anonymous.status, 200, JSON.stringify(anonymous.body));
    assert.deepEqual(anonymous.body, {
      status: 'ready',
      checks: { database: { ok: true, code: null }, output_dir: { ok: true, code: null }, job_runner: { ok: true, code: null } },
    });
    const detailed = await api(service.url, 'GET', '/api/v1/health/ready');
    assert.equal(detailed.status, 200);
    assert.equal(detailed.body.checks.database.message, 'writable');
    assert.match(detailed.body.checks.output_dir.message, /^writable, \d+\.\d% full \(imaging stops above 95%\)$/);
    assert.equal(detailed.body.checks.job_runner.message, 'looking for work');
  });

  it('is not ready while the output file system is above the stop threshold', async () => {
    // The warning threshold stays below the stop threshold (a rule of the settings): both go down together.
    assert.equal((await api(service.url, 'PATCH', '/api/v1/system/config', { storage: { warn_threshold_percent: 1, stop_threshold_percent: 2 } })).status, 200);
    try {
      const answer = await anonymousApi(service.url, 'GET', '/api/v1/health/ready');
      assert.equal(answer.status, 503);
      assert.equal(answer.body.status, 'not_ready');
      assert.deepEqual(answer.body.checks.output_dir, { ok: false, code: 'storage_threshold' });
      assert.deepEqual(answer.body.checks.database, { ok: true, code: null });
      const { text } = await scrape();
      assert.equal(sample(text, 'disk2iso_output_filesystem_stop_threshold_ratio'), 0.02);
    } finally {
      assert.equal(
        (await api(service.url, 'PATCH', '/api/v1/system/config', { storage: { warn_threshold_percent: 90, stop_threshold_percent: 95 } })).status,
        200,
      );
    }
  });

  it('checks an output directory not made yet where it would be made, without making it', async () => {
    assert.equal((await api(service.url, 'PATCH', '/api/v1/system/config', { storage: { output_dir: 'later/images' } })).status, 200);
    try {
      const answer = await anonymousApi(service.url, 'GET', '/api/v1/health/ready');
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      await assert.rejects(stat(join(service.dataDir, 'later')), { code: 'ENOENT' });
    } finally {
      assert.equal((await api(service.url, 'PATCH', '/api/v1/system/config', { storage: { output_dir: '' } })).status, 200);
    }
  });

  it('is not ready while the output directory cannot be written', async () => {
    await writeFile(join(service.dataDir, 'blocked'), 'a file where the output folder would be made');
    assert.equal((await api(service.url, 'PATCH', '/api/v1/system/config', { storage: { output_dir: 'blocked/images' } })).status, 200);
    try {
      const answer = await api(service.url, 'GET', '/api/v1/health/ready');
      assert.equal(answer.status, 503);
      assert.equal(answer.body.checks.output_dir.ok, false);
      assert.equal(answer.body.checks.output_dir.code, 'output_unwritable');
      assert.match(answer.body.checks.output_dir.message, /ENOTDIR/);
    } finally {
      assert.equal((await api(service.url, 'PATCH', '/api/v1/system/config', { storage: { output_dir: '' } })).status, 200);
    }
    assert.equal((await anonymousApi(service.url, 'GET', '/api/v1/health/ready')).status, 200);
  });

  it('is not ready while another process holds the database locked beyond the busy timeout', async () => {
    const release = await holdWriteLock(service.dataDir);
    try {
      // Anonymous: a key's request would itself wait on the lock to note the key's use.
      const answer = await anonymousApi(service.url, 'GET', '/api/v1/health/ready');
      assert.equal(answer.status, 503);
      assert.equal(answer.body.status, 'not_ready');
      assert.deepEqual(answer.body.checks.database, { ok: false, code: 'database_unavailable' });
      assert.deepEqual(answer.body.checks.job_runner, { ok: true, code: null });
      // The output check is not asserted: the service's event loop waits on the lock (every write
      // of the service does), and the output check's 5 s may run out meanwhile.
    } finally {
      await release();
    }
    assert.equal((await anonymousApi(service.url, 'GET', '/api/v1/health/ready')).status, 200);
  });
});
