import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { JobRecord } from '../../../src/jobs/model.js';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

const WORKER = 'refresh-worker';
/** The refresh, inside <noscript> so it never fires while scripts run; it reloads the page without its one-shot notice. */
const NOSCRIPT_REFRESH = /<noscript><meta http-equiv="refresh" content="2; url=([^"]*)"><\/noscript>/;

describe('pages showing an active job refresh themselves without JavaScript', () => {
  let work: string;
  let drivePath: string;
  let driveId: string;
  let server: WebTestServer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-web-refresh-'));
    drivePath = join(work, 'drive.img');
    await writeFile(drivePath, Buffer.alloc(1024 * 1024));
    server = await startWebTestServer({ devices: [drivePath], listen: false });
    driveId = /action="\/drives\/((?:[a-z0-9-]+\.)?file-[0-9a-f]+)\/automation"/.exec((await server.send('GET', '/drives')).body)?.[1] ?? '';
    assert.notEqual(driveId, '', 'the drive is listed');
  });
  after(async () => {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  /** A job on the test's drive, running under the test's worker from the moment it is added, so the service's runner never takes it. */
  async function runningJob(): Promise<JobRecord> {
    const job = await server.queue.enqueue({
      name: 'refreshing',
      deviceId: driveId,
      devicePath: drivePath,
      outputFile: join(server.config.storage.output_dir, 'refreshing.iso'),
      sizeBytes: 1024 * 1024,
      options: { read_attempts: 0, verify: false, checksums: ['md5'], disc: { label: 'REFRESHING', kind: 'data', sector_size: 2048 } },
      claim: { workerId: WORKER, leaseMs: 600_000 },
    });
    assert.equal(job.status, 'running', 'the test took the job');
    return job;
  }

  it('has no refresh while nothing is active', async () => {
    for (const path of ['/', '/drives']) {
      const page = await server.send('GET', path, { session: server.sessions.viewer });
      assert.equal(page.status, 200, path);
      assert.ok(!page.body.includes('http-equiv="refresh"'), `${path} does not refresh`);
    }
  });

  it('refreshes every 2 seconds, only inside <noscript>, while a job runs, and stops when it has finished', async () => {
    const job = await runningJob();
    for (const path of ['/', '/?tab=finished', `/jobs/${job.id}`, '/drives']) {
      const page = await server.send('GET', path, { session: server.sessions.viewer });
      assert.equal(page.status, 200, path);
      assert.match(page.body, NOSCRIPT_REFRESH, `${path} refreshes itself without JavaScript`);
      assert.equal(page.body.split('http-equiv="refresh"').length, 2, `${path}: one refresh, in the <noscript> only`);
    }
    const noticed = await server.send('GET', `/?notice=job_created&notice_job=${job.id}`, { session: server.sessions.operator });
    assert.match(
      noticed.body,
      new RegExp(`<div class="banner banner-ok" role="status" data-one-shot data-notice-job="${job.id}">The imaging job was created.`),
    );
    assert.equal(NOSCRIPT_REFRESH.exec(noticed.body)?.[1], '/', 'the refresh does not show the notice again');
    const forged = await server.send('GET', '/?notice=job_created&notice_job=%22%3E%3Cscript%3E', { session: server.sessions.operator });
    assert.match(forged.body, /<div class="banner banner-ok" role="status" data-one-shot>/, 'no job, no attribute');

    const paused = await server.send('POST', `/jobs/${job.id}/action`, { session: server.sessions.operator, form: { action: 'pause' }, json: true });
    assert.equal(paused.status, 200, paused.body);
    assert.equal(JSON.parse(paused.body).subject, `job:${job.id}:paused`, 'the answer names the outcome the live stream reports too');
    await server.queue.finish(job.id, WORKER, 'completed');
    for (const path of ['/', `/jobs/${job.id}`, '/drives']) {
      const page = await server.send('GET', path, { session: server.sessions.viewer });
      assert.ok(!page.body.includes('http-equiv="refresh"'), `${path} stops refreshing once the job has finished`);
    }
  });
});
