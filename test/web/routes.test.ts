import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createVerificationTaskRepository } from '../../src/db/verification-task-repository.js';
import { currentLeaseHolder } from '../../src/jobs/lease-holder.js';
import type { JobRecord } from '../../src/jobs/model.js';
import type { EnqueueInput } from '../../src/jobs/queue.js';
import { openDataDirDatabase } from '../support/database.js';
import { NOTIFICATION_FORM_DEFAULTS, type SentRequest as Sent, type TestRole, type WebTestServer, startWebTestServer } from './support/server.js';

const HOSTILE = `<script>alert("x")</script> "onmouseover=alert(1) '&`;
const HOSTILE_TAG = `<img src=x onerror=alert(2)>`;

interface SendOptions {
  form?: Record<string, string | string[]>;
  role?: TestRole;
  lang?: string;
  cookie?: string;
  json?: boolean;
  /** Default true: forms carry the server's CSRF token as the page put it there. */
  csrf?: boolean;
}

/** Hostile text must only ever appear escaped: never as markup, never breaking out of an attribute. */
function assertEscaped(body: string): void {
  assert.ok(!body.includes('<script>alert('), 'a <script> from user data reached the page unescaped');
  assert.ok(!body.includes('<img src=x'), 'an <img> from user data reached the page unescaped');
  assert.ok(!/"onmouseover=/.test(body), 'a quote from user data closed an attribute');
  assert.ok(!/\sonerror=/.test(body.replace(/&lt;img src=x onerror=/g, '')), 'an event handler attribute appeared');
}

describe('web pages (rendered in-process)', () => {
  let server: WebTestServer;
  let output: string;
  let queued: JobRecord;
  let running: JobRecord;
  let failed: JobRecord;
  let archiveId: string;

  /** A request as the role's signed-in user (default the admin), through the real sign-in and guard. */
  async function send(method: string, url: string, options: SendOptions = {}): Promise<Sent> {
    const { role, ...rest } = options;
    return server.send(method, url, { ...rest, session: server.sessions[role ?? 'admin'] });
  }

  async function enqueue(name: string, extra: Pick<EnqueueInput, 'priority' | 'claim'> = {}): Promise<JobRecord> {
    return server.queue.enqueue({
      name,
      deviceId: 'loop999',
      devicePath: '/dev/loop999',
      outputFile: join(output, `${name.replace(/[^a-z0-9]/gi, '_')}.iso`),
      sizeBytes: 700_000_000,
      options: { read_attempts: 2, verify: true, checksums: ['md5', 'sha256'], disc: { label: name, kind: 'data', sector_size: 2048 } },
      ...extra,
    });
  }

  /** An image file with md5 sidecar in the output directory, catalogued. */
  async function catalogue(name: string, metadata: { label?: string; tags?: string[]; notes?: string } = {}): Promise<string> {
    const path = join(output, `${name}.iso`);
    const content = Buffer.from(`image ${name}\n`.repeat(512));
    await writeFile(path, content);
    const md5 = createHash('md5').update(content).digest('hex');
    await writeFile(`${path}.md5`, `${md5}  ${name}.iso\n`);
    const archive = await server.archiveRepository.create({
      filename: `${name}.iso`,
      path,
      sizeBytes: content.length,
      checksums: { md5 },
      metadata,
      source: {
        deviceId: 'sr0',
        devicePath: '/dev/sr0',
        discKind: 'dvd-video',
        volumeLabel: name,
        volumeId: name,
        mediaType: 'dvd',
        fileSystems: ['iso9660', 'udf'],
      },
    });
    return archive.id;
  }

  before(async () => {
    server = await startWebTestServer({ listen: false });
    output = server.config.storage.output_dir;
    await mkdir(output, { recursive: true });
    running = await enqueue(HOSTILE, { claim: { workerId: 'test-worker', leaseMs: 600_000 } });
    running =
      (await server.queue.update(running.id, 'test-worker', {
        phase: 'copying',
        progress: 42.5,
        bytesDone: 297_500_000,
        speedBps: 2_450_000,
        etaSeconds: 263,
        badBytes: 4096,
      })) ?? running;
    await server.jobRepository.appendLog(running.id, 'warning', `read error near ${HOSTILE}`);
    queued = await enqueue('backup_dvd_2024');
    failed = await enqueue('scratched_disc');
    failed = await server.queue.requestStop(failed.id, 'cancel');
    archiveId = await catalogue('movie_collection_disc1', { label: HOSTILE, tags: ['movies', HOSTILE_TAG], notes: `${HOSTILE}\nsecond line` });
  });

  after(async () => {
    await server.close();
  });

  describe('every page renders', () => {
    const pages: Array<[string, () => string, RegExp[]]> = [
      [
        'dashboard',
        () => '/',
        [/Active jobs \(\d+\)/, /Completed \(\d+\)/, /New imaging job/, /System status/, /Available drives/, /Storage free/, /CPU usage/, /Memory/],
      ],
      ['finished jobs', () => '/?tab=finished', [/Finished jobs/, /scratched_disc/]],
      [
        'new job',
        () => '/jobs/new',
        [/New imaging job/, /Read attempts/, /<input type="checkbox" id="eject" name="eject" value="1" aria-describedby="eject-help">/, /Start imaging/],
      ],
      ['job detail', () => `/jobs/${running.id}`, [/Sector map/, /Log/, /Details/, /42\.5%/, /2\.5 MB\/s/, /4:23/]],
      ['drives', () => '/drives', [/Drives/]],
      ['archive', () => '/archive', [/Showing 1–1 of 1 item/, /movie_collection_disc1\.iso/, /MD5:/, /Download/]],
      ['archive detail', () => `/archive/${archiveId}`, [/Verification history/, /Description/]],
      ['archive delete', () => `/archive/${archiveId}/delete`, [/Delete 1 image/, /cannot be undone/]],
      ['settings', () => '/config', [/Storage/, /Imaging defaults/, /Notifications/, /Users and authentication/, /Read attempts/]],
      ['dashboard fragment', () => '/fragments/dashboard', [/Active jobs/]],
      ['job fragment', () => `/jobs/${running.id}/live`, [/Sector map/]],
      ['log fragment', () => `/jobs/${running.id}/log?after=0`, [/read error near/]],
    ];
    for (const [name, url, expected] of pages) {
      it(name, async () => {
        const page = await send('GET', url());
        assert.equal(page.status, 200, page.body.slice(0, 500));
        assert.match(String(page.headers['content-type']), /^text\/html; charset=utf-8/);
        assert.equal(page.headers['cache-control'], 'no-store');
        for (const pattern of expected) assert.match(page.body, pattern);
        assertEscaped(page.body);
      });
    }
  });

  it('escapes hostile job names, log lines, labels, tags and notes everywhere they appear', async () => {
    const escapedScript = '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &quot;onmouseover=alert(1) &#39;&amp;';
    for (const url of [
      '/',
      `/jobs/${running.id}`,
      `/jobs/${running.id}/live`,
      `/jobs/${running.id}/log`,
      '/archive',
      `/archive/${archiveId}`,
      `/archive/${archiveId}/delete`,
      '/fragments/dashboard',
    ]) {
      const page = await send('GET', url);
      assert.equal(page.status, 200, url);
      assertEscaped(page.body);
      assert.ok(page.body.includes(escapedScript), `${url} shows the hostile text, escaped`);
    }
    const archive = await send('GET', '/archive');
    assert.ok(archive.body.includes('&lt;img src=x onerror=alert(2)&gt;'), 'tags are escaped');
  });

  it('speaks German when the browser asks for it, and switches language with the form', async () => {
    const german = await send('GET', '/', { lang: 'de-DE,de;q=0.9,en;q=0.5' });
    assert.match(german.body, /<html lang="de">/);
    assert.match(german.body, /Aktive Aufträge \(\d+\)/);
    assert.match(german.body, /Neuer Imaging-Auftrag/);
    const detail = await send('GET', `/jobs/${running.id}`, { lang: 'de' });
    assert.match(detail.body, /42,5\u00a0%/, 'numbers in German format');
    assert.match(detail.body, /2,5 MB\/s/);

    const switched = await send('POST', '/language', { form: { lang: 'en', return_to: '/archive?q=x' }, lang: 'de' });
    assert.equal(switched.status, 303);
    assert.equal(switched.location, '/archive?q=x');
    assert.match(String(switched.headers['set-cookie']), /^lang=en; Path=\/; Max-Age=\d+; SameSite=Lax$/);
    const english = await send('GET', '/', { lang: 'de', cookie: 'lang=en' });
    assert.match(english.body, /<html lang="en">/);
    assert.match(english.body, /Active jobs/);
  });

  it('pauses and resumes a job with plain forms (POST, redirect, GET with a notice)', async () => {
    const paused = await send('POST', `/jobs/${queued.id}/action`, { form: { action: 'pause', return_to: '/' } });
    assert.equal(paused.status, 303);
    assert.equal(paused.location, '/?notice=job_pause');
    assert.equal((await server.jobs.get(queued.id)).status, 'paused');
    const page = await send('GET', paused.location);
    assert.match(page.body, /The job is pausing; its progress is saved\./);
    const card = page.body.slice(page.body.indexOf(`id="job-${queued.id}"`));
    assert.match(card.slice(0, card.indexOf('</article>')), /value="resume"/, 'a paused job offers resume');

    const resumed = await send('POST', `/jobs/${queued.id}/action`, { form: { action: 'resume', return_to: `/jobs/${queued.id}` } });
    assert.equal(resumed.location, `/jobs/${queued.id}?notice=job_resume`);
    assert.equal((await server.jobs.get(queued.id)).status, 'queued');
  });

  it('answers inline actions with JSON and refuses what the state does not allow, in words', async () => {
    const ok = await send('POST', `/jobs/${queued.id}/priority`, { form: { priority: 'high' }, json: true });
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body), { ok: true, notice: 'job_priority', message: 'The priority was changed.' });
    assert.equal((await server.jobs.get(queued.id)).priority, 'high');

    const refused = await send('POST', `/jobs/${queued.id}/action`, { form: { action: 'retry' }, json: true });
    assert.equal(refused.status, 409);
    assert.deepEqual(JSON.parse(refused.body), {
      error: { code: 'invalid_state', message: "The job's state changed in the meantime, so this action no longer applies." },
    });

    const german = await send('POST', `/jobs/${queued.id}/action`, { form: { action: 'retry' }, json: true, lang: 'de' });
    assert.match(JSON.parse(german.body).error.message, /Zustand des Auftrags/);

    const viaForm = await send('POST', `/jobs/${queued.id}/action`, { form: { action: 'retry', return_to: '/' } });
    assert.equal(viaForm.location, '/?error=invalid_state');
    assert.match((await send('GET', viaForm.location)).body, /role="alert"[^>]*>The job&#39;s state changed/);

    const unknown = await send('POST', `/jobs/${queued.id}/action`, { form: { action: 'explode' }, json: true });
    assert.equal(unknown.status, 400);
    assert.equal(JSON.parse(unknown.body).error.code, 'invalid_action');
  });

  it('never redirects away from the site, whatever return_to says', async () => {
    for (const target of ['//evil.example/x', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)', '/ok\r\nSet-Cookie: x=1']) {
      const response = await send('POST', `/jobs/${queued.id}/priority`, { form: { priority: 'normal', return_to: target } });
      assert.equal(response.status, 303);
      assert.equal(response.location, `/jobs/${queued.id}?notice=job_priority`, target);
    }
  });

  it('refuses form posts without the CSRF token, changing nothing', async () => {
    const before = (await server.jobs.get(queued.id)).status;
    for (const form of [{ action: 'cancel' }, { action: 'cancel', _csrf: 'wrong' }] as Array<Record<string, string>>) {
      const response = await send('POST', `/jobs/${queued.id}/action`, { form, csrf: false });
      assert.equal(response.status, 403);
      assert.match(response.body, /This form has expired\. Reload the page and try again\./);
    }
    assert.equal((await server.jobs.get(queued.id)).status, before);
  });

  it('shows a viewer no buttons it may not use, and the server refuses them anyway', async () => {
    const dashboard = await send('GET', '/', { role: 'viewer' });
    assert.equal(dashboard.status, 200);
    for (const forbidden of ['/jobs/new', 'value="pause"', 'value="cancel"', 'value="resume"', 'Edit priority']) {
      assert.ok(!dashboard.body.includes(forbidden), `viewer sees ${forbidden}`);
    }
    const archive = await send('GET', '/archive', { role: 'viewer' });
    for (const forbidden of ['/verify"', '/delete"', 'bulk-form" name="ids"', 'Delete selected'])
      assert.ok(!archive.body.includes(forbidden), `viewer sees ${forbidden}`);
    assert.match(archive.body, /Download/);
    const detail = await send('GET', `/archive/${archiveId}`, { role: 'viewer' });
    assert.ok(!detail.body.includes('<textarea'), 'viewer gets no edit form');

    const refused = await send('POST', `/jobs/${queued.id}/action`, { form: { action: 'cancel' }, role: 'viewer' });
    assert.equal(refused.status, 403);
    assert.notEqual((await server.jobs.get(queued.id)).status, 'cancelled');
    assert.equal((await send('GET', '/jobs/new', { role: 'viewer' })).status, 403);
    assert.equal((await send('POST', `/archive/${archiveId}/delete`, { form: {}, role: 'viewer' })).status, 403);
    assert.equal((await send('GET', '/config', { role: 'viewer' })).status, 200);
    assert.equal((await send('POST', '/config/imaging', { form: { imaging__read_attempts: '1' }, role: 'operator' })).status, 403);
  });

  it('shows an operator the settings read-only', async () => {
    const page = await send('GET', '/config', { role: 'operator' });
    assert.match(page.body, /only administrators can change them/);
    assert.ok(!page.body.includes('Save Imaging defaults'));
    assert.match(page.body, /id="setting-imaging__read_attempts"[^>]* disabled/);
  });

  it('explains bad input next to the field it belongs to', async () => {
    const response = await send('POST', '/jobs', { form: { name: '', read_attempts: 'many', priority: 'urgent' } });
    assert.equal(response.status, 400);
    assert.match(response.body, /Some fields need your attention/);
    assert.match(response.body, /<p class="field-error" id="device-error">Choose the drive with the disc to image\.<\/p>/);
    assert.match(response.body, /<p class="field-error" id="read-attempts-error">Enter a whole number from 0 to 100\.<\/p>/);
    assert.match(response.body, /<p class="field-error" id="checksums-error">Choose at least one checksum\.<\/p>/);
    assert.match(response.body, /<p class="field-error" id="priority-error">Choose a priority from the list\.<\/p>/);
    assert.match(response.body, /id="read-attempts"[^>]*value="many"/, 'what the user typed is kept');
    assert.match(response.body, /aria-invalid="true" aria-describedby="priority-error"/);

    const unknownDrive = await send('POST', '/jobs', { form: { device: 'sr9', read_attempts: '3', checksums: ['md5'], priority: 'low' } });
    assert.equal(unknownDrive.status, 400);
    assert.match(unknownDrive.body, /id="device-error">This drive is not available \(any more\)\./);

    const jobs = await server.jobs.list({ limit: 100, offset: 0, sort: 'created' });
    assert.equal(jobs.total, 3, 'no job was created');
  });

  it('edits label, tags and notes, and search finds the new tag', async () => {
    const id = await catalogue('software_archive_2024');
    const saved = await send('POST', `/archive/${id}`, {
      form: { label: 'Software 2024', tags: 'software, backup, 2024 , backup', notes: 'line one\r\nline two' },
    });
    assert.equal(saved.status, 303);
    assert.equal(saved.location, `/archive/${id}?notice=archive_saved`);
    const archive = await server.archives.get(id);
    assert.deepEqual(archive.metadata, {
      label: 'Software 2024',
      tags: ['software', 'backup', '2024'],
      notes: 'line one\nline two',
      category_id: null,
      rating: null,
      custom_fields: {},
    });
    const found = await send('GET', '/archive?q=backup');
    assert.match(found.body, /Showing 1–1 of 1 item/);
    assert.match(found.body, /Software 2024/);

    const tooLong = await send('POST', `/archive/${id}`, { form: { label: 'x'.repeat(201), tags: 'a\tb', notes: '' } });
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.body, /id="archive-label-error">The label is too long; use at most 200 characters\./);
    assert.match(tooLong.body, /id="archive-tags-error">Remove control characters/);
    assert.equal((await server.archives.get(id)).metadata.label, 'Software 2024', 'nothing saved');
    await send('POST', `/archive/${id}/delete`, { form: {} });
  });

  /** The archive's newest verification task once it has ended. */
  async function verificationEnded(id: string): Promise<{ status: string; ok: boolean | null }> {
    for (let attempt = 0; attempt < 1200; attempt += 1) {
      const task = (await server.archives.verificationTasks({ archiveId: id, limit: 1, offset: 0 })).tasks[0];
      if (task !== undefined && !['queued', 'running'].includes(task.status)) return task;
      await sleep(100);
    }
    throw new Error(`gave up waiting for the verification of ${id}`);
  }

  it('starts a verification in the background, then shows it in the history; a damaged one too', async () => {
    const id = await catalogue('verify_me');
    const good = await send('POST', `/archive/${id}/verify`, { form: { return_to: `/archive/${id}` } });
    assert.equal(good.location, `/archive/${id}?notice=archive_verification_started`);
    assert.match((await send('GET', good.location)).body, /Verification started: the image is re-hashed in the background/);
    const first = await verificationEnded(id);
    assert.equal(first.status, 'completed');
    assert.equal(first.ok, true);
    let page = await send('GET', `/archive/${id}`);
    assert.match(page.body, /<span class="badge status-ok">Matches<\/span>/);
    assert.match(page.body, /admin-user/);
    const panel = await send('GET', `/archive/${id}/verification`);
    assert.equal(panel.status, 200);
    assert.match(panel.body, /<span class="badge status-ok">Matches<\/span>/, 'the live panel is the same history');
    assert.doesNotMatch(panel.body, /<html/, 'a fragment, no layout');

    await writeFile(join(output, 'verify_me.iso'), 'tampered');
    const bad = await send('POST', `/archive/${id}/verify`, { json: true, form: { return_to: `/archive/${id}` } });
    assert.equal(bad.status, 200);
    assert.equal(JSON.parse(bad.body).notice, 'archive_verification_started', 'an inline action gets its toast');
    assert.equal((await verificationEnded(id)).ok, false);
    page = await send('GET', `/archive/${id}`);
    assert.match(page.body, /<span class="badge status-damaged">Differs<\/span>/);
    assert.equal((await server.archives.get(id)).status, 'damaged');

    await rm(join(output, 'verify_me.iso.md5'));
    await send('POST', `/archive/${id}/verify`, { form: { return_to: `/archive/${id}` } });
    assert.equal((await verificationEnded(id)).status, 'failed');
    page = await send('GET', `/archive/${id}`);
    assert.match(page.body, /The last verification could not finish:<\/strong> There are no checksum files next to the image/);
    await send('POST', `/archive/${id}/delete`, { form: {} });
  });

  it('shows a running verification with its progress and a cancel button, and cancels it', async () => {
    const id = await catalogue('cancel_me');
    const waiting = await catalogue('waiting_me');
    // Held by a worker of this process that is not the service's: it stays running, and the
    // service's worker (one task at a time) leaves the next one queued.
    const database = await openDataDirDatabase(server.config.data_dir);
    try {
      const tasks = createVerificationTaskRepository(database);
      const task = await server.archives.startVerification(id, 'admin-user');
      const claimed = await tasks.claimNext('elsewhere', { leaseMs: 3_600_000, holder: await currentLeaseHolder(), maxRunning: 1 });
      assert.equal(claimed?.id, task.id, 'the test took the task before the service did');
      await tasks.progress(task.id, 'elsewhere', { bytesDone: 2048, bytesTotal: 4096, speedBps: 1000, etaSeconds: 2 });
      const queued = await server.archives.startVerification(waiting, 'admin-user');

      const page = await send('GET', `/archive/${id}`);
      assert.match(page.body, /data-live="archive"/);
      assert.match(page.body, /<span class="badge tone-running">Verifying…<\/span>/);
      assert.match(page.body, /<progress max="100" value="50"/);
      assert.match(page.body, new RegExp(`action="/archive/verification/${task.id}/cancel"`));
      const list = await send('GET', '/archive?q=_me');
      assert.match(list.body, /data-verification-status="running">Verifying… 50%/);
      assert.match(list.body, /data-verification-status="queued">Waiting to be verified/);
      assert.doesNotMatch((await send('GET', `/archive/${id}`, { role: 'viewer' })).body, /\/cancel"/, 'a viewer sees the progress, not the button');

      const stopping = await send('POST', `/archive/verification/${task.id}/cancel`, { form: { return_to: `/archive/${id}` } });
      assert.equal(stopping.location, `/archive/${id}?notice=archive_verification_stopping`);
      assert.equal((await tasks.get(task.id))?.cancelRequested, true);
      assert.match((await send('GET', `/archive/${id}/verification`)).body, /Stopping…/);
      const cancelled = await send('POST', `/archive/verification/${queued.id}/cancel`, { form: { return_to: `/archive/${waiting}` } });
      assert.equal(cancelled.location, `/archive/${waiting}?notice=archive_verification_cancelled`);
      assert.equal((await tasks.get(queued.id))?.status, 'cancelled', 'a queued task ends at once');

      await tasks.finish(task.id, 'elsewhere', async () => ({ status: 'cancelled' }));
      assert.match((await send('GET', `/archive/${id}`)).body, /The last verification was cancelled/);
      assert.equal((await server.archives.verifications(id, { limit: 5, offset: 0 })).total, 0, 'nothing added to the history');
    } finally {
      await database.close();
    }
    const unknown = await send('POST', '/archive/verification/verify_0000/cancel', { form: { return_to: `/archive/${id}` } });
    assert.equal(unknown.location, `/archive/${id}?error=verification_task_not_found`);
    const bogus = await send('POST', '/archive/verification/..%2Fetc/cancel', { form: {} });
    assert.equal(bogus.location, '/archive?error=verification_task_not_found');
    assert.equal((await send('POST', `/archive/verification/verify_0000/cancel`, { role: 'operator', form: {} })).status, 403);
    await send('POST', `/archive/${id}/delete`, { form: {} });
    await send('POST', `/archive/${waiting}/delete`, { form: {} });
  });

  it('deletes only after a confirmation step, files and all', async () => {
    const id = await catalogue('delete_me');
    const confirm = await send('GET', `/archive/${id}/delete`);
    assert.match(confirm.body, /action="\/archive\/[a-z0-9_]+\/delete"/);
    assert.ok((await readdir(output)).includes('delete_me.iso'));
    const deleted = await send('POST', `/archive/${id}/delete`, { form: {} });
    assert.equal(deleted.location, '/archive?notice=archive_deleted');
    assert.deepEqual(
      (await readdir(output)).filter((file) => file.startsWith('delete_me')),
      [],
    );
    assert.equal((await send('GET', `/archive/${id}`)).status, 404);
  });

  it('bulk-verifies and bulk-deletes the selected images', async () => {
    const ids = [await catalogue('bulk_one'), await catalogue('bulk_two')];
    const verified = await send('POST', '/archive/bulk', { form: { action: 'verify', ids, return_to: '/archive?q=bulk' } });
    assert.equal(verified.location, '/archive?q=bulk&notice=archives_verification_started');
    for (const id of ids) assert.equal((await verificationEnded(id)).ok, true);
    for (const id of ids) assert.equal((await server.archives.get(id)).last_verified_ok, true);

    const confirm = await send('POST', '/archive/bulk', { form: { action: 'delete', ids, return_to: '/archive?q=bulk' } });
    assert.equal(confirm.status, 200);
    assert.match(confirm.body, /Delete 2 images\?/);
    assert.match(confirm.body, /bulk_one\.iso/);
    assert.match(confirm.body, /bulk_two\.iso/);
    assert.equal((await server.archives.get(ids[0] as string)).filename, 'bulk_one.iso', 'nothing deleted before confirming');

    const deleted = await send('POST', '/archive/bulk-delete', { form: { ids, return_to: '/archive?q=bulk' } });
    assert.equal(deleted.location, '/archive?q=bulk&notice=archives_deleted');
    for (const file of ['bulk_one.iso', 'bulk_two.iso']) await assert.rejects(access(join(output, file)));

    const nothing = await send('POST', '/archive/bulk', { form: { action: 'verify' } });
    assert.equal(nothing.location, '/archive?error=nothing_selected');
  });

  it('shows the sector map of an image with unreadable sectors, from the rescue map beside it, and none for a whole one', async () => {
    const whole = await catalogue('whole_disc');
    assert.ok(!(await send('GET', `/archive/${whole}`)).body.includes('id="map-heading"'), 'no map panel without bad sectors');

    const path = join(output, 'scratched_disc.iso');
    await writeFile(path, Buffer.alloc(8 * 2048));
    // ddrescue's map: 6 sectors read, 2 unreadable (the "-" status) at 12 KiB.
    await writeFile(
      `${path}.map`,
      '# Mapfile\n0x00004000     +       1\n#      pos        size  status\n0x00000000  0x00003000  +\n0x00003000  0x00001000  -\n',
    );
    const scratched = await server.archiveRepository.create({
      filename: 'scratched_disc.iso',
      path,
      sizeBytes: 8 * 2048,
      checksums: {},
      badBytes: 4096,
      source: { deviceId: 'sr0', devicePath: '/dev/sr0', discKind: 'data', volumeLabel: 'SCRATCHED', volumeId: 'SCRATCHED', mediaType: 'cd', fileSystems: [] },
    });
    const page = await send('GET', `/archive/${scratched.id}`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<h2 id="map-heading">Sector map<\/h2>/);
    assert.match(page.body, /class="cell-bad"/, 'the unreadable sectors are drawn');
    assert.match(page.body, /12(\.3)? kB of 16(\.4)? kB rescued, 4(\.1)? kB bad\./, 'the summary counts 3 of 4 KiB-blocks read');
  });

  it('pages, sorts and filters the archive', async () => {
    const ids: string[] = [];
    for (let index = 1; index <= 22; index++) ids.push(await catalogue(`paging_${String(index).padStart(2, '0')}`));
    const first = await send('GET', '/archive?q=paging&sort=name');
    assert.match(first.body, /Showing 1–20 of 22 items/);
    assert.match(first.body, /href="\/archive\?q=paging&amp;sort=name&amp;page=2" rel="next"/);
    assert.ok(first.body.indexOf('paging_01.iso') < first.body.indexOf('paging_02.iso'), 'ascending by name');
    const second = await send('GET', '/archive?q=paging&sort=name&page=2');
    assert.match(second.body, /Showing 21–22 of 22 items/);
    assert.match(second.body, /paging_22\.iso/);
    const descending = await send('GET', '/archive?q=paging&sort=name&order=desc');
    assert.ok(descending.body.indexOf('paging_22.iso') < descending.body.indexOf('paging_21.iso'));

    const filtered = await send('GET', '/archive?q=paging&type=audio');
    assert.match(filtered.body, /No items/);
    assert.match(filtered.body, /Nothing matches this search/);
    const typed = await send('GET', '/archive?q=paging&type=dvd-video&max_size=1');
    assert.match(typed.body, /Showing 1–20 of 22 items/);
    const bad = await send('GET', '/archive?q=paging&from=yesterday&min_size=big');
    assert.equal(bad.status, 200);
    assert.match(bad.body, /id="filter-from-error">Enter a date like 2025-12-30\./);
    assert.match(bad.body, /id="filter-min-error">Enter a size in megabytes/);
    assert.match(bad.body, /<details class="filters" open>/);
    await send('POST', '/archive/bulk-delete', { form: { ids } });
  });

  it('saves settings, which new jobs then use, and explains values it refuses', async () => {
    const saved = await send('POST', '/config/imaging', {
      form: {
        imaging__read_attempts: '3',
        imaging__sector_size: '2048',
        imaging__verify: '1',
        imaging__checksums: ['md5', 'sha1'],
        imaging__priority: 'high',
        imaging__cluster_sectors: '32',
        imaging__direct_io: 'auto',
        imaging__map_save_interval_seconds: '1',
      },
    });
    assert.equal(saved.status, 303);
    assert.equal(saved.location, '/config?notice=settings_saved#imaging');
    assert.equal(server.config.imaging.read_attempts, 3);
    assert.deepEqual(server.config.imaging.checksums, ['md5', 'sha1']);
    assert.equal(server.config.imaging.priority, 'high');
    const page = await send('GET', '/config');
    assert.match(page.body, /id="setting-imaging__read_attempts"[^>]*value="3"/);
    assert.match((await send('GET', '/jobs/new')).body, /id="read-attempts"[^>]*value="3"/, 'the new-job form offers the new default');

    const refused = await send('POST', '/config/storage', {
      form: { storage__output_dir: output, storage__log_retention_days: '0', storage__warn_threshold_percent: 'ninety', storage__stop_threshold_percent: '95' },
    });
    assert.equal(refused.status, 400);
    assert.match(refused.body, /id="setting-storage__log_retention_days-error">Enter a whole number from 1 to 3650\./);
    assert.match(refused.body, /id="setting-storage__warn_threshold_percent-error">Enter a whole number from 1 to 100\./);
    assert.equal(server.config.storage.log_retention_days, 30, 'nothing saved');

    const unchanged = await send('POST', '/config/storage', {
      form: { storage__output_dir: output, storage__log_retention_days: '30', storage__warn_threshold_percent: '90', storage__stop_threshold_percent: '95' },
    });
    assert.equal(unchanged.location, '/config?notice=settings_unchanged#storage');
  });

  it('shows settings fixed by the environment as read-only, with where they come from', async () => {
    const page = await send('GET', '/config');
    assert.match(page.body, /id="setting-imaging__map_save_interval_seconds"[^>]* disabled/);
    assert.match(page.body, /Set by the environment variable DISK2ISO_IMAGING_MAP_SAVE_INTERVAL_SECONDS; change it there\./);
  });

  it("answers unknown page addresses with a page in the user's language, and API addresses with JSON", async () => {
    for (const [lang, heading] of [
      ['en', 'Not found'],
      ['de', 'Nicht gefunden'],
    ] as const) {
      const page = await send('GET', '/no/such/page?x=<script>', { lang });
      assert.equal(page.status, 404);
      assert.match(String(page.headers['content-type']), /^text\/html; charset=utf-8/);
      assert.match(page.body, new RegExp(`<html lang="${lang}">`));
      assert.match(page.body, new RegExp(`<h1>${heading}</h1>`));
      assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
      assertEscaped(page.body);
    }
    const api = await send('GET', '/api/v1/no-such-thing');
    assert.equal(api.status, 404);
    assert.equal(JSON.parse(api.body).error.code, 'not_found');
    const script = await send('GET', '/no/such/page', { json: true });
    assert.equal(JSON.parse(script.body).error.code, 'not_found');
  });

  it('records settings changes and archive deletions in the audit trail, and only what happened', async () => {
    const entries = async (eventType: string) => (await server.auth.audit.list({ eventType, limit: 100 })).items;
    const configBefore = (await entries('config')).length;
    const unchanged = await send('POST', '/config/storage', {
      form: { storage__output_dir: output, storage__log_retention_days: '30', storage__warn_threshold_percent: '90', storage__stop_threshold_percent: '95' },
    });
    assert.equal(unchanged.location, '/config?notice=settings_unchanged#storage');
    assert.equal((await entries('config')).length, configBefore, 'saving an unchanged form is no change');
    const refused = await send('POST', '/config/storage', { form: { storage__output_dir: output, storage__log_retention_days: '0' } });
    assert.equal(refused.status, 400);
    assert.equal((await entries('config')).length, configBefore, 'a refused change is no change');

    await send('POST', '/config/storage', {
      form: { storage__output_dir: output, storage__log_retention_days: '31', storage__warn_threshold_percent: '90', storage__stop_threshold_percent: '95' },
    });
    const [change] = await entries('config');
    assert.deepEqual(
      [change?.action, change?.user, change?.details],
      ['change', 'admin-user', { section: 'storage', changed: ['storage.log_retention_days'] }],
    );

    const archivesBefore = (await entries('archive')).length;
    const single = await catalogue('audited_single');
    const pair = [await catalogue('audited_one'), await catalogue('audited_two')];
    await send('POST', `/archive/${single}/delete`, { form: {} });
    await send('POST', '/archive/bulk-delete', { form: { ids: pair } });
    const failed = await send('POST', '/archive/bulk-delete', { form: { ids: ['archive_gone'] } });
    assert.equal(failed.location, '/archive?error=archive_not_found');
    const all = await entries('archive');
    const deletions = all.slice(0, all.length - archivesBefore).map((entry) => entry.details);
    assert.deepEqual(deletions, [{ ids: pair }, { id: single }], 'newest first; the failed one deleted nothing');
  });

  it('offers the notification settings in both languages and explains refused values next to them', async () => {
    const english = await send('GET', '/config');
    for (const label of ['Send e-mails', 'E-mail address', 'E-mail for these events', 'SMTP server', 'SMTP password', 'Offer browser notifications']) {
      assert.ok(english.body.includes(label), label);
    }
    assert.match(english.body, /id="setting-notifications__email_address"[^>]*maxlength="254"/);
    const german = await send('GET', '/config', { lang: 'de' });
    assert.match(german.body, /E-Mails senden/);
    assert.match(german.body, /SMTP-Passwort/);

    const refused = await send('POST', '/config/notifications', {
      form: {
        ...NOTIFICATION_FORM_DEFAULTS,
        notifications__email_on_completion: '1',
        notifications__email_address: 'not an address',
        notifications__browser: '1',
      },
    });
    assert.equal(refused.status, 400);
    assert.match(refused.body, /id="setting-notifications__email_address-error">Enter an e-mail address like name@example\.org\./);
    assert.match(refused.body, /id="setting-notifications__email_address"[^>]*value="not an address"/, 'what the user typed is kept');
    assert.equal(server.config.notifications.email_on_completion, false, 'nothing saved');

    const saved = await send('POST', '/config/notifications', {
      form: { ...NOTIFICATION_FORM_DEFAULTS, notifications__email_on_completion: '1', notifications__email_address: 'archive@example.org' },
    });
    assert.equal(saved.location, '/config?notice=settings_saved#notifications');
    assert.equal(server.config.notifications.email_on_completion, true);
    assert.equal(server.config.notifications.email_address, 'archive@example.org');
    assert.equal(server.config.notifications.browser, false);
    const page = await send('GET', '/config');
    assert.ok(!page.body.includes('data-browser-notifications'), 'browser notifications are no longer offered');
  });

  it('answers unknown and malformed ids with a not-found page', async () => {
    for (const url of ['/jobs/job_doesnotexist', '/jobs/..%2F..%2Fetc%2Fpasswd', '/archive/archive_nothere', '/archive/%3Cscript%3E']) {
      const response = await send('GET', url);
      assert.equal(response.status, 404, url);
      assert.match(response.body, /<h1>Not found<\/h1>/);
      assertEscaped(response.body);
    }
  });
});
