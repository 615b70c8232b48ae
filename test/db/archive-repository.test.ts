import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ArchiveSource } from '../../src/archive/model.js';
import { type ArchiveRepository, type CreateArchiveInput, createArchiveRepository } from '../../src/db/archive-repository.js';
import type { Database } from '../../src/db/database.js';
import { isUniqueViolation } from '../../src/db/dialect.js';
import type { DiscKind } from '../../src/drives/types.js';
import { NotFoundError } from '../../src/errors.js';
import { manualClock, withDatabase } from './support.js';

function source(discKind: DiscKind): ArchiveSource {
  return { deviceId: 'sr0', devicePath: '/dev/sr0', discKind, volumeLabel: 'VOL', volumeId: 'VOL_ID', mediaType: 'dvd', fileSystems: ['iso9660', 'udf'] };
}

const FIXTURES: Record<string, CreateArchiveInput> = {
  movies: {
    filename: 'Movie_Collection_Disc1.iso',
    path: '/out/Movie_Collection_Disc1.iso',
    sizeBytes: 4_700_000_000,
    createdAt: new Date('2025-12-30T20:00:00Z'),
    checksums: { md5: 'a3b4c5d6e7f8a9b0a3b4c5d6e7f8a9b0', sha256: 'f7'.repeat(32) },
    metadata: { label: 'Movie Collection Vol 1', tags: ['movies', 'backup'], notes: 'Personal movie collection' },
    source: source('dvd-video'),
  },
  software: {
    filename: 'software_archive_2024.iso',
    path: '/out/software_archive_2024.iso',
    sizeBytes: 8_500_000_000,
    createdAt: new Date('2025-12-28T08:00:00Z'),
    checksums: { sha256: '0a'.repeat(32) },
    metadata: { label: 'Software 100% legit', tags: ['software', 'c_drive'], notes: 'Bob\'s "best" tools' },
    source: source('data'),
  },
  audio: {
    filename: 'audio.iso',
    path: '/out/audio.iso',
    sizeBytes: 700_000_000,
    createdAt: new Date('2025-11-01T12:00:00Z'),
    checksums: { md5: '00'.repeat(16) },
    metadata: { label: 'Über Klänge', tags: ['music'], notes: 'back\\slash' },
    source: source('audio'),
    badBytes: 4096,
  },
  blank: {
    filename: 'blank100.iso',
    path: '/out/blank100.iso',
    sizeBytes: 1_000_000,
    createdAt: new Date('2025-12-31T09:00:00Z'),
    checksums: {},
    source: source('data'),
  },
  lookalike: {
    filename: 'lookalike.iso',
    path: '/out/lookalike.iso',
    sizeBytes: 2_000_000,
    createdAt: new Date('2025-12-01T09:00:00Z'),
    checksums: {},
    metadata: { notes: 'copy of the cddrive, 1000 files' },
    source: source('data'),
  },
};

async function withArchives(work: (archives: ArchiveRepository, ids: Record<string, string>, database: Database) => Promise<void>): Promise<void> {
  await withDatabase(async (database) => {
    const archives = createArchiveRepository(database);
    const ids: Record<string, string> = {};
    for (const [key, input] of Object.entries(FIXTURES)) ids[key] = (await archives.create(input)).id;
    await work(archives, ids, database);
  });
}

describe('archive repository', () => {
  it('stores and returns an archive with its checksums, metadata and source', async () => {
    await withArchives(async (archives, ids) => {
      const movies = await archives.get(ids.movies ?? '');
      assert.deepEqual(movies, {
        id: ids.movies,
        jobId: null,
        filename: 'Movie_Collection_Disc1.iso',
        path: '/out/Movie_Collection_Disc1.iso',
        sizeBytes: 4_700_000_000,
        createdAt: '2025-12-30T20:00:00.000Z',
        checksums: { md5: 'a3b4c5d6e7f8a9b0a3b4c5d6e7f8a9b0', sha256: 'f7'.repeat(32) },
        metadata: {
          label: 'Movie Collection Vol 1',
          tags: ['movies', 'backup'],
          notes: 'Personal movie collection',
          categoryId: null,
          rating: null,
          customFields: {},
        },
        source: source('dvd-video'),
        discKind: 'dvd-video',
        badBytes: 0,
        status: 'ok',
        lastVerifiedAt: null,
        lastVerifiedOk: null,
        recovery: null,
        nodeId: null,
      });
      assert.match(ids.movies ?? '', /^archive_[0-9a-f]{20}$/);
      assert.deepEqual((await archives.get(ids.blank ?? ''))?.metadata, { label: '', tags: [], notes: '', categoryId: null, rating: null, customFields: {} });
      assert.equal((await archives.get(ids.audio ?? ''))?.status, 'damaged', 'bad sectors make an image damaged');
      assert.equal((await archives.getByPath('/out/audio.iso'))?.id, ids.audio);
      assert.equal(await archives.get('archive_unknown'), null);
      assert.equal(await archives.getByPath('/out/unknown.iso'), null);
    });
  });

  it('stamps a new archive with the clock and refuses a second record for one path', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const archives = createArchiveRepository(database, { now: clock.now });
      const input: CreateArchiveInput = {
        filename: 'new.iso',
        path: '/out/new.iso',
        sizeBytes: 2048,
        checksums: { md5: '11'.repeat(16) },
        source: source('data'),
      };
      const created = await archives.create(input);
      assert.equal(created.createdAt, '2026-01-15T10:00:00.000Z');
      // SQLite names the column (archives.path), PostgreSQL the unique index on it (archives_path_key).
      await assert.rejects(archives.create(input), (error: Error) => isUniqueViolation(error) && /archives[._]path/.test(error.message));
    });
  });

  describe('search', () => {
    const cases: Array<[string, string[]]> = [
      ['movie', ['movies']],
      ['MOVIE backup', ['movies']],
      ['movies software', []],
      ['music', ['audio']],
      ['über', ['audio']],
      ['ÜBER', ['audio']],
      ['100%', ['software']],
      ['%', ['software']],
      ['c_drive', ['software']],
      ['_', ['movies', 'software']],
      ["bob's", ['software']],
      ['"best"', ['software']],
      ["'", ['software']],
      ['back\\slash', ['audio']],
      ['legit tools', ['software']],
      ['label', []],
      ['tags', []],
      ['  ', ['audio', 'blank', 'lookalike', 'movies', 'software']],
      // A control character (PostgreSQL refuses a NUL in text) separates words like a space.
      ['soft\u0000ware', ['software']],
      ['movie\u0007backup', ['movies']],
    ];
    for (const [search, expected] of cases) {
      it(`finds ${JSON.stringify(expected)} for ${JSON.stringify(search)}`, async () => {
        await withArchives(async (archives, ids) => {
          const result = await archives.list({ search });
          const keys = result.items.map((item) => Object.keys(ids).find((key) => ids[key] === item.id)).sort();
          assert.deepEqual(keys, expected);
          assert.equal(result.total, expected.length);
        });
      });
    }
  });

  it('filters by creation date, size, disc kind and status', async () => {
    await withArchives(async (archives, ids) => {
      const keysOf = async (filter: Parameters<ArchiveRepository['list']>[0]) =>
        (await archives.list({ ...filter, sort: 'name', order: 'asc' })).items.map((item) => Object.keys(ids).find((key) => ids[key] === item.id));

      assert.deepEqual(await keysOf({ createdFrom: new Date('2025-12-28T08:00:00Z') }), ['blank', 'movies', 'software']);
      assert.deepEqual(await keysOf({ createdBefore: new Date('2025-12-28T08:00:00Z') }), ['audio', 'lookalike']);
      assert.deepEqual(await keysOf({ createdFrom: new Date('2025-12-01T00:00:00Z'), createdBefore: new Date('2025-12-30T00:00:00Z') }), [
        'lookalike',
        'software',
      ]);
      assert.deepEqual(await keysOf({ minSizeBytes: 700_000_000 }), ['audio', 'movies', 'software']);
      assert.deepEqual(await keysOf({ maxSizeBytes: 2_000_000 }), ['blank', 'lookalike']);
      assert.deepEqual(await keysOf({ minSizeBytes: 1_000_001, maxSizeBytes: 4_700_000_000 }), ['audio', 'lookalike', 'movies']);
      assert.deepEqual(await keysOf({ discKinds: ['audio', 'dvd-video'] }), ['audio', 'movies']);
      assert.deepEqual(await keysOf({ discKinds: [] }), []);
      assert.deepEqual(await keysOf({ statuses: ['damaged'] }), ['audio']);
      assert.deepEqual(await keysOf({ statuses: ['ok'], discKinds: ['data'], search: 'iso', maxSizeBytes: 2_000_000 }), ['blank', 'lookalike']);
    });
  });

  it('sorts by name, date and size in both directions and pages with a full total', async () => {
    await withArchives(async (archives, ids) => {
      const keysOf = async (filter: Parameters<ArchiveRepository['list']>[0]) =>
        (await archives.list(filter)).items.map((item) => Object.keys(ids).find((key) => ids[key] === item.id));

      assert.deepEqual(await keysOf({}), ['blank', 'movies', 'software', 'lookalike', 'audio'], 'default: newest first');
      assert.deepEqual(await keysOf({ sort: 'name' }), ['audio', 'blank', 'lookalike', 'movies', 'software'], 'names ignore case');
      assert.deepEqual(await keysOf({ sort: 'name', order: 'desc' }), ['software', 'movies', 'lookalike', 'blank', 'audio']);
      assert.deepEqual(await keysOf({ sort: 'date', order: 'asc' }), ['audio', 'lookalike', 'software', 'movies', 'blank']);
      assert.deepEqual(await keysOf({ sort: 'size', order: 'asc' }), ['blank', 'lookalike', 'audio', 'movies', 'software']);
      assert.deepEqual(await keysOf({ sort: 'size' }), ['software', 'movies', 'audio', 'lookalike', 'blank']);

      const page = await archives.list({ sort: 'size', order: 'asc', limit: 2, offset: 2 });
      assert.equal(page.total, 5);
      assert.deepEqual(
        page.items.map((item) => item.id),
        [ids.audio, ids.movies],
      );
      const filteredPage = await archives.list({ discKinds: ['data'], limit: 1 });
      assert.equal(filteredPage.total, 3);
      assert.equal(filteredPage.items.length, 1);
    });
  });

  it('updates metadata fields, keeps the others, and searches the new text', async () => {
    await withArchives(async (archives, ids) => {
      const id = ids.movies ?? '';
      const updated = await archives.updateMetadata(id, { tags: ['films', '2024'], notes: undefined });
      assert.deepEqual(updated.metadata, {
        label: 'Movie Collection Vol 1',
        tags: ['films', '2024'],
        notes: 'Personal movie collection',
        categoryId: null,
        rating: null,
        customFields: {},
      });
      assert.deepEqual(await archives.get(id), updated);
      assert.deepEqual(
        (await archives.list({ search: 'films' })).items.map((item) => item.id),
        [id],
      );
      assert.equal((await archives.list({ search: 'backup' })).total, 0, 'the old tag is no longer found');
      await assert.rejects(archives.updateMetadata('archive_unknown', { label: 'x' }), NotFoundError);
    });
  });

  it('drops NUL characters of a disc volume label and metadata before storing them, on either engine', async () => {
    await withDatabase(async (database) => {
      const archives = createArchiveRepository(database);
      const created = await archives.create({
        filename: 'nul.iso',
        path: '/out/nul.iso',
        sizeBytes: 1,
        checksums: {},
        source: { ...source('data'), volumeLabel: 'GAME\u0000DISC\u0000', volumeId: '\u0000ID' },
        metadata: { label: 'GAME\u0000DISC', tags: ['t\u0000ag'], customFields: { 'sh\u0000elf': 'A\u00001' } },
      });
      assert.equal(created.source.volumeLabel, 'GAMEDISC');
      assert.equal(created.source.volumeId, 'ID');
      assert.deepEqual(created.metadata, { label: 'GAMEDISC', tags: ['tag'], notes: '', categoryId: null, rating: null, customFields: { shelf: 'A1' } });
      assert.deepEqual(await archives.get(created.id), created);
      assert.deepEqual(
        (await archives.list({ match: 'gamedisc' })).items.map((item) => item.id),
        [created.id],
      );
      assert.deepEqual(
        (await archives.list({ search: 'gamedisc', tag: 'tag' })).items.map((item) => item.id),
        [created.id],
      );
      const updated = await archives.updateMetadata(created.id, { notes: 'in the\u0000 attic' });
      assert.equal(updated.metadata.notes, 'in the attic');
      await archives.bulkUpdateMetadata([created.id], { addTags: ['ne\u0000w'] });
      assert.deepEqual((await archives.get(created.id))?.metadata.tags, ['tag', 'new']);
    });
  });

  it('records verifications, newest first, and updates the archive status', async () => {
    await withArchives(async (archives, ids) => {
      const id = ids.software ?? '';
      const failed = await archives.recordVerification(id, {
        startedAt: new Date('2026-01-01T10:00:00Z'),
        finishedAt: new Date('2026-01-01T10:01:30Z'),
        ok: false,
        results: { sha256: { expected: '0a'.repeat(32), actual: 'ff'.repeat(32), ok: false } },
        seconds: 90,
        requestedBy: 'user_1',
      });
      assert.equal(failed.ok, false);
      assert.equal(failed.requestedBy, 'user_1');
      let archive = await archives.get(id);
      assert.equal(archive?.status, 'damaged');
      assert.equal(archive?.lastVerifiedOk, false);
      assert.equal(archive?.lastVerifiedAt, '2026-01-01T10:01:30.000Z');

      await archives.recordVerification(id, {
        startedAt: new Date('2026-01-02T10:00:00Z'),
        finishedAt: new Date('2026-01-02T10:01:00Z'),
        ok: true,
        results: {},
        seconds: 60,
      });
      archive = await archives.get(id);
      assert.equal(archive?.status, 'ok');
      assert.equal(archive?.lastVerifiedOk, true);

      await archives.recordVerification(id, {
        startedAt: new Date('2026-01-03T10:00:00Z'),
        finishedAt: new Date('2026-01-03T10:00:00Z'),
        ok: false,
        results: { error: 'ENOENT' },
        seconds: 0,
        archiveStatus: 'missing',
      });
      assert.equal((await archives.get(id))?.status, 'missing');

      const history = await archives.listVerifications(id, { limit: 2 });
      assert.equal(history.total, 3);
      assert.deepEqual(
        history.items.map((entry) => [entry.finishedAt, entry.ok]),
        [
          ['2026-01-03T10:00:00.000Z', false],
          ['2026-01-02T10:01:00.000Z', true],
        ],
      );
      const oldest = (await archives.listVerifications(id, { offset: 2 })).items[0];
      assert.deepEqual(oldest?.results, { sha256: { expected: '0a'.repeat(32), actual: 'ff'.repeat(32), ok: false } });

      await assert.rejects(
        archives.recordVerification('archive_unknown', { startedAt: new Date(), finishedAt: new Date(), ok: true, results: {}, seconds: 1 }),
        NotFoundError,
      );
      assert.equal((await archives.listVerifications('archive_unknown')).total, 0);
    });
  });

  it('sets a status and deletes an archive with its verification history', async () => {
    await withArchives(async (archives, ids, database) => {
      const id = ids.blank ?? '';
      assert.equal((await archives.setStatus(id, 'missing')).status, 'missing');
      await assert.rejects(archives.setStatus('archive_unknown', 'ok'), NotFoundError);
      await archives.recordVerification(id, { startedAt: new Date(), finishedAt: new Date(), ok: true, results: {}, seconds: 1 });

      assert.equal(await archives.delete(id), true);
      assert.equal(await archives.get(id), null);
      const orphans = await database.kysely.selectFrom('archive_verifications').select('id').where('archive_id', '=', id).execute();
      assert.deepEqual(orphans, []);
      assert.equal(await archives.delete(id), false);
      assert.equal((await archives.list()).total, 4);
    });
  });
});
