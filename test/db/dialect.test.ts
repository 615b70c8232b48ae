import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type Kysely, sql } from 'kysely';
import { type Database, openDatabase } from '../../src/db/database.js';
import {
  type SearchIndex,
  type SearchTerm,
  containsText,
  fullTextHits,
  isForeignKeyViolation,
  isUniqueViolation,
  jsonArrayValues,
  jsonText,
  sqlDialect,
} from '../../src/db/dialect.js';
import { type PostgresDatabase, openPostgres } from '../../src/db/postgres.js';
import type { DB } from '../../src/db/schema.js';
import { usePostgres } from '../support/postgres.js';

/**
 * Each fragment of src/db/dialect.ts runs on a real SQLite file and on a real PostgreSQL database
 * holding the same rows, and must give the same answer on both.
 */
const server = usePostgres();
let sqlite: Database;
let postgres: PostgresDatabase;

const AT = '2026-01-15T10:00:00.000Z';
const ARCHIVES = [
  {
    id: 'a1',
    filename: 'Holiday_Photos_2019.iso',
    metadata: { label: 'Sommerurlaub Kreta', tags: ['family', 'photos'], notes: 'beach and harbour', customFields: { shelf: 'B7' } },
    source: { volumeLabel: 'PHOTOS_2019' },
    sha256: 'aa11',
  },
  {
    id: 'a2',
    filename: 'backup-server.img',
    metadata: { label: 'Server backup', tags: ['work'], notes: 'holiday rota inside', customFields: {} },
    source: { volumeLabel: 'BACKUP' },
    sha256: 'bb22',
  },
  {
    id: 'a3',
    filename: 'Müller Café Rechnungen.iso',
    metadata: { label: 'Rechnungen', tags: [], notes: '', customFields: { owner: 'Zoë' } },
    source: {},
    sha256: 'aa11',
  },
  { id: 'a4', filename: 'empty.iso', metadata: {}, source: { volumeLabel: null }, sha256: 'cc33' },
];
const FILES = [
  { archive: 'a1', path: 'DCIM/100CANON/IMG_0001.JPG', name: 'IMG_0001.JPG' },
  { archive: 'a1', path: 'DCIM/100CANON/IMG_0002.JPG', name: 'IMG_0002.JPG' },
  { archive: 'a1', path: 'Kreta/Strand.mov', name: 'Strand.mov' },
  { archive: 'a2', path: 'etc/nginx/nginx.conf', name: 'nginx.conf' },
  { archive: 'a2', path: 'var/lib/kreta-notes.txt', name: 'kreta-notes.txt' },
  { archive: 'a3', path: 'Rechnungen/Café Olé.pdf', name: 'Café Olé.pdf' },
];

async function fill(db: Kysely<DB>): Promise<void> {
  for (const archive of ARCHIVES) {
    await db
      .insertInto('archives')
      .values({
        id: archive.id,
        job_id: null,
        filename: archive.filename,
        path: `/srv/images/${archive.filename}`,
        size_bytes: 549_755_813_888,
        created_at: AT,
        checksums: JSON.stringify({ sha256: archive.sha256 }),
        metadata: JSON.stringify(archive.metadata),
        source: JSON.stringify(archive.source),
        disc_kind: null,
        bad_bytes: 0,
        status: 'ok',
        last_verified_at: null,
        last_verified_ok: null,
        search_text: archive.filename.toLowerCase(),
        category_id: null,
        rating: null,
        recovery: null,
      })
      .execute();
  }
  for (const file of FILES) {
    await sql`insert into archive_file_entries (archive_id, path, name, kind, size_bytes, mtime)
      values (${file.archive}, ${file.path}, ${file.name}, 'file', 1, null)`.execute(db);
  }
}

let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'disk2iso-dialect-'));
  sqlite = await openDatabase({ file: join(dir, 'disk2iso.db') });
  postgres = await openPostgres(await (await server.ready()).createDatabase());
  await fill(sqlite.kysely);
  await fill(postgres.kysely);
});

after(async () => {
  await sqlite?.close();
  await postgres?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a query on both engines; returns [SQLite's rows, PostgreSQL's rows]. */
async function onBoth<R>(query: (db: Kysely<DB>) => Promise<R>): Promise<[R, R]> {
  return [await query(sqlite.kysely), await query(postgres.kysely)];
}

test('sqlDialect tells the engines apart', () => {
  assert.equal(sqlDialect(sqlite.kysely), 'sqlite');
  assert.equal(sqlDialect(postgres.kysely), 'postgres');
});

test('jsonText reads a key of a JSON text column alike, null when absent', async () => {
  const [lite, pg] = await onBoth(async (db) => {
    const dialect = sqlDialect(db);
    const { rows } = await sql<{ id: string; sha: string | null; label: string | null }>`
      select id, ${jsonText(dialect, 'checksums', 'sha256')} as sha, ${jsonText(dialect, 'metadata', 'label')} as label
      from archives order by id`.execute(db);
    return rows;
  });
  assert.deepEqual(lite, pg);
  assert.deepEqual(
    lite.map((row) => row.label),
    ['Sommerurlaub Kreta', 'Server backup', 'Rechnungen', null],
  );
  assert.throws(() => jsonText('sqlite', 'metadata', "x') or 1=1 --"), /not a plain JSON key/);
});

test('an archive found by its SHA-256 is found through the expression index on PostgreSQL', async () => {
  const [lite, pg] = await onBoth(async (db) =>
    (
      await db
        .selectFrom('archives')
        .select('id')
        .where(jsonText(sqlDialect(db), 'checksums', 'sha256'), '=', 'aa11')
        .orderBy('id')
        .execute()
    ).map((row) => row.id),
  );
  assert.deepEqual(lite, ['a1', 'a3']);
  assert.deepEqual(pg, lite);
  await postgres.kysely.connection().execute(async (db) => {
    await sql`set enable_seqscan = off`.execute(db);
    const { rows } = await sql<{ 'QUERY PLAN': string }>`explain select id from archives where ${jsonText('postgres', 'checksums', 'sha256')} = 'aa11'`.execute(
      db,
    );
    await sql`reset enable_seqscan`.execute(db);
    assert.match(rows.map((row) => row['QUERY PLAN']).join('\n'), /archives_sha256/);
  });
});

test('jsonArrayValues lists the elements of a JSON array alike, none when the key is absent', async () => {
  const [lite, pg] = await onBoth(async (db) => {
    const dialect = sqlDialect(db);
    const { rows } = await sql<{ id: string; tag: string }>`
      select archives.id as id, tag.value as tag from archives, ${jsonArrayValues(dialect, 'archives.metadata', 'tags', 'tag')} order by 1, 2`.execute(db);
    return rows;
  });
  assert.deepEqual(lite, [
    { id: 'a1', tag: 'family' },
    { id: 'a1', tag: 'photos' },
    { id: 'a2', tag: 'work' },
  ]);
  assert.deepEqual(pg, lite);
  const [liteTagged, pgTagged] = await onBoth(async (db) => {
    const { rows } = await sql<{ id: string }>`select id from archives
      where exists (select 1 from ${jsonArrayValues(sqlDialect(db), 'archives.metadata', 'tags', 't')} where value = ${'work'})`.execute(db);
    return rows;
  });
  assert.deepEqual(liteTagged, [{ id: 'a2' }]);
  assert.deepEqual(pgTagged, liteTagged);
});

test('containsText finds a literal substring, case-sensitively, with no pattern characters', async () => {
  for (const needle of ['photos', 'PHOTOS', '%', '_', 'ü']) {
    const [lite, pg] = await onBoth(async (db) => {
      const { rows } = await sql<{
        id: string;
      }>`select id from archives where ${containsText(sqlDialect(db), sql.ref('search_text'), needle)} order by id`.execute(db);
      return rows.map((row) => row.id);
    });
    assert.deepEqual(pg, lite, `needle ${needle}`);
  }
  const [lite] = await onBoth(async (db) => {
    const { rows } = await sql<{ id: string }>`select id from archives where ${containsText(sqlDialect(db), sql.ref('search_text'), 'photos')}`.execute(db);
    return rows.map((row) => row.id);
  });
  assert.deepEqual(lite, ['a1']);
});

async function search(index: SearchIndex, terms: SearchTerm[]): Promise<[string[], string[]]> {
  return onBoth(async (db) => {
    const hits = fullTextHits(sqlDialect(db), index, terms, 'hits');
    if (hits === null) return [];
    const { rows } = await sql<{ id: string | number }>`select hits.id as id from ${hits} order by hits.rank, hits.id`.execute(db);
    return rows.map((row) => String(row.id));
  });
}

const word = (text: string, prefix = true): SearchTerm => ({ text, prefix });

test('the archives full-text index finds the same archives on both engines', async () => {
  const cases: Array<[SearchTerm[], string[]]> = [
    [[word('kreta')], ['a1']],
    [[word('KRE')], ['a1']],
    [[word('holiday')], ['a1', 'a2']],
    [[word('holiday'), word('rota')], ['a2']],
    [[word('photos')], ['a1']],
    [[word('photos_2019')], ['a1']],
    [[word('b7')], ['a1']],
    [[word('muller')], ['a3']],
    [[word('café')], ['a3']],
    [[word('zoe')], ['a3']],
    [[word('rech', false)], []],
    [[word('rechnungen', false)], ['a3']],
    [[word('"quoted" OR NOT:*')], []],
    [[word('nothing-here')], []],
  ];
  for (const [terms, expected] of cases) {
    const [lite, pg] = await search('archives', terms);
    assert.deepEqual([...lite].sort(), expected, `SQLite: ${JSON.stringify(terms)}`);
    assert.deepEqual([...pg].sort(), expected, `PostgreSQL: ${JSON.stringify(terms)}`);
  }
  assert.equal(fullTextHits('postgres', 'archives', [word('...'), word('')], 'hits'), null, 'nothing searchable');
});

test('the archives full-text index ranks a label or tag hit above a notes hit on both engines', async () => {
  const [lite, pg] = await search('archives', [word('holiday')]);
  // a1 has "Holiday" in its name; a2 only in its notes.
  assert.deepEqual(lite, ['a1', 'a2']);
  assert.deepEqual(pg, lite);
});

test('the archives full-text index follows inserts, updates and deletes on both engines', async () => {
  for (const db of [sqlite.kysely, postgres.kysely]) {
    await db
      .updateTable('archives')
      .set({ metadata: JSON.stringify({ label: 'Renamed Olympus', tags: ['zeus'], notes: '', customFields: {} }) })
      .where('id', '=', 'a4')
      .execute();
  }
  assert.deepEqual(await search('archives', [word('olymp')]), [['a4'], ['a4']]);
  assert.deepEqual(await search('archives', [word('zeus')]), [['a4'], ['a4']]);
  for (const db of [sqlite.kysely, postgres.kysely]) await db.deleteFrom('archives').where('id', '=', 'a4').execute();
  assert.deepEqual(await search('archives', [word('olymp')]), [[], []]);
});

test('the file index finds the same entries on both engines, by name before path', async () => {
  const entryIds = await onBoth(async (db) => {
    const { rows } = await sql<{ id: number; path: string }>`select id, path from archive_file_entries`.execute(db);
    return new Map(rows.map((row) => [String(row.id), row.path]));
  });
  const paths = async (terms: SearchTerm[]): Promise<[string[], string[]]> => {
    const [lite, pg] = await search('files', terms);
    return [lite.map((id) => entryIds[0].get(id) ?? id), pg.map((id) => entryIds[1].get(id) ?? id)];
  };
  const cases: Array<[SearchTerm[], string[]]> = [
    [[word('img')], ['DCIM/100CANON/IMG_0001.JPG', 'DCIM/100CANON/IMG_0002.JPG']],
    [[word('0002')], ['DCIM/100CANON/IMG_0002.JPG']],
    [[word('nginx'), word('conf')], ['etc/nginx/nginx.conf']],
    [[word('cafe', false), word('ole', false)], ['Rechnungen/Café Olé.pdf']],
    [[word('st', false)], []],
    [[word('100canon')], ['DCIM/100CANON/IMG_0001.JPG', 'DCIM/100CANON/IMG_0002.JPG']],
  ];
  for (const [terms, expected] of cases) {
    const [lite, pg] = await paths(terms);
    assert.deepEqual([...lite].sort(), expected, `SQLite: ${JSON.stringify(terms)}`);
    assert.deepEqual([...pg].sort(), expected, `PostgreSQL: ${JSON.stringify(terms)}`);
  }
  // "kreta" is the name of one entry and part of the path of another: the name hit comes first.
  const [lite, pg] = await paths([word('kreta')]);
  assert.deepEqual(lite, ['var/lib/kreta-notes.txt', 'Kreta/Strand.mov']);
  assert.deepEqual(pg, lite);
  for (const db of [sqlite.kysely, postgres.kysely]) await sql`delete from archive_file_entries where name = 'kreta-notes.txt'`.execute(db);
  const [liteAfter, pgAfter] = await paths([word('kreta')]);
  assert.deepEqual(liteAfter, ['Kreta/Strand.mov']);
  assert.deepEqual(pgAfter, liteAfter);
});

test('unique and foreign key violations are recognised on both engines', async () => {
  for (const db of [sqlite.kysely, postgres.kysely]) {
    const uniqueError = await db
      .insertInto('archive_categories')
      .values([
        { id: 'c1', name: 'Films', created_at: AT },
        { id: 'c2', name: 'FILMS', created_at: AT },
      ])
      .execute()
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    assert.equal(isUniqueViolation(uniqueError), true, `${sqlDialect(db)}: a name differing only in case is refused`);
    assert.equal(isForeignKeyViolation(uniqueError), false);
    const foreignError = await sql`insert into archive_file_index (archive_id, status, entries, indexed_at) values ('nope', 'indexed', 0, ${AT})`
      .execute(db)
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    assert.equal(isForeignKeyViolation(foreignError), true, `${sqlDialect(db)}: an unknown archive is refused`);
    assert.equal(isUniqueViolation(foreignError), false);
  }
});
