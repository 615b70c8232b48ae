import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

const HOSTILE = '<script>alert(9)</script>';

describe('the archive page as a catalogue: table view, bulk edit, descriptions, categories', () => {
  let server: WebTestServer;
  const ids: string[] = [];

  before(async () => {
    server = await startWebTestServer({ listen: false });
    for (const [index, name] of ['alpha', 'beta', 'gamma'].entries()) {
      const archive = await server.archiveRepository.create({
        filename: `${name}.iso`,
        path: join(server.config.storage.output_dir, `${name}.iso`),
        sizeBytes: 1000 * (index + 1),
        checksums: { sha256: index < 2 ? 'ee'.repeat(32) : 'ff'.repeat(32) },
        metadata: { label: `Job ${name}` },
        source: {
          deviceId: 'sr0',
          devicePath: '/dev/sr0',
          discKind: 'data',
          volumeLabel: `VOL_${name.toUpperCase()}`,
          volumeId: null,
          mediaType: 'cd',
          fileSystems: [],
        },
      });
      ids.push(archive.id);
    }
  });
  after(async () => {
    await server?.close();
  });

  it('shows the table view once chosen, for that user only, with sortable columns and both names', async () => {
    assert.doesNotMatch((await server.send('GET', '/archive')).body, /data-archive-table/, 'cards by default');
    const chosen = await server.send('POST', '/archive/view', { form: { view: 'table', return_to: '/archive?sort=name' } });
    assert.equal(chosen.status, 303);
    assert.equal(chosen.location, '/archive?sort=name');
    const table = (await server.send('GET', '/archive?sort=name')).body;
    assert.match(table, /data-archive-table/);
    assert.match(table, /<th scope="col" class="col-name" aria-sort="ascending"><a href="\/archive\?sort=name&amp;order=desc">/);
    assert.match(
      table,
      /<a href="\/archive\/archive_[0-9a-f]+" id="row-archive_[0-9a-f]+-name">Job alpha<\/a> <span class="muted volume-label">VOL_ALPHA<\/span>/,
    );
    assert.equal((table.match(/data-duplicate/g) ?? []).length, 2, 'alpha and beta are the same image');
    assert.match(table, /data-archive-state="unverified">Unverified</);
    assert.doesNotMatch((await server.send('GET', '/archive', { session: server.sessions.viewer })).body, /data-archive-table/, 'the viewer still sees cards');
    assert.equal((await server.send('POST', '/archive/view', { form: { view: 'grid' } })).status, 303);
    assert.match((await server.send('GET', '/archive')).body, /data-archive-table/, 'an unknown view changes nothing');
  });

  it('edits several images at once through the bulk form, and refuses bad input changing nothing', async () => {
    const category = await server.send('POST', '/archive/categories', { form: { name: 'Family' } });
    assert.equal(category.location, '/archive/categories?notice=category_saved');
    const page = (await server.send('GET', '/archive/categories')).body;
    const categoryId = /action="\/archive\/categories\/(category_[0-9a-f]+)"/.exec(page)?.[1] ?? '';
    assert.notEqual(categoryId, '');

    const edited = await server.send('POST', '/archive/bulk-edit', {
      form: { ids: [ids[0] ?? '', ids[1] ?? ''], add_tags: 'Summer, Beach', remove_tags: '', category: categoryId, rating: '4', return_to: '/archive' },
    });
    assert.equal(edited.location, '/archive?notice=archives_edited');
    for (const id of [ids[0], ids[1]]) {
      const archive = await server.archives.get(id ?? '');
      assert.deepEqual([archive.metadata.tags, archive.metadata.category_id, archive.metadata.rating], [['summer', 'beach'], categoryId, 4]);
    }
    assert.deepEqual((await server.archives.get(ids[2] ?? '')).metadata.tags, []);

    const filtered = (await server.send('GET', `/archive?category=${categoryId}&rating=4&tag=beach`)).body;
    assert.match(filtered, /Showing 1–2 of 2 items/);

    const refused = await server.send('POST', '/archive/bulk-edit', { form: { ids: [ids[0] ?? ''], rating: '9', return_to: '/archive' } });
    assert.equal(refused.location, '/archive?error=validation_failed');
    assert.equal((await server.archives.get(ids[0] ?? '')).metadata.rating, 4);
    const operator = await server.send('POST', '/archive/bulk-edit', { session: server.sessions.operator, form: { ids: [ids[0] ?? ''], rating: '1' } });
    assert.equal(operator.status, 403, 'an operator sees the archive, an admin describes it');

    const trail = await server.auth.audit.list({ eventType: 'archive', action: 'bulk_edit' });
    assert.equal(trail.items.length, 1, 'the refused edits are not in the trail');
  });

  it('edits category, rating and custom fields on the image page and shows identical images', async () => {
    const id = ids[0] ?? '';
    const saved = await server.send('POST', `/archive/${id}`, {
      form: { label: 'Job alpha', tags: 'summer', notes: '', category: '', rating: '2', custom_fields: `Shelf: B3\nBox: ${HOSTILE}` },
    });
    assert.equal(saved.status, 303);
    const archive = await server.archives.get(id);
    assert.deepEqual(archive.metadata.custom_fields, { Shelf: 'B3', Box: HOSTILE });
    assert.equal(archive.metadata.category_id, null);
    assert.equal(archive.metadata.rating, 2);

    const detail = (await server.send('GET', `/archive/${id}`, { session: server.sessions.viewer })).body;
    assert.ok(!detail.includes(HOSTILE), 'custom field values are escaped');
    assert.match(detail, /<dt>Shelf<\/dt><dd>B3<\/dd>/);
    assert.match(detail, new RegExp(`data-duplicates>\\s*<li><a href="/archive/${ids[1]}">Job beta</a>`));

    const bad = await server.send('POST', `/archive/${id}`, {
      form: { label: 'x', tags: '', notes: '', category: '', rating: '', custom_fields: 'no colon here' },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body, /id="archive-fields-error"/);
    assert.deepEqual((await server.archives.get(id)).metadata.custom_fields, { Shelf: 'B3', Box: HOSTILE }, 'nothing changed');
  });

  it('lets only admins manage categories', async () => {
    assert.equal((await server.send('GET', '/archive/categories', { session: server.sessions.operator })).status, 403);
    assert.equal((await server.send('POST', '/archive/categories', { session: server.sessions.viewer, form: { name: 'Nope' } })).status, 403);
    const duplicate = await server.send('POST', '/archive/categories', { form: { name: 'family' } });
    assert.equal(duplicate.location, '/archive/categories?error=category_exists');
    const page = (await server.send('GET', '/archive/categories')).body;
    const categoryId = /action="\/archive\/categories\/(category_[0-9a-f]+)"/.exec(page)?.[1] ?? '';
    assert.equal(
      (await server.send('POST', `/archive/categories/${categoryId}`, { form: { name: 'Relatives' } })).location,
      '/archive/categories?notice=category_saved',
    );
    assert.match((await server.send('GET', '/archive/categories')).body, /value="Relatives"/);
    assert.equal((await server.send('POST', `/archive/categories/${categoryId}/delete`, { form: {} })).location, '/archive/categories?notice=category_deleted');
    assert.match((await server.send('GET', '/archive/categories')).body, /No categories yet\./);
  });
});
