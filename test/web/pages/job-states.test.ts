import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../../src/auth/principal.js';
import type { JobRecord } from '../../../src/jobs/model.js';
import { testDriveId } from '../../support/database.js';
import { type TestDisc, insertTestDisc } from '../support/discs.js';
import { type SendOptions, type WebTestServer, startWebTestServer } from '../support/server.js';

const WORKER = 'states-worker';
const MAP_WITH_BAD_AREA =
  '# Mapfile. Created by a test\n# current_pos  current_status  current_pass\n0x00000000     +               1\n#      pos        size  status\n0x00000000  0x00100000  +\n0x00100000  0x00002000  -\n0x00102000  0x000FE000  +\n';

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** A job's big card (running) or compact row (any other state) on the dashboard. */
function cardOf(body: string, jobId: string): string {
  const start = body.lastIndexOf('<', body.indexOf(`id="job-${jobId}"`));
  assert.ok(start >= 0, `no card for ${jobId}`);
  const element = body.startsWith('<li', start) ? 'li' : 'article';
  return body.slice(start, body.indexOf(`</${element}>`, start));
}

describe('honest job states in the pages and the API', () => {
  let server: WebTestServer;
  let output: string;
  let devices = 0;

  let apiKey: string;

  const send = (method: string, url: string, options: SendOptions = {}) => server.send(method, url, options);

  /** A JSON request to the API with the admin's API key. */
  async function api(method: 'PATCH' | 'POST', url: string, body: Record<string, unknown>): Promise<{ status: number; body: string }> {
    const response = await server.app.inject({
      method,
      url,
      headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
    return { status: response.statusCode, body: response.body };
  }

  /** A job on a drive of its own, taken up by a worker that read `bytesDone` bytes and then ended as `end`. */
  async function jobThatRead(name: string, bytesDone: number, end: 'paused' | 'completed', badBytes = 0): Promise<JobRecord> {
    devices += 1;
    const outputFile = join(output, `${name}.iso`);
    const job = await server.queue.enqueue({
      name,
      deviceId: `loop${900 + devices}`,
      devicePath: `/dev/loop${900 + devices}`,
      outputFile,
      sizeBytes: 2 * 1024 * 1024,
      options: { read_attempts: 2, verify: true, checksums: ['md5'], disc: { label: name.toUpperCase(), kind: 'data', sector_size: 2048 } },
      claim: { workerId: WORKER, leaseMs: 600_000 },
    });
    if (bytesDone > 0) await server.queue.update(job.id, WORKER, { phase: 'copying', progress: (bytesDone / (2 * 1024 * 1024)) * 100, bytesDone, badBytes });
    await writeFile(`${outputFile}${end === 'paused' ? '.part' : ''}`, Buffer.alloc(2 * 1024 * 1024, 7));
    await writeFile(`${outputFile}.map`, MAP_WITH_BAD_AREA);
    if (end === 'paused') return server.queue.finish(job.id, WORKER, 'paused');
    const archive = await server.archiveRepository.create({
      jobId: job.id,
      filename: `${name}.iso`,
      path: outputFile,
      sizeBytes: 2 * 1024 * 1024,
      checksums: { md5: '0'.repeat(32) },
      metadata: { label: name },
      source: {
        deviceId: job.deviceId,
        devicePath: job.devicePath,
        discKind: 'data',
        volumeLabel: name.toUpperCase(),
        volumeId: null,
        mediaType: null,
        fileSystems: ['iso9660'],
      },
      badBytes,
    });
    return server.queue.finish(job.id, WORKER, 'completed', { archiveId: archive.id, progress: 100, bytesDone, badBytes, phase: null });
  }

  before(async () => {
    server = await startWebTestServer({ listen: false });
    output = server.config.storage.output_dir;
    await mkdir(output, { recursive: true });
    apiKey = (await server.auth.apiKeys.create({ user: 'admin-user', name: 'states test' }, localActor('test'))).key;
  });

  after(async () => {
    await server.close();
  });

  it('asks before cancelling, says how much was read, and keeps the data by default (plain forms)', async () => {
    const job = await jobThatRead('half_read', 1024 * 1024, 'paused');
    const card = cardOf((await send('GET', '/')).body, job.id);
    assert.ok(!card.includes('value="cancel"'), 'no cancel button beside Pause and Resume');
    assert.match(card, new RegExp(`href="/jobs/${job.id}/cancel\\?return_to=%2F"[^>]*>Cancel job…</a>`));

    const page = await send('GET', `/jobs/${job.id}/cancel?return_to=%2F`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Cancel “half_read”\?/);
    assert.match(page.body, /1 MB of 2\.1 MB \(50%\) have been read so far\./);
    assert.match(page.body, /value="keep" checked/);
    assert.doesNotMatch(page.body, /value="discard" checked/);
    assert.match(page.body, /<input type="hidden" name="return_to" value="\/">/);

    const unchosen = await send('POST', `/jobs/${job.id}/cancel`, { form: { return_to: '/' } });
    assert.equal(unchosen.location, '/?error=invalid_action');
    const viaAction = await send('POST', `/jobs/${job.id}/action`, { form: { action: 'cancel', return_to: '/' } });
    assert.equal(viaAction.location, '/?error=invalid_action', 'the old one-click cancel is gone');
    assert.equal((await server.jobs.get(job.id)).status, 'paused', 'nothing was cancelled without the confirmation');

    const kept = await send('POST', `/jobs/${job.id}/cancel`, { form: { partial: 'keep', return_to: '/' } });
    assert.equal(kept.status, 303);
    assert.equal(kept.location, '/?notice=job_cancel_kept');
    assert.match((await send('GET', kept.location ?? '/')).body, /The job was cancelled; its partial image and rescue map were kept\./);
    const cancelled = await server.jobs.get(job.id);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.options['keep_partial_on_cancel'], true);
    assert.equal(await exists(`${job.outputFile}.part`), true);
    assert.equal(await exists(`${job.outputFile}.map`), true);

    const again = await send('GET', `/jobs/${job.id}/cancel`);
    assert.equal(again.location, `/jobs/${job.id}?error=invalid_state`, 'a finished job has nothing to cancel');
  });

  it('deletes the partial image only when asked, and defaults to that only for a job that read nothing', async () => {
    const job = await jobThatRead('discarded', 512 * 1024, 'paused');
    const discarded = await send('POST', `/jobs/${job.id}/cancel`, { form: { partial: 'discard' }, json: true });
    assert.equal(discarded.status, 200);
    assert.equal(JSON.parse(discarded.body).notice, 'job_cancel');
    assert.equal(await exists(`${job.outputFile}.part`), false);
    assert.equal(await exists(`${job.outputFile}.map`), false);

    const fresh = await jobThatRead('nothing_read', 0, 'paused');
    const page = await send('GET', `/jobs/${fresh.id}/cancel`);
    assert.match(page.body, /Nothing has been read yet\./);
    assert.match(page.body, /value="discard" checked/);

    const cancelled = await api('PATCH', `/api/v1/jobs/${fresh.id}`, { action: 'cancel' });
    assert.equal(cancelled.status, 200, cancelled.body);
    assert.equal(
      JSON.parse(cancelled.body).options.keep_partial_on_cancel,
      false,
      'the API default follows storage.keep_partial_on_cancel when nothing was read',
    );
  });

  it('shows a job completed with unreadable sectors in amber on the dashboard, its page, the archive and the API', async () => {
    const job = await jobThatRead('scratched', 2 * 1024 * 1024 - 8192, 'completed', 8192);
    const card = cardOf((await send('GET', '/')).body, job.id);
    assert.match(card, /class="job-row tone-with-errors"/);
    assert.match(card, /data-field="status">Completed with errors</);
    assert.match(card, /4 sectors \(8\.2 kB\) could not be read; they are zero-filled in the image\./);
    assert.match(card, new RegExp(`href="/jobs/${job.id}#map-heading"`));
    assert.match(card, />Retry the bad areas</);

    const detail = await send('GET', `/jobs/${job.id}`);
    assert.match(detail.body, /class="panel job-summary tone-with-errors"/);
    assert.match(detail.body, new RegExp(`href="/api/v1/jobs/${job.id}/map"`));

    const archive = await send('GET', '/archive');
    assert.match(archive.body, /class="badge tone-with-errors" data-archive-state="completed_with_errors">Completed with errors</);
    assert.match(archive.body, /<a href="\/archive\/archive_[a-z0-9]+">scratched<\/a>/);
    assert.match(archive.body, /Volume label: SCRATCHED/);
    assert.match(archive.body, /8\.2 kB could not be read and are zero-filled in the image\./);

    const api = JSON.parse((await send('GET', `/api/v1/jobs/${job.id}`)).body);
    assert.equal(api.status, 'completed', 'still completed for clients filtering on status');
    assert.equal(api.outcome, 'with_errors');
    assert.deepEqual(api.bad_sectors, { sectors: 4, bytes: 8192, zero_filled: true, map_url: `/api/v1/jobs/${job.id}/map` });
    const map = await send('GET', api.bad_sectors.map_url);
    assert.equal(map.status, 200);
    assert.match(String(map.headers['content-type']), /^text\/plain/);
    assert.equal(map.body, MAP_WITH_BAD_AREA);

    const clean = await jobThatRead('clean_disc', 2 * 1024 * 1024, 'completed');
    const cleanView = JSON.parse((await send('GET', `/api/v1/jobs/${clean.id}`)).body);
    assert.equal(cleanView.outcome, 'clean');
    assert.equal(cleanView.bad_sectors, null);
    assert.doesNotMatch(cardOf((await send('GET', '/?tab=finished')).body, clean.id), /Retry the bad areas|tone-with-errors/);
  });

  it('shows the pass and what is left while bad areas are retried, not a speed of 0 B/s', async () => {
    devices += 1;
    const outputFile = join(output, 'retrying.iso');
    const job = await server.queue.enqueue({
      name: 'retrying',
      deviceId: `loop${900 + devices}`,
      devicePath: `/dev/loop${900 + devices}`,
      outputFile,
      sizeBytes: 2 * 1024 * 1024,
      options: { read_attempts: 3, verify: true, checksums: ['md5'], disc: { label: 'RETRYING', kind: 'data', sector_size: 2048 } },
      claim: { workerId: WORKER, leaseMs: 600_000 },
    });
    await server.queue.update(job.id, WORKER, {
      phase: 'retrying',
      progress: 99.6,
      bytesDone: 2 * 1024 * 1024 - 8192,
      badBytes: 8192,
      speedBps: 0,
      etaSeconds: null,
    });
    await writeFile(`${outputFile}.part`, Buffer.alloc(2 * 1024 * 1024));
    await writeFile(`${outputFile}.map`, MAP_WITH_BAD_AREA.replace('0x00000000     +               1', '0x00100000     -               2'));
    for (const [url, part] of [
      ['/', cardOf((await send('GET', '/')).body, job.id)],
      [`/jobs/${job.id}`, (await send('GET', `/jobs/${job.id}`)).body],
    ] as const) {
      assert.match(part, /<dt>Pass<\/dt><dd data-field="pass">2 of 3<\/dd>/, url);
      assert.match(part, /<dt>Left to read<\/dt><dd data-field="left">8\.2 kB<\/dd>/, url);
      assert.doesNotMatch(part, /data-field="speed"|data-field="eta"/, url);
    }
    const german = await send('GET', `/jobs/${job.id}`, { lang: 'de' });
    assert.match(german.body, /<dt>Durchgang<\/dt><dd data-field="pass">2 von 3<\/dd>/);
  });

  it('queues a retry of the bad areas from the map, and refuses it where there is nothing to retry', async () => {
    const job = await jobThatRead('retry_me', 2 * 1024 * 1024 - 8192, 'completed', 8192);
    const retried = await send('POST', `/jobs/${job.id}/retry-bad-areas`, { form: { return_to: `/jobs/${job.id}` } });
    assert.equal(retried.location, `/jobs/${job.id}?notice=job_retry_bad_areas`);
    const queued = await server.jobs.get(job.id);
    assert.equal(queued.options.read_attempts, Math.max(1, server.config.imaging.read_attempts));
    assert.equal(queued.archive_id, job.archiveId, 'the run updates the same archive entry');
    assert.match((await server.jobs.logs(job.id)).map((line) => line.message).join('\n'), /retry of the bad areas requested: 8192 bytes/);
    // The service's own runner takes the job up; its drive does not exist, so the run ends before it
    // touches the image, which stays where the archive expects it.
    for (let attempt = 0; attempt < 600 && (await server.jobs.get(job.id)).status !== 'failed'; attempt++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal((await server.jobs.get(job.id)).status, 'failed');
    assert.equal(await exists(job.outputFile), true);
    assert.equal(await exists(`${job.outputFile}.part`), false);

    const twice = await send('POST', `/jobs/${job.id}/retry-bad-areas`, { form: {}, json: true });
    assert.equal(twice.status, 409);
    assert.equal(JSON.parse(twice.body).error.code, 'no_bad_areas');
    assert.match(JSON.parse(twice.body).error.message, /no unreadable sectors to read again/);

    // A run that had moved the image back to .part and then failed: removing the job gives the image back to the archive.
    await rename(job.outputFile, `${job.outputFile}.part`);
    const removed = await server.app.inject({ method: 'DELETE', url: `/api/v1/jobs/${job.id}`, headers: { 'x-api-key': apiKey } });
    assert.equal(removed.statusCode, 204, removed.body);
    assert.equal(await exists(job.outputFile), true);
    assert.equal(await exists(`${job.outputFile}.part`), false);
    assert.equal((await server.archiveRepository.get(job.archiveId ?? ''))?.path, job.outputFile);

    const clean = await jobThatRead('nothing_bad', 2 * 1024 * 1024, 'completed');
    const refused = await api('POST', `/api/v1/jobs/${clean.id}/retry-bad-areas`, { read_attempts: 3 });
    assert.equal(refused.status, 409);
    assert.equal(JSON.parse(refused.body).error.code, 'no_bad_areas');
    assert.equal((await server.jobs.get(clean.id)).status, 'completed', 'a refused retry changes nothing');

    const scratched = await jobThatRead('scratched_api', 2 * 1024 * 1024 - 8192, 'completed', 8192);
    const tooFew = await api('POST', `/api/v1/jobs/${scratched.id}/retry-bad-areas`, { read_attempts: 0 });
    assert.equal(tooFew.status, 400);
    const viaApi = await api('POST', `/api/v1/jobs/${scratched.id}/retry-bad-areas`, { read_attempts: 7 });
    assert.equal(viaApi.status, 200, viaApi.body);
    assert.equal(JSON.parse(viaApi.body).status, 'queued');
    assert.equal(JSON.parse(viaApi.body).options.read_attempts, 7);
  });

  it('names the node whose drive a job reads on its row and its page, and no node in the embedded mode', async () => {
    const thisNode = server.config.database.url === null ? null : server.config.cluster.node_name;
    const options = { read_attempts: 2, verify: true, checksums: ['md5' as const], disc: { label: 'NODE', kind: 'data' as const, sector_size: 2048 } };
    // A job for another node's drive (in the cluster mode): this service's runner never takes it.
    const remote = await server.queue.enqueue({
      name: 'on-tower-b',
      nodeId: 'tower-b',
      deviceId: 'tower-b.sr0',
      devicePath: '/dev/sr0',
      outputFile: join(output, 'on-tower-b.iso'),
      sizeBytes: 1024 * 1024,
      options,
    });
    const local = await jobThatRead('on-this-host', 1024 * 1024, 'paused');
    const dashboard = await send('GET', '/');
    assert.match(cardOf(dashboard.body, remote.id), /<span data-field="node">Node tower-b<\/span>/);
    const page = await send('GET', `/jobs/${remote.id}`);
    assert.match(page.body, /<dt>Node<\/dt><dd data-field="node">tower-b<\/dd>/);
    const localPage = (await send('GET', `/jobs/${local.id}`)).body;
    if (thisNode === null) {
      assert.doesNotMatch(cardOf(dashboard.body, local.id), /data-field="node"|Node /);
      assert.doesNotMatch(localPage, /<dt>Node<\/dt>/);
    } else {
      assert.match(cardOf(dashboard.body, local.id), new RegExp(`<span data-field="node">Node ${thisNode}</span>`));
      assert.match(localPage, new RegExp(`<dt>Node</dt><dd data-field="node">${thisNode}</dd>`));
    }
    assert.equal((await send('POST', `/jobs/${remote.id}/cancel`, { form: { partial: 'delete', return_to: '/' } })).status, 303);
  });
});

describe('a drive whose disc cannot be read', () => {
  let work: string;
  let disc: TestDisc;
  let server: WebTestServer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-unreadable-'));
    disc = await insertTestDisc({ dir: work, label: 'DIRTY_DISC', dataMiB: 1, seed: 21, badRanges: [[0, 64 * 2048]] });
    server = await startWebTestServer({ listen: false, devices: [disc.loop.path] });
  });

  after(async () => {
    await server?.close();
    await disc?.release();
    await rm(work, { recursive: true, force: true });
  });

  it('says so, instead of calling it blank and offering to image it', async () => {
    const page = await server.send('GET', '/drives');
    assert.equal(page.status, 200);
    const card = page.body.slice(page.body.indexOf(`id="drive-${testDriveId(disc.loop.name)}-name"`));
    assert.match(card, /cannot be read/);
    assert.doesNotMatch(card, /Blank disc|Image this disc/);
    const form = await server.send('GET', '/jobs/new');
    assert.doesNotMatch(form.body, /Blank/);
  });
});
