import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { createArchiveFiles } from '../../src/archive/files.js';
import type { ArchiveSource } from '../../src/archive/model.js';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import type { Database } from '../../src/db/database.js';
import { type FileIndexRepository, type IndexedEntry, createFileIndexRepository } from '../../src/db/file-index-repository.js';
import { ValidationError } from '../../src/errors.js';
import { withDatabase } from './support.js';

const source: ArchiveSource = {
  deviceId: 'sr0',
  devicePath: '/dev/sr0',
  discKind: 'data',
  volumeLabel: null,
  volumeId: null,
  mediaType: 'cd',
  fileSystems: ['iso9660'],
};

const file = (path: string): IndexedEntry => ({ path, name: path.slice(path.lastIndexOf('/') + 1), kind: 'file', sizeBytes: 1, mtime: null });

async function withIndex(work: (index: FileIndexRepository, archiveIds: [string, string], database: Database) => Promise<void>): Promise<void> {
  await withDatabase(async (database) => {
    const archives = createArchiveRepository(database);
    const trip = await archives.create({
      filename: 'trip.iso',
      path: '/out/trip.iso',
      sizeBytes: 1,
      createdAt: new Date('2026-01-01T00:00:00Z'),
      checksums: {},
      source,
      metadata: { label: 'Crete 2019' },
    });
    const misc = await archives.create({
      filename: 'misc.iso',
      path: '/out/misc.iso',
      sizeBytes: 1,
      createdAt: new Date('2026-01-02T00:00:00Z'),
      checksums: {},
      source,
    });
    await work(createFileIndexRepository(database), [trip.id, misc.id], database);
  });
}

/** The search as the API runs it: the query's words become structured terms. */
function searchOf(index: FileIndexRepository) {
  const files = createArchiveFiles({ index, openArchiveImage: () => Promise.reject(new Error('the search never opens an image')) });
  return async (query: string, limit = 50) => (await files.search(query, limit)).results.map((result) => result.path);
}

describe('file index repository', () => {
  it('finds entries holding every word, a name hit before a path hit, with their archive', async () => {
    await withIndex(async (index, [trip, misc]) => {
      await index.add(trip, [file('Kreta/Strand.mov'), file('Kreta/Hafen.jpg'), { ...file('Kreta'), kind: 'directory', sizeBytes: 0 }]);
      await index.add(misc, [file('var/lib/kreta-notes.txt'), file('etc/nginx/nginx.conf')]);
      const search = searchOf(index);
      // A clear case for both engines' ranks: "kreta" in the name of two entries, only in the path of two others.
      const kreta = await search('kreta');
      assert.deepEqual([...kreta.slice(0, 2)].sort(), ['Kreta', 'var/lib/kreta-notes.txt']);
      assert.deepEqual([...kreta.slice(2)].sort(), ['Kreta/Hafen.jpg', 'Kreta/Strand.mov']);
      assert.deepEqual(await search('kreta strand'), ['Kreta/Strand.mov'], 'every word must occur');
      assert.deepEqual(await search('str'), ['Kreta/Strand.mov'], 'a word of three letters is a prefix');
      assert.deepEqual(await search('st'), [], 'a shorter one only a whole word');
      assert.deepEqual(await search('"nginx" OR conf*'), [], 'OR is a word like any other, quotes and stars are no syntax');
      assert.deepEqual(await search('nginx conf'), ['etc/nginx/nginx.conf']);
      assert.equal((await search('kreta', 2)).length, 2);
      await assert.rejects(search('--- ...'), ValidationError);

      const files = createArchiveFiles({ index, openArchiveImage: () => Promise.reject(new Error('unused')) });
      const [hit] = (await files.search('hafen', 10)).results;
      assert.equal(hit?.archive_id, trip);
      assert.equal(hit?.archive_label, 'Crete 2019');
      assert.equal(hit?.archive_filename, 'trip.iso');
      assert.equal((await files.search('nginx', 10)).results[0]?.archive_label, null, 'an empty label is none');
    });
  });

  it('drops NUL characters of names before storing them, on either engine', async () => {
    await withIndex(async (index, [trip], database) => {
      await index.add(trip, [{ path: 'DOCS/READ\u0000ME.TXT\u0000', name: 'READ\u0000ME.TXT\u0000', kind: 'file', sizeBytes: 5, mtime: null }]);
      const { rows } = await sql<{ path: string; name: string }>`select path, name from archive_file_entries`.execute(database.kysely);
      assert.deepEqual(rows, [{ path: 'DOCS/README.TXT', name: 'README.TXT' }]);
      assert.deepEqual(await searchOf(index)('readme'), ['DOCS/README.TXT']);
    });
  });

  it('records how indexing ended, lists what is not indexed yet, and starts clean on a clear', async () => {
    await withIndex(async (index, [trip, misc], database) => {
      assert.deepEqual(
        (await index.unindexed(10)).map((archive) => archive.id),
        [trip, misc],
      );
      await index.add(trip, [file('a/one.txt'), file('a/two.txt')]);
      await index.finish(trip, { status: 'indexed', entries: 2 }, '2026-01-15T10:00:00.000Z');
      assert.deepEqual(await index.state(trip), { status: 'indexed', entries: 2, errorCode: null, indexedAt: '2026-01-15T10:00:00.000Z' });
      await index.finish(trip, { status: 'failed', entries: 1, code: 'image_corrupt', message: 'bad block' }, '2026-01-15T11:00:00.000Z');
      assert.deepEqual(await index.state(trip), { status: 'failed', entries: 1, errorCode: 'image_corrupt', indexedAt: '2026-01-15T11:00:00.000Z' });
      assert.deepEqual(
        (await index.unindexed(10)).map((archive) => archive.id),
        [misc],
      );

      await createArchiveRepository(database).delete(misc);
      await index.finish(misc, { status: 'indexed', entries: 0 }, '2026-01-15T12:00:00.000Z');
      assert.equal(await index.state(misc), null, 'an archive deleted meanwhile gets no state');

      await index.clear(trip);
      assert.equal(await index.state(trip), null);
      assert.deepEqual(await searchOf(index)('one'), []);
    });
  });
});
