import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { loadConfig } from '../../src/config/load.js';
import { READ_ATTEMPTS } from '../../src/config/schema.js';
import { ValidationError } from '../../src/errors.js';
import type { JobRecord } from '../../src/jobs/model.js';
import { RETRY_READ_ATTEMPTS } from '../../src/jobs/model.js';
import { runCli } from '../cli/run-cli.js';
import { type WebTestServer, startWebTestServer } from '../web/support/server.js';

/**
 * The read-attempts bounds are declared once (READ_ATTEMPTS); every way in takes them from there.
 * Each is tried just past the bound, and, where nothing else would stop it, at the bound.
 */
const TOO_MANY = READ_ATTEMPTS.maximum + 1;
const WORKER = 'read-attempts-worker';

describe('read attempts: one declaration of the bounds', () => {
  let server: WebTestServer;
  let apiKey: string;
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-read-attempts-'));
    server = await startWebTestServer({ listen: false });
    apiKey = (await server.auth.apiKeys.create({ user: 'admin-user', name: 'read attempts test' }, localActor('test'))).key;
  });

  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  async function apiPost(url: string, body: Record<string, unknown>): Promise<{ status: number; body: string }> {
    const response = await server.app.inject({
      method: 'POST',
      url,
      headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
    return { status: response.statusCode, body: response.body };
  }

  /** A completed job whose image has unreadable sectors: one whose bad areas may be read again. */
  async function completedWithBadSectors(): Promise<JobRecord> {
    const job = await server.queue.enqueue({
      name: 'scratched',
      deviceId: 'loop990',
      devicePath: '/dev/loop990',
      outputFile: join(server.config.storage.output_dir, 'scratched.iso'),
      sizeBytes: 1024 * 1024,
      options: { read_attempts: 1, verify: false, checksums: ['md5'] },
      claim: { workerId: WORKER, leaseMs: 600_000 },
    });
    const archive = await server.archiveRepository.create({
      jobId: job.id,
      filename: 'scratched.iso',
      path: job.outputFile,
      sizeBytes: 1024 * 1024,
      checksums: { md5: '0'.repeat(32) },
      source: { deviceId: job.deviceId, devicePath: job.devicePath, discKind: 'data', volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] },
      badBytes: 2048,
    });
    return server.queue.finish(job.id, WORKER, 'completed', { archiveId: archive.id, progress: 100, bytesDone: 1024 * 1024, badBytes: 2048, phase: null });
  }

  it('the configuration takes the maximum and refuses one more', () => {
    const load = (value: number) => loadConfig({ dataDir: work, env: { DISK2ISO_IMAGING_READ_ATTEMPTS: String(value) } });
    assert.equal(load(READ_ATTEMPTS.maximum).imaging.read_attempts, READ_ATTEMPTS.maximum);
    assert.equal(load(READ_ATTEMPTS.minimum).imaging.read_attempts, READ_ATTEMPTS.minimum);
    assert.throws(
      () => load(TOO_MANY),
      (error: unknown) => error instanceof ValidationError && /imaging\.read_attempts/.test(error.message),
    );
  });

  it('the API refuses one more than the maximum for a new job', async () => {
    const refused = await apiPost('/api/v1/jobs', { device: 'sr9', options: { read_attempts: TOO_MANY } });
    assert.equal(refused.status, 400, refused.body);
    assert.match(refused.body, /validation_failed/);
    assert.match(refused.body, /read_attempts/);
    // At the bound the body is valid: the request gets as far as looking for the drive.
    const atBound = await apiPost('/api/v1/jobs', { device: 'sr9', options: { read_attempts: READ_ATTEMPTS.maximum } });
    assert.equal(atBound.status, 404, atBound.body);
    assert.match(atBound.body, /unknown_device/);
  });

  it('the new-job page refuses one more than the maximum, naming the bounds', async () => {
    const response = await server.send('POST', '/jobs', { form: { device: 'sr9', read_attempts: String(TOO_MANY), checksums: ['md5'], priority: 'low' } });
    assert.equal(response.status, 400);
    assert.match(response.body, new RegExp(`id="read-attempts-error">Enter a whole number from ${READ_ATTEMPTS.minimum} to ${READ_ATTEMPTS.maximum}\\.</p>`));
  });

  it('the CLI refuses one more than the maximum before it touches a drive', async () => {
    const result = await runCli(['create', '--device', 'sr9', '--read-attempts', String(TOO_MANY)], {
      DISK2ISO_DATA_DIR: work,
      DISK2ISO_DRIVES_DEMO: 'off',
      DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
    });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`whole number from ${READ_ATTEMPTS.minimum} to ${READ_ATTEMPTS.maximum}`));
  });

  it('a retry of the bad areas needs at least one attempt and at most the maximum, in the API and the service', async () => {
    assert.equal(RETRY_READ_ATTEMPTS.minimum, 1);
    assert.equal(RETRY_READ_ATTEMPTS.maximum, READ_ATTEMPTS.maximum);
    const job = await completedWithBadSectors();
    for (const attempts of [RETRY_READ_ATTEMPTS.minimum - 1, TOO_MANY]) {
      const refused = await apiPost(`/api/v1/jobs/${job.id}/retry-bad-areas`, { read_attempts: attempts });
      assert.equal(refused.status, 400, `${attempts}: ${refused.body}`);
      assert.match(refused.body, /read_attempts/);
      await assert.rejects(
        server.jobs.retryBadAreas(job.id, attempts),
        (error: unknown) => error instanceof ValidationError && error.message === `read_attempts must be 1 to ${READ_ATTEMPTS.maximum}`,
      );
    }
    assert.equal((await server.jobs.get(job.id)).status, 'completed', 'nothing was queued');
  });
});
