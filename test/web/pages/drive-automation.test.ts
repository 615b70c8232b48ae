import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../http/support.js';
import { type MadeIso, makeIso } from '../../tools/iso.js';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

/** The hidden fields and the button of the dashboard's "Image this disc" form for `driveId`, as a browser would send them. */
function noticeForm(body: string, driveId: string): { fields: Array<[string, string]>; button: string } | null {
  const notice = new RegExp(`id="disc-notice-${driveId}"[\\s\\S]*?<form method="post" action="/jobs"[^>]*>([\\s\\S]*?)</form>`).exec(body)?.[1];
  if (notice === undefined) return null;
  const fields = [...notice.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map(
    (match) => [match[1] ?? '', match[2] ?? ''] as [string, string],
  );
  return { fields, button: /<button[^>]*>([^<]*)<\/button>/.exec(notice)?.[1] ?? '' };
}

describe('drive automation on the pages', () => {
  let work: string;
  let drivePath: string;
  let other: MadeIso;
  let server: WebTestServer;
  let driveId: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-web-automation-'));
    const first = await makeIso({ dir: join(work, 'a'), label: 'SHELF_DISC', dataMiB: 1, files: 1, seed: 11 });
    other = await makeIso({ dir: join(work, 'b'), label: 'NEW_DISC', dataMiB: 1, files: 1, seed: 12 });
    drivePath = join(work, 'drive.iso');
    await copyFile(first.path, drivePath);
    server = await startWebTestServer({ devices: [drivePath], listen: false });
    const page = await server.send('GET', '/drives');
    driveId = /action="\/drives\/((?:[a-z0-9-]+\.)?file-[0-9a-f]+)\/automation"/.exec(page.body)?.[1] ?? '';
    assert.notEqual(driveId, '', 'the admin sees the automation form');
  });

  after(async () => {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('shows the form to admins only, and refuses a bad template without storing it', async () => {
    for (const role of ['operator', 'viewer'] as const) {
      const page = await server.send('GET', '/drives', { session: server.sessions[role] });
      assert.equal(page.status, 200);
      assert.ok(!page.body.includes(`/drives/${driveId}/automation`), role);
    }
    const refused = await server.send('POST', `/drives/${driveId}/automation`, {
      form: { mode: 'automatic', name_template: '{label}_{when}', read_attempts: '', verify: 'setting', duplicates: 'skip' },
    });
    assert.equal(refused.status, 400);
    assert.match(refused.body, new RegExp(`id="auto-${driveId}-name-error">This name template has an unknown placeholder`), 'the reason at the field');
    assert.match(
      refused.body,
      new RegExp(`id="auto-${driveId}-name" name="name_template" value="\\{label\\}_\\{when\\}"[^>]*aria-invalid="true"`),
      'the input is kept',
    );
    assert.match(refused.body, new RegExp(`aria-describedby="auto-${driveId}-name-help auto-${driveId}-name-error"`));
    assert.match(refused.body, /<option value="automatic" selected>/, 'the chosen mode is kept');

    const several = await server.send('POST', `/drives/${driveId}/automation`, {
      form: { mode: 'sometimes', name_template: '{label}', read_attempts: '1000', checksums: ['crc64'], verify: 'setting', duplicates: 'skip' },
    });
    assert.equal(several.status, 400);
    for (const field of ['mode', 'attempts', 'checksums'])
      assert.match(several.body, new RegExp(`<p class="field-error" id="auto-${driveId}-${field}-error">`), `every field error at once: ${field}`);
    assert.match(several.body, new RegExp(`id="auto-${driveId}-attempts"[^>]*value="1000"`), 'the typed number is shown again');
    assert.match(several.body, /Enter a whole number from 0 to 100\./);
    assert.match(
      (
        await server.send('POST', `/drives/${driveId}/automation`, {
          lang: 'de',
          form: { mode: 'automatic', name_template: '{x}', verify: 'setting', duplicates: 'skip' },
        })
      ).body,
      /Diese Namensvorlage/,
    );
    const operator = await server.send('POST', `/drives/${driveId}/automation`, {
      session: server.sessions.operator,
      form: { mode: 'automatic', name_template: '{label}', read_attempts: '', verify: 'setting', duplicates: 'skip' },
    });
    assert.equal(operator.status, 403);
    const page = await server.send('GET', '/drives');
    assert.match(page.body, /<option value="manual" selected>/);
  });

  it('in notify mode, an inserted disc waits on the dashboard with a button that images it as the profile says', { timeout: 60_000 }, async () => {
    const saved = await server.send('POST', `/drives/${driveId}/automation`, {
      form: { mode: 'notify', name_template: '{label}_{counter}', read_attempts: '2', checksums: ['sha1'], verify: 'no', eject: '1', duplicates: 'ask' },
    });
    assert.equal(saved.location, '/drives?notice=automation_saved');
    const page = await server.send('GET', '/drives');
    assert.match(page.body, /<option value="notify" selected>/);
    assert.match(page.body, new RegExp(`id="auto-${driveId}-name" name="name_template" value="\\{label\\}_\\{counter\\}"`));

    assert.equal(noticeForm((await server.send('GET', '/')).body, driveId), null, 'the disc there at start raises nothing');
    const staged = join(work, 'staged.iso');
    await copyFile(other.path, staged);
    await rename(staged, drivePath);
    let form: ReturnType<typeof noticeForm> = null;
    await waitFor('the notice on the dashboard', async () => {
      form = noticeForm((await server.send('GET', '/')).body, driveId);
      return form !== null;
    });
    assert.ok(form);
    const { fields, button } = form as { fields: Array<[string, string]>; button: string };
    assert.equal(button, 'Image this disc as NEW_DISC_1');
    assert.deepEqual(Object.fromEntries(fields.filter(([name]) => name !== '_csrf')), {
      device: driveId,
      name: 'NEW_DISC_1',
      read_attempts: '2',
      checksums: 'sha1',
      eject: '1',
      priority: 'normal',
    });
    assert.equal((await server.jobs.list({ limit: 10, offset: 0, sort: 'created' })).total, 0, 'notify mode queues nothing by itself');

    const created = await server.send('POST', '/jobs', { form: Object.fromEntries(fields.filter(([name]) => name !== '_csrf')) });
    assert.equal(created.status, 303, created.body.slice(0, 300));
    const jobs = await server.jobs.list({ limit: 10, offset: 0, sort: 'created' });
    assert.deepEqual(
      jobs.jobs.map((job) => [job.name, job.device_id, job.options.read_attempts, job.options.verify, job.options.checksums, job.options.eject]),
      [['NEW_DISC_1', driveId, 2, false, ['sha1'], true]],
    );
    await waitFor('the notice to go once the disc is queued', async () => noticeForm((await server.send('GET', '/')).body, driveId) === null);
  });
});
