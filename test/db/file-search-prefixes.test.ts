import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { createFileIndexRepository } from '../../src/db/file-index-repository.js';
import { migrationProvider } from '../../src/db/migrations/index.js';

/**
 * A migration of the SQLite file (its FTS5 table): SQLite only, so this file stays out of the
 * engine switch (test/db/support.ts imports it) and runs in the SQLite pass alone.
 */
async function withTempDir(work: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'disk2iso-prefixes-'));
  try {
    await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('migration 0017: two-letter prefixes in the file-name index', () => {
  it('indexes prefixes of two and three letters and keeps the entries indexed before it searchable', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'disk2iso.db');
      const raw = new BetterSqlite3(file);
      const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
      try {
        assert.equal((await new Migrator({ db, provider: migrationProvider }).migrateTo('0016_integrity')).error, undefined);
        raw
          .prepare(
            `insert into archives (id, filename, path, size_bytes, created_at, checksums, metadata, source, status, search_text)
             values ('a1', 'old.iso', '/archive/old.iso', 0, '2026-01-01T00:00:00.000Z', '{}', '{}', '{}', 'ok', '')`,
          )
          .run();
        const insert = raw.prepare(`insert into archive_file_entries (archive_id, path, name, kind, size_bytes) values ('a1', ?, ?, 'file', 1)`);
        insert.run('docs/kalimba.txt', 'kalimba.txt');
        insert.run('docs/other.txt', 'other.txt');
      } finally {
        await db.destroy();
      }
      const database = await openDatabase({ file });
      try {
        const { rows } = await sql<{ sql: string }>`select sql from sqlite_master where name = 'archive_file_search'`.execute(database.kysely);
        assert.match(rows[0]?.sql ?? '', /prefix = '2 3'/);
        const index = createFileIndexRepository(database);
        assert.deepEqual(
          (await index.search([{ text: 'ka', prefix: true }], 10)).map((hit) => hit.path),
          ['docs/kalimba.txt'],
        );
        await index.clear('a1');
        assert.deepEqual(await index.search([{ text: 'ka', prefix: true }], 10), []);
        await index.add('a1', [{ path: 'new/karaoke.mp3', name: 'karaoke.mp3', kind: 'file', sizeBytes: 2, mtime: null }]);
        assert.deepEqual(
          (await index.search([{ text: 'ka', prefix: true }], 10)).map((hit) => hit.path),
          ['new/karaoke.mp3'],
        );
      } finally {
        await database.close();
      }
    });
  });
});
