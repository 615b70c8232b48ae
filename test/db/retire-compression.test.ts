import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { migrationProvider } from '../../src/db/migrations/index.js';
import { withTempDir } from '../support/temp-dir.js';

describe('migration 0012: the retired setting imaging.compression', () => {
  it('removes its stored value and keeps every other setting', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'disk2iso.db');
      const raw = new BetterSqlite3(file);
      const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
      try {
        assert.equal((await new Migrator({ db, provider: migrationProvider }).migrateTo('0011_notifications')).error, undefined);
        const insert = raw.prepare('insert into settings (key, value, updated_at) values (?, ?, ?)');
        insert.run('imaging.compression', JSON.stringify('none'), '2026-01-01T00:00:00.000Z');
        insert.run('imaging.read_attempts', JSON.stringify(3), '2026-01-01T00:00:00.000Z');
      } finally {
        await db.destroy();
      }
      const database = await openDatabase({ file });
      try {
        const keys = (await database.kysely.selectFrom('settings').select('key').execute()).map((row) => row.key);
        assert.deepEqual(keys, ['imaging.read_attempts']);
      } finally {
        await database.close();
      }
    });
  });
});
