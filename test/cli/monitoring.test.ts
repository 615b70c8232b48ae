import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { packageRoot } from '../../src/config/load.js';
import { TEST_ADMIN, type TestServer, startTestServer, testEnv, waitFor } from '../http/support.js';
import { attachTestDatabase, detachTestDatabase } from '../support/database.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { promtoolCheck } from '../tools/prometheus.js';
import { type CliResult, runCli } from './run-cli.js';

const BIN = join(packageRoot(), 'bin', 'disk2iso');

/** A line of the specification run as written, by a shell (the CLI itself starts no shell). */
function runShell(line: string, env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', line], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('disk2iso metrics and disk2iso health, with the service on its unix socket and without it', () => {
  let work: string;
  let iso: MadeIso;
  let dataDir: string;
  let socket: string;
  let service: TestServer;
  let env: Record<string, string>;
  let metricsKeyFile: string;
  let adminKeyFile: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-monitoring-'));
    iso = await makeIso({ dir: work, label: 'MONITOR_DISC', dataMiB: 2, files: 1, seed: 9 });
    dataDir = join(work, 'data');
    await attachTestDatabase(dataDir);
    socket = join(work, 'disk2iso.sock');
    service = await startTestServer({ devices: [iso.path], dataDir, env: { DISK2ISO_SERVER_SOCKET: socket } });
    env = testEnv(dataDir, [iso.path], { DISK2ISO_SERVER_SOCKET: socket });
    const { apiKeys } = service.server.auth;
    metricsKeyFile = join(work, 'metrics.key');
    await writeFile(metricsKeyFile, `${(await apiKeys.create({ user: TEST_ADMIN, name: 'cron', scopes: ['metrics:read'] }, localActor('test'))).key}\n`);
    adminKeyFile = join(work, 'admin.key');
    await writeFile(adminKeyFile, service.apiKey);

    // A job run to the end, through the app itself (the service listens on its socket only).
    const { app } = service.server;
    const drive = (await app.inject({ method: 'GET', url: '/api/v1/devices', headers: service.authHeaders })).json().devices[0].id;
    const created = await app.inject({ method: 'POST', url: '/api/v1/jobs', headers: service.authHeaders, payload: { device: drive, name: 'MONITORED' } });
    assert.equal(created.statusCode, 201, created.body);
    const url = `/api/v1/jobs/${created.json().id}`;
    await waitFor('the job to complete', async () => (await app.inject({ method: 'GET', url, headers: service.authHeaders })).json().status === 'completed');
  });

  after(async () => {
    try {
      await service?.close();
    } finally {
      await rm(work, { recursive: true, force: true });
      await detachTestDatabase(dataDir);
    }
  });

  it('health asks the running service on its socket: exit 0, and the specification line prints OK', async () => {
    const health = await runCli(['health'], env);
    assert.equal(health.code, 0, health.stderr);
    assert.equal(health.stderr, `disk2iso: asked the service running at unix:${socket}\n`);
    assert.equal(health.stdout, 'database: ok\noutput_dir: ok\njob_runner: ok\nready\n');
    const line = await runShell(`"${BIN}" health && echo OK || echo FAIL`, env);
    assert.match(line.stdout, /\nOK\n$/);

    const detailed = await runCli(['health', '--api-key-file', adminKeyFile], env);
    assert.equal(detailed.code, 0, detailed.stderr);
    assert.match(
      detailed.stdout,
      /^database: ok - writable\noutput_dir: ok - writable, [\d.]+% full \(imaging stops above 95%\)\njob_runner: ok - looking for work\nready\n$/,
    );
  });

  it("metrics prints the service's own with a key holding metrics:read", async () => {
    const result = await runCli(['metrics', '--format', 'prometheus', '--api-key-file', metricsKeyFile], env);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, `disk2iso: metrics of the service running at unix:${socket}\n`);
    assert.equal(sample(result.stdout, 'disk2iso_jobs{status="completed"}'), 1);
    assert.equal(sample(result.stdout, 'disk2iso_jobs_finished_total{status="completed"}'), 1);
    assert.match(result.stdout, /^process_cpu_seconds_total /m);
    assert.deepEqual(await promtoolCheck(result.stdout), { code: 0, problems: '' });
  });

  it('metrics without a key: the service refuses (the socket carries no client address), so the data directory answers, and stderr says so', async () => {
    const result = await runCli(['metrics', '--format', 'prometheus'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^disk2iso: the service at unix:${socket} answered 401 unauthenticated; computed the metrics from the data directory ${dataDir} instead .*--api-key-file.*metrics\\.allow_addresses`,
      ),
    );
    assert.equal(sample(result.stdout, 'disk2iso_jobs{status="completed"}'), 1);
    // Only what the data directory tells: no counters of the service, and not the CLI's own process.
    assert.equal(sample(result.stdout, 'disk2iso_jobs_finished_total{status="completed"}'), undefined);
    assert.doesNotMatch(result.stdout, /^process_/m);
    assert.deepEqual(await promtoolCheck(result.stdout), { code: 0, problems: '' });
  });

  it('works on the data directory once the service stopped, as the specification lines are written', async () => {
    await service.close();
    const prom = join(work, 'FILE.prom');
    const exported = await runShell(`"${BIN}" metrics --format prometheus > "${prom}"`, env);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(
      exported.stderr,
      new RegExp(`^disk2iso: no service runs at unix:${socket} \\(.*ENOENT.*\\); computed the metrics from the data directory ${dataDir} instead`),
    );
    const text = await readFile(prom, 'utf8');
    assert.equal(sample(text, 'disk2iso_jobs{status="completed"}'), 1);
    assert.equal(sample(text, 'disk2iso_queue_length'), 0);
    assert.equal(sample(text, 'disk2iso_output_filesystem_stop_threshold_ratio'), 0.95);
    assert.deepEqual(await promtoolCheck(text), { code: 0, problems: '' });

    const line = await runShell(`"${BIN}" health && echo OK || echo FAIL`, env);
    assert.match(line.stdout, /\nFAIL\n$/);
    const health = await runCli(['health'], env);
    assert.equal(health.code, 1);
    assert.match(health.stderr, new RegExp(`^disk2iso: no service runs at unix:${socket} .*; checked the data directory ${dataDir} instead\\n$`));
    assert.match(
      health.stdout,
      /^database: ok - writable\noutput_dir: ok - writable, .*\njob_runner: FAILED \(service_not_running\) - no job runner: no service runs at .*\nnot ready\n$/,
    );
  });

  it('refuses an unknown format and a data directory without a database (exit 2), creating nothing', async () => {
    const format = await runCli(['metrics', '--format', 'json'], env);
    assert.equal(format.code, 2);
    assert.match(format.stderr, /Allowed choices are prometheus/);

    const nowhere = join(work, 'nowhere');
    // The embedded database (no database.url) of a folder that holds none.
    const { DISK2ISO_DATABASE_URL: _configured, ...embedded } = env;
    const elsewhere = { ...embedded, DISK2ISO_DATA_DIR: nowhere };
    const metrics = await runCli(['metrics'], elsewhere);
    assert.equal(metrics.code, 2);
    assert.match(metrics.stderr, /no database at .*nowhere\/disk2iso\.db/);
    assert.equal(metrics.stdout, '');
    const health = await runCli(['health'], elsewhere);
    assert.equal(health.code, 1);
    assert.match(health.stdout, /^database: FAILED \(database_unavailable\) - no database at /);
    await assert.rejects(stat(nowhere), { code: 'ENOENT' });

    const missingKey = await runCli(['metrics', '--api-key-file', join(work, 'no-such.key')], env);
    assert.equal(missingKey.code, 2);
    assert.match(missingKey.stderr, /cannot read the API key file/);
  });
});
