import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMaintenanceTaskRepository } from '../../../src/db/maintenance-task-repository.js';
import { waitFor } from '../../http/support.js';
import { openDataDirDatabase } from '../../support/database.js';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

const source = { deviceId: null, devicePath: null, discKind: 'data' as const, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] };

describe('the image page: verification history with its origins, recovery data, adopting', () => {
  let web: WebTestServer;
  let archiveId: string;

  before(async () => {
    web = await startWebTestServer({ listen: false });
    await mkdir(web.config.storage.output_dir, { recursive: true });
    const path = join(web.config.storage.output_dir, 'page.iso');
    await writeFile(path, 'image bytes');
    archiveId = (await web.archiveRepository.create({ filename: 'page.iso', path, sizeBytes: 11, checksums: { sha256: 'a'.repeat(64) }, source })).id;
    await web.archiveRepository.recordVerification(archiveId, {
      startedAt: new Date(),
      finishedAt: new Date(),
      ok: false,
      origin: 'schedule',
      results: { algorithms: [{ algorithm: 'sha256', expected: 'a'.repeat(64), actual: '<b>'.padEnd(64, 'b') }] },
      seconds: 1,
    });
  });

  after(async () => {
    await web?.close();
  });

  it('shows who started each verification and, for a failed one, the expected and found checksums, escaped', async () => {
    const page = await web.send('GET', `/archive/${archiveId}`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Schedule/);
    assert.ok(page.body.includes('a'.repeat(64)));
    assert.ok(page.body.includes(`&lt;b&gt;${'b'.repeat(61)}`), 'the found checksum is escaped');
    assert.ok(!page.body.includes('<b>bbb'));
    assert.match(page.body, /No recovery data/);
    assert.match(page.body, new RegExp(`href="/archive/${archiveId}/recovery"`));
  });

  it('asks before creating recovery data and refuses what it cannot do with a clear message', async () => {
    const ask = await web.send('GET', `/archive/${archiveId}/recovery`);
    assert.equal(ask.status, 200);
    assert.match(ask.body, /name="redundancy_percent"/);
    const repair = await web.send('POST', `/archive/${archiveId}/repair`, { form: {} });
    assert.notEqual(repair.status, 200);
    const followed = await web.send('GET', repair.location ?? `/archive/${archiveId}`);
    assert.match(followed.body, /no recovery data|create it first/i);
    const viewer = await web.send('GET', `/archive/${archiveId}/recovery`, { session: web.sessions.viewer });
    assert.equal(viewer.status, 403);
  });

  it('lets an admin adopt only from allowed folders', async () => {
    const form = await web.send('GET', '/archive/adopt');
    assert.equal(form.status, 200);
    const refused = await web.send('POST', '/archive/adopt', { form: { folder: '/etc' } });
    const shown = await web.send('GET', refused.location ?? '/archive/adopt');
    assert.match(shown.body, /only be adopted from the output directory/);
    assert.equal((await web.send('GET', '/archive/adopt', { session: web.sessions.operator })).status, 403);
  });

  it('lists the background tasks on the adoption page, with what an adoption did', async () => {
    assert.match((await web.send('GET', '/archive/adopt')).body, /No adoption or recovery task has run yet/);
    const started = await web.send('POST', '/archive/adopt', { form: { folder: web.config.storage.output_dir } });
    assert.equal(started.location, '/archive/adopt?notice=archive_adopt_started', 'back to the page that shows its progress');
    await waitFor('the adoption to finish', async () => /<td[^>]*>Done<\/td>/.test((await web.send('GET', '/archive/adopt')).body));
    const page = (await web.send('GET', '/archive/adopt')).body;
    assert.match(page, /Adopt the folder <code class="path">[^<]+<\/code>/);
    assert.match(page, /0 adopted, 1 skipped, 0 failed/, 'page.iso is archived already');
  });

  it('shows the recovery work running on an image, and how far it is', async () => {
    const database = await openDataDirDatabase(web.config.data_dir);
    try {
      const tasks = createMaintenanceTaskRepository(database);
      // Claimed here, so the service's worker leaves it alone: a task under way at a known step.
      let claimed = null;
      for (let attempt = 0; attempt < 5 && claimed === null; attempt += 1) {
        const queued = await tasks.enqueue({ kind: 'par2_create', archiveId, params: { redundancy_percent: 10 }, requestedBy: 'admin' });
        const next = await tasks.claimNext();
        if (next?.id === queued.id) claimed = next;
      }
      assert.ok(claimed !== null);
      await tasks.progress(claimed.id, 42);
      const page = (await web.send('GET', `/archive/${archiveId}`)).body;
      assert.match(page, /data-recovery-task>Create recovery data for page\.iso: Running, 42 %/);
      await tasks.finish(claimed.id, { status: 'cancelled' });
      assert.ok(!(await web.send('GET', `/archive/${archiveId}`)).body.includes('data-recovery-task'), 'nothing once it ended');
    } finally {
      await database.close();
    }
  });
});
