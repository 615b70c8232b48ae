import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ArchiveSource } from '../../src/archive/model.js';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { openDataDirDatabase } from '../support/database.js';
import { type TestServer, startTestServer } from './support.js';

const source = (volumeLabel: string): ArchiveSource => ({
  deviceId: 'sr0',
  devicePath: '/dev/sr0',
  discKind: 'data',
  volumeLabel,
  volumeId: null,
  mediaType: 'cd',
  fileSystems: ['iso9660', 'joliet'],
});

describe('the catalogue over HTTP: describe, search, bulk edit, export and import', () => {
  let service: TestServer;
  const ids: Record<string, string> = {};
  const SAME = 'ab'.repeat(32);

  async function send(method: string, url: string, body?: unknown) {
    const response = await service.server.app.inject({
      method: method as 'GET',
      url,
      headers: body === undefined ? service.authHeaders : { ...service.authHeaders, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    const json = String(response.headers['content-type']).startsWith('application/json') && method !== 'HEAD' ? response.json() : null;
    return { status: response.statusCode, body: json, text: response.body, headers: response.headers };
  }

  before(async () => {
    service = await startTestServer({ listen: false });
    const database = await openDataDirDatabase(service.dataDir);
    try {
      const archives = createArchiveRepository(database);
      const create = async (key: string, label: string, checksums: Record<string, string> = {}) => {
        ids[key] = (
          await archives.create({
            filename: `${key}.iso`,
            path: join(service.outputDir, `${key}.iso`),
            sizeBytes: 2048,
            checksums,
            metadata: { label },
            source: source(key.toUpperCase()),
          })
        ).id;
      };
      await create('holiday', 'Holiday 2009', { sha256: SAME });
      await create('holiday_copy', 'Holiday copy', { sha256: SAME });
      await create('taxes', '=HYPERLINK("http://evil")');
    } finally {
      await database.close();
    }
  });
  after(async () => {
    await service?.close();
  });

  it('edits every metadata field, normalising tags, and refuses bad values without changing anything', async () => {
    const category = await send('POST', '/api/v1/archive-categories', { name: '  Family   photos ' });
    assert.equal(category.status, 201);
    assert.equal(category.body.name, 'Family photos');
    assert.equal((await send('POST', '/api/v1/archive-categories', { name: 'FAMILY PHOTOS' })).body.error.code, 'category_exists');

    const patched = await send('PATCH', `/api/v1/archives/${ids.holiday}`, {
      metadata: {
        tags: ['  Road   Trip ', 'road trip', 'Beach'],
        notes: 'Grandma scanned these',
        category_id: category.body.id,
        rating: 5,
        custom_fields: { Shelf: 'B3' },
      },
    });
    assert.equal(patched.status, 200, patched.text);
    assert.deepEqual(patched.body.metadata, {
      label: 'Holiday 2009',
      tags: ['road trip', 'beach'],
      notes: 'Grandma scanned these',
      category_id: category.body.id,
      rating: 5,
      custom_fields: { Shelf: 'B3' },
    });
    assert.equal(patched.body.condition, 'unverified');
    assert.deepEqual(patched.body.duplicates, [ids.holiday_copy]);

    const tooManyFields = Object.fromEntries(Array.from({ length: 21 }, (_, index) => [`k${index}`, 'v']));
    for (const metadata of [
      { rating: 6 },
      { rating: 0 },
      { category_id: 'category_unknown1' },
      { custom_fields: tooManyFields },
      { custom_fields: { '': 'empty key' } },
      { custom_fields: { key: 'x'.repeat(501) } },
      { custom_fields: { key: 'line\nbreak' } },
      { tags: ['a,b'] },
    ]) {
      const refused = await send('PATCH', `/api/v1/archives/${ids.holiday}`, { metadata });
      assert.equal(refused.status, 400, `${JSON.stringify(metadata)}: ${refused.text}`);
    }
    const unchanged = await send('GET', `/api/v1/archives/${ids.holiday}`);
    assert.deepEqual(unchanged.body.metadata, patched.body.metadata);
  });

  it('finds discs by tag, notes, custom field and volume label, with filters, ranked', async () => {
    const search = async (query: string) => (await send('GET', `/api/v1/archives/search?${query}`)).body.archives.map((archive: { id: string }) => archive.id);
    assert.deepEqual(await search('q=grandma'), [ids.holiday]);
    assert.deepEqual(await search('q=b3'), [ids.holiday]);
    assert.deepEqual(await search('q=taxes'), [ids.taxes], 'the volume label');
    assert.deepEqual(await search('q=holiday&sort=name'), [ids.holiday, ids.holiday_copy]);
    assert.deepEqual(await search('q=holiday&min_rating=4'), [ids.holiday]);
    assert.deepEqual(await search('tag=Road%20Trip'), [ids.holiday], 'a tag filter is normalised like the tags');
    assert.deepEqual(await search('q=holiday&condition=ok'), []);
    assert.equal((await send('GET', '/api/v1/archives/search?condition=broken')).status, 400);
    assert.equal((await send('GET', '/api/v1/archives/search?q="OR*')).status, 200, 'query syntax is plain text');
  });

  it('bulk-edits several archives at once, all or nothing, and audits it', async () => {
    const edited = await send('POST', '/api/v1/archives/bulk-edit', {
      ids: [ids.holiday, ids.taxes],
      add_tags: ['Checked'],
      remove_tags: ['beach'],
      rating: 2,
    });
    assert.equal(edited.status, 200, edited.text);
    assert.equal(edited.body.updated, 2);
    const holiday = (await send('GET', `/api/v1/archives/${ids.holiday}`)).body;
    assert.deepEqual(holiday.metadata.tags, ['road trip', 'checked']);
    assert.equal(holiday.metadata.rating, 2);

    const refused = await send('POST', '/api/v1/archives/bulk-edit', { ids: [ids.taxes, 'archive_nothere1'], rating: 4 });
    assert.equal(refused.status, 404);
    assert.equal((await send('GET', `/api/v1/archives/${ids.taxes}`)).body.metadata.rating, 2, 'nothing changed');

    const trail = await service.server.auth.audit.list({ eventType: 'archive', action: 'bulk_edit' });
    assert.equal(trail.items.length, 1);
    assert.deepEqual(trail.items[0]?.details['ids'], [ids.holiday, ids.taxes]);
  });

  it('exports CSV safe from formula injection and JSON that imports back idempotently', async () => {
    const csv = await send('GET', '/api/v1/archives/export?format=csv');
    assert.equal(csv.status, 200);
    assert.match(String(csv.headers['content-type']), /^text\/csv/);
    assert.match(String(csv.headers['content-disposition']), /^attachment; filename="disk2iso-catalogue-\d{4}-\d{2}-\d{2}\.csv"$/);
    const lines = csv.text.replace(/^\ufeff/, '').split('\r\n');
    assert.equal(lines[0]?.split(',')[0], '"title"');
    assert.equal(lines.length, 5, 'a header, three rows and the final line break');
    assert.ok(
      lines.some((line) => line.startsWith('"\'=HYPERLINK(""http://evil"")"')),
      csv.text,
    );

    const partial = await send('GET', '/api/v1/archives/export?format=csv&q=grandma');
    assert.equal(partial.text.split('\r\n').length, 3, 'a search result only');

    const exported = await send('GET', '/api/v1/archives/export?format=json');
    const document = JSON.parse(exported.text);
    assert.equal(document.format, 'disk2iso-catalogue');
    assert.deepEqual(document.categories, ['Family photos']);
    assert.equal(document.archives.length, 3);

    const again = await send('POST', '/api/v1/archives/import', document);
    assert.equal(again.status, 200, again.text);
    assert.deepEqual([again.body.created, again.body.updated, again.body.skipped], [0, 0, 3], 'importing what is there changes nothing');

    // The same catalogue elsewhere: one description changed, one image new, one outside the output directory.
    const entries = document.archives.map((entry: { path: string; metadata: { notes: string } }) => ({ ...entry }));
    entries[0] = { ...entries[0], metadata: { ...entries[0].metadata, notes: 'moved machines' } };
    entries.push({ ...entries[1], path: join(service.outputDir, 'new.iso'), filename: 'new.iso', checksums: {} });
    entries.push({ ...entries[1], path: '/etc/passwd', filename: 'passwd', checksums: {} });
    entries.push({ ...entries[1], path: join(service.outputDir, '..', 'escape.iso'), filename: 'escape.iso', checksums: {} });
    const moved = await send('POST', '/api/v1/archives/import', { ...document, archives: entries });
    assert.equal(moved.status, 200, moved.text);
    assert.deepEqual([moved.body.created, moved.body.updated, moved.body.skipped], [1, 1, 4]);
    assert.deepEqual(
      moved.body.entries.filter((entry: { reason?: string }) => entry.reason === 'outside_output_dir').map((entry: { index: number }) => entry.index),
      [4, 5],
    );
    const twice = await send('POST', '/api/v1/archives/import', { ...document, archives: entries });
    assert.deepEqual([twice.body.created, twice.body.updated], [0, 0], 'idempotent');

    const before = (await send('GET', '/api/v1/archives?limit=100')).body.total;
    for (const bad of [
      { ...document, format: 'other' },
      { ...document, archives: [{ ...entries[0], metadata: { ...entries[0].metadata, rating: 9 } }] },
      { ...document, archives: [{ ...entries[0], path: 'relative\u0000.iso' }] },
      { ...document, archives: [{ ...entries[0], extra: true }] },
    ]) {
      const refused = await send('POST', '/api/v1/archives/import', bad);
      assert.equal(refused.status, 400, refused.text);
    }
    assert.equal((await send('GET', '/api/v1/archives?limit=100')).body.total, before, 'a refused import adds nothing');
  });

  it('uncategorises archives when their category is deleted', async () => {
    const categories = (await send('GET', '/api/v1/archive-categories')).body.categories;
    const [family] = categories;
    assert.equal((await send('DELETE', `/api/v1/archive-categories/${family.id}`)).status, 204);
    assert.equal((await send('GET', `/api/v1/archives/${ids.holiday}`)).body.metadata.category_id, null);
    assert.equal((await send('DELETE', `/api/v1/archive-categories/${family.id}`)).status, 404);
  });
});
