import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ArchiveSource } from '../../src/archive/model.js';
import { type ArchiveRepository, type CreateArchiveInput, createArchiveRepository, matchTerms } from '../../src/db/archive-repository.js';
import { type CategoryRepository, createCategoryRepository, createPreferenceRepository } from '../../src/db/catalogue-repository.js';
import type { Database } from '../../src/db/database.js';
import { ConflictError, NotFoundError, ValidationError } from '../../src/errors.js';
import { withDatabase } from './support.js';

const source = (volumeLabel: string): ArchiveSource => ({
  deviceId: 'sr0',
  devicePath: '/dev/sr0',
  discKind: 'data',
  volumeLabel,
  volumeId: null,
  mediaType: 'cd',
  fileSystems: ['iso9660'],
});

function image(name: string, more: Partial<CreateArchiveInput> = {}): CreateArchiveInput {
  return { filename: `${name}.iso`, path: `/out/${name}.iso`, sizeBytes: 1000, checksums: {}, source: source(name.toUpperCase()), ...more };
}

async function withCatalogue(work: (archives: ArchiveRepository, categories: CategoryRepository, database: Database) => Promise<void>): Promise<void> {
  await withDatabase(async (database) => work(createArchiveRepository(database), createCategoryRepository(database), database));
}

const ids = (result: { items: Array<{ filename: string }> }) => result.items.map((item) => item.filename);

describe('catalogue repository', () => {
  it('finds discs by name, label, volume label, tags, notes and custom field values, best match first', async () => {
    await withCatalogue(async (archives) => {
      await archives.create(image('holiday_2009', { metadata: { label: 'Road trip', tags: ['photos'], notes: 'Scanned by Grandma' } }));
      await archives.create(image('backup', { metadata: { label: 'Work backup', customFields: { shelf: 'Kitchen drawer' } } }));
      await archives.create(image('photos_only', { metadata: { label: 'Photos', tags: ['photos'], notes: 'photos photos' } }));

      assert.deepEqual(ids(await archives.list({ match: 'grandma' })), ['holiday_2009.iso']);
      assert.deepEqual(ids(await archives.list({ match: 'kitch' })), ['backup.iso'], 'a word is a prefix');
      assert.deepEqual(ids(await archives.list({ match: 'BACKUP' })), ['backup.iso'], 'volume label and name, any case');
      assert.deepEqual(ids(await archives.list({ match: 'road grandma' })), ['holiday_2009.iso'], 'every word must occur');
      assert.deepEqual(ids(await archives.list({ match: 'road kitchen' })), []);
      // A label and a tag hit outweigh a tag hit with notes.
      assert.deepEqual(ids(await archives.list({ match: 'photos' })), ['photos_only.iso', 'holiday_2009.iso']);
      assert.equal((await archives.list({ match: 'photos' })).total, 2);
    });
  });

  it('treats query syntax as plain text and finds nothing for punctuation alone', async () => {
    await withCatalogue(async (archives) => {
      await archives.create(image('a', { metadata: { label: 'NOT OR AND' } }));
      assert.deepEqual(matchTerms('"x* OR y'), [
        { text: '"x*', prefix: true },
        { text: 'OR', prefix: true },
        { text: 'y', prefix: true },
      ]);
      assert.deepEqual(ids(await archives.list({ match: 'NOT' })), ['a.iso']);
      for (const hostile of ['"', 'label:x', '*', 'a OR', 'NEAR(a b)', ')', 'nul\u0000byte', '\u202Eevil']) await archives.list({ match: hostile });
      assert.deepEqual(
        matchTerms('nul\u0000byte').map((term) => term.text),
        ['nul', 'byte'],
      );
      assert.deepEqual(await archives.list({ match: '%%% ***' }), { items: [], total: 0 });
    });
  });

  it('folds accents alike on both engines, and ß to ss on PostgreSQL alone', async () => {
    await withCatalogue(async (archives, _categories, database) => {
      await archives.create(image('street', { metadata: { label: 'Große Straße', notes: 'Café Müller' } }));
      for (const query of ['straße', 'STRASSE', 'cafe', 'müller', 'MULLER', 'gro'])
        assert.deepEqual(
          ids(await archives.list({ match: query })),
          query === 'STRASSE' && database.dialect === 'sqlite' ? [] : ['street.iso'],
          // unaccent (PostgreSQL's index) maps ß to ss; FTS5's remove_diacritics keeps ß a letter of its own.
          `${database.dialect}: ${query}`,
        );
    });
  });

  it('keeps the index in step with updates, bulk edits and deletes', async () => {
    await withCatalogue(async (archives, _categories, database) => {
      const one = await archives.create(image('one', { metadata: { label: 'Alpha' } }));
      const two = await archives.create(image('two'));
      await archives.updateMetadata(one.id, { label: 'Beta' });
      assert.deepEqual(ids(await archives.list({ match: 'alpha' })), []);
      assert.deepEqual(ids(await archives.list({ match: 'beta' })), ['one.iso']);
      await archives.bulkUpdateMetadata([one.id, two.id], { addTags: ['gamma'] });
      assert.deepEqual(ids(await archives.list({ match: 'gamma', sort: 'name' })), ['one.iso', 'two.iso']);
      await archives.delete(one.id);
      assert.deepEqual(ids(await archives.list({ match: 'gamma' })), ['two.iso']);
      const indexed = await database.kysely.selectFrom('archives_fts').select('archive_id').execute();
      assert.deepEqual(indexed, [{ archive_id: two.id }]);
    });
  });

  it('filters by category, tag, rating and badge condition and sorts by rating with unrated last', async () => {
    await withCatalogue(async (archives, categories) => {
      const films = await categories.create('Films');
      const a = await archives.create(image('a', { metadata: { tags: ['x'], rating: 5, categoryId: films.id } }));
      await archives.create(image('b', { metadata: { rating: 2 } }));
      await archives.create(image('c', { badBytes: 2048 }));
      await archives.recordVerification(a.id, { startedAt: new Date(), finishedAt: new Date(), ok: true, results: {}, seconds: 1 });

      assert.deepEqual(ids(await archives.list({ categoryId: films.id })), ['a.iso']);
      assert.deepEqual(ids(await archives.list({ tag: 'x' })), ['a.iso']);
      assert.deepEqual(ids(await archives.list({ minRating: 2, sort: 'name' })), ['a.iso', 'b.iso']);
      assert.deepEqual(ids(await archives.list({ sort: 'rating' })), ['a.iso', 'b.iso', 'c.iso']);
      assert.deepEqual(ids(await archives.list({ sort: 'rating', order: 'asc' })), ['b.iso', 'a.iso', 'c.iso']);
      assert.deepEqual(ids(await archives.list({ conditions: ['ok'] })), ['a.iso']);
      assert.deepEqual(ids(await archives.list({ conditions: ['unverified'] })), ['b.iso']);
      assert.deepEqual(ids(await archives.list({ conditions: ['completed_with_errors'] })), ['c.iso']);
      assert.deepEqual(ids(await archives.list({ conditions: ['damaged', 'missing'] })), []);
    });
  });

  it('bulk-edits all or nothing and refuses an unknown category', async () => {
    await withCatalogue(async (archives, categories) => {
      const music = await categories.create('Music');
      const a = await archives.create(image('a', { metadata: { tags: ['old', 'keep'] } }));
      const b = await archives.create(image('b'));
      assert.equal(await archives.bulkUpdateMetadata([a.id, b.id], { addTags: ['new'], removeTags: ['old'], categoryId: music.id, rating: 4 }), 2);
      const edited = await archives.get(a.id);
      assert.deepEqual(edited?.metadata, { label: '', tags: ['keep', 'new'], notes: '', categoryId: music.id, rating: 4, customFields: {} });
      assert.deepEqual((await archives.get(b.id))?.metadata.tags, ['new']);

      await assert.rejects(archives.bulkUpdateMetadata([a.id, 'archive_gone'], { rating: 1 }), NotFoundError);
      assert.equal((await archives.get(a.id))?.metadata.rating, 4, 'nothing changed');
      await assert.rejects(archives.bulkUpdateMetadata([a.id], { categoryId: 'category_gone' }), ValidationError);
      await assert.rejects(archives.updateMetadata(a.id, { categoryId: 'category_gone' }), ValidationError);

      assert.equal(await categories.delete(music.id), true);
      assert.equal((await archives.get(a.id))?.metadata.categoryId, null, 'deleting a category uncategorises its archives');
    });
  });

  it('keeps category names unique regardless of case and renames them', async () => {
    await withCatalogue(async (_archives, categories) => {
      const films = await categories.create('Films');
      await assert.rejects(categories.create('FILMS'), ConflictError);
      await categories.create('Audio');
      assert.deepEqual(
        (await categories.list()).map((category) => category.name),
        ['Audio', 'Films'],
      );
      assert.equal((await categories.rename(films.id, 'Movies')).name, 'Movies');
      await assert.rejects(categories.rename(films.id, 'audio'), ConflictError);
      await assert.rejects(categories.rename('category_gone', 'X'), NotFoundError);
      assert.equal(await categories.delete('category_gone'), false);
    });
  });

  it('finds identical images by SHA-256', async () => {
    await withCatalogue(async (archives) => {
      const sha = 'ab'.repeat(32);
      const a = await archives.create(image('a', { checksums: { sha256: sha } }));
      const b = await archives.create(image('b', { checksums: { sha256: sha } }));
      await archives.create(image('c', { checksums: { sha256: 'cd'.repeat(32) } }));
      const found = await archives.withSha256([sha, 'ef'.repeat(32)]);
      assert.deepEqual(
        found.get(sha)?.map((record) => record.id),
        [a.id, b.id],
      );
      assert.equal(found.size, 1);
    });
  });

  it('remembers a preference per user', async () => {
    await withDatabase(async (database) => {
      const preferences = createPreferenceRepository(database);
      assert.equal(await preferences.get('alice', 'archive.view'), null);
      await preferences.set('alice', 'archive.view', 'table');
      await preferences.set('alice', 'archive.view', 'cards');
      await preferences.set('bob', 'archive.view', 'table');
      assert.equal(await preferences.get('alice', 'archive.view'), 'cards');
      assert.equal(await preferences.get('bob', 'archive.view'), 'table');
    });
  });
});
