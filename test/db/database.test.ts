import assert from 'node:assert/strict';
import { chmod, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { type Database, type DatabaseLogger, openDatabase } from '../../src/db/database.js';
import { MIGRATION_NAMES } from '../../src/db/migrations/index.js';
import { UnavailableError } from '../../src/errors.js';
import { withTempDir } from './support.js';

const TABLES = ['archive_verifications', 'archives', 'job_logs', 'jobs', 'logs', 'settings'];

function recordingLogger(): DatabaseLogger & { lines: Array<{ details: Record<string, unknown>; message: string }> } {
  const lines: Array<{ details: Record<string, unknown>; message: string }> = [];
  return { lines, info: (details, message) => lines.push({ details, message }) };
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('openDatabase', () => {
  it('creates a new file with mode 0600, applies every migration and logs them', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'nested', 'disk2iso.sqlite');
      const log = recordingLogger();
      const database = await openDatabase({ file, log });
      try {
        const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table' order by name`.execute(database.kysely);
        for (const table of TABLES)
          assert.ok(
            tables.rows.some((row) => row.name === table),
            `table ${table} exists`,
          );
        const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(database.kysely);
        assert.deepEqual(
          applied.rows.map((row) => row.name),
          [...MIGRATION_NAMES],
        );
        assert.deepEqual(log.lines, [{ details: { file, migrations: [...MIGRATION_NAMES] }, message: 'database migrated' }]);

        await database.kysely.insertInto('settings').values({ key: 'k', value: '1', updated_at: 'now', updated_by: null }).execute();
        assert.equal(await mode(file), 0o600);
        assert.equal(await mode(`${file}-wal`), 0o600, 'the WAL file takes the database file mode');
        assert.equal(await mode(`${file}-shm`), 0o600, 'the shared-memory file takes the database file mode');
      } finally {
        await database.close();
      }
    });
  });

  it('sets WAL, foreign keys, a busy timeout and synchronous NORMAL', async () => {
    await withTempDir(async (dir) => {
      const database = await openDatabase({ file: join(dir, 'db.sqlite') });
      try {
        const k = database.kysely;
        assert.deepEqual((await sql`select * from pragma_journal_mode`.execute(k)).rows, [{ journal_mode: 'wal' }]);
        assert.deepEqual((await sql`select * from pragma_foreign_keys`.execute(k)).rows, [{ foreign_keys: 1 }]);
        assert.deepEqual((await sql`select * from pragma_busy_timeout`.execute(k)).rows, [{ timeout: 5000 }]);
        assert.deepEqual((await sql`select * from pragma_synchronous`.execute(k)).rows, [{ synchronous: 1 }]);
      } finally {
        await database.close();
      }
    });
  });

  it('reopens an existing file without migrating again and keeps its data', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'db.sqlite');
      const first = await openDatabase({ file });
      await first.kysely.insertInto('settings').values({ key: 'kept', value: '"yes"', updated_at: 'now', updated_by: null }).execute();
      await first.close();

      const log = recordingLogger();
      const second = await openDatabase({ file, log });
      try {
        assert.deepEqual(log.lines, [], 'nothing to migrate');
        const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(second.kysely);
        assert.equal(applied.rows.length, MIGRATION_NAMES.length);
        const kept = await second.kysely.selectFrom('settings').select('value').where('key', '=', 'kept').executeTakeFirst();
        assert.equal(kept?.value, '"yes"');
      } finally {
        await second.close();
      }
    });
  });

  it('tightens an existing database file to mode 0600', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'db.sqlite');
      await (await openDatabase({ file })).close();
      await chmod(file, 0o644);
      const database = await openDatabase({ file });
      try {
        assert.equal(await mode(file), 0o600);
      } finally {
        await database.close();
      }
    });
  });

  it('opens the same new file twice at once in one process', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'db.sqlite');
      const log = recordingLogger();
      const [a, b] = await Promise.all([openDatabase({ file, log }), openDatabase({ file, log })]);
      try {
        assert.equal(log.lines.length, 1, 'only one of the two opens migrated');
        await a.kysely.insertInto('settings').values({ key: 'from-a', value: '1', updated_at: 'now', updated_by: null }).execute();
        const seen = await b.kysely.selectFrom('settings').select('key').execute();
        assert.deepEqual(seen, [{ key: 'from-a' }]);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });

  it('waits for another connection writing to a new file before switching it to WAL', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'db.sqlite');
      // Another process (a second service or the CLI) got the new file first and is mid-write;
      // SQLite refuses the switch to WAL at once here rather than calling the busy handler.
      const other = new BetterSqlite3(file);
      other.exec('BEGIN IMMEDIATE');
      const opening = openDatabase({ file });
      await sleep(200);
      other.exec('COMMIT');
      other.close();
      const database = await opening;
      try {
        const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(database.kysely);
        assert.deepEqual(mode.rows, [{ journal_mode: 'wal' }]);
      } finally {
        await database.close();
      }
    });
  });

  it('fails with a clear error naming the migration, and leaves no half-made schema', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'db.sqlite');
      const foreign = new BetterSqlite3(file);
      foreign.exec('create table logs (something_else text)');
      foreign.close();

      await assert.rejects(openDatabase({ file }), (error: unknown) => {
        assert.ok(error instanceof UnavailableError);
        assert.equal(error.code, 'database_migration_failed');
        assert.match(error.message, /migration 0001_initial failed/);
        assert.match(error.message, /logs/);
        return true;
      });

      const check = new BetterSqlite3(file, { readonly: true });
      try {
        const tables = check.prepare("select name from sqlite_master where type = 'table' order by name").all();
        assert.deepEqual(tables, [{ name: 'logs' }], 'the failed migration was rolled back');
      } finally {
        check.close();
      }
    });
  });

  it('opens an in-memory database with the full schema', async () => {
    const database = await openDatabase({ file: ':memory:' });
    try {
      const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(database.kysely);
      for (const table of TABLES)
        assert.ok(
          tables.rows.some((row) => row.name === table),
          `table ${table} exists`,
        );
    } finally {
      await database.close();
    }
  });

  it('fails with a clear error when the file is not a database', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'not-a-database.sqlite');
      await writeFile(file, 'this is plain text, not SQLite, and long enough to have a header'.repeat(10));
      await assert.rejects(openDatabase({ file }), (error: unknown) => {
        assert.ok(error instanceof UnavailableError);
        assert.equal(error.code, 'database_open_failed');
        assert.match(error.message, /not-a-database\.sqlite/);
        return true;
      });
    });
  });
});

describe('transaction', () => {
  const counter = (database: Database) => database.kysely.selectFrom('settings').select('value').where('key', '=', 'counter');
  const setCounter = (database: Database, value: number) =>
    database.kysely
      .updateTable('settings')
      .set({ value: String(value) })
      .where('key', '=', 'counter');
  const withCounter = (work: (database: Database) => Promise<void>) =>
    withTempDir(async (dir) => {
      const database = await openDatabase({ file: join(dir, 'db.sqlite') });
      try {
        await database.kysely.insertInto('settings').values({ key: 'counter', value: '0', updated_at: 'now', updated_by: null }).execute();
        await work(database);
      } finally {
        await database.close();
      }
    });

  it('commits what the work wrote', async () => {
    await withTempDir(async (dir) => {
      const database = await openDatabase({ file: join(dir, 'db.sqlite') });
      try {
        const changed = await database.transaction((tx) =>
          tx.run(database.kysely.insertInto('settings').values({ key: 'a', value: '1', updated_at: 'now', updated_by: null })),
        );
        assert.equal(changed, 1);
        const rows = await database.kysely.selectFrom('settings').select('key').execute();
        assert.deepEqual(rows, [{ key: 'a' }]);
      } finally {
        await database.close();
      }
    });
  });

  it('rolls everything back when the work throws', async () => {
    await withTempDir(async (dir) => {
      const database = await openDatabase({ file: join(dir, 'db.sqlite') });
      try {
        await assert.rejects(
          database.transaction(async (tx) => {
            await tx.run(database.kysely.insertInto('settings').values({ key: 'a', value: '1', updated_at: 'now', updated_by: null }));
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.deepEqual(await database.kysely.selectFrom('settings').select('key').execute(), []);
      } finally {
        await database.close();
      }
    });
  });

  it('never interleaves two transactions of the process, even across awaits', async () => {
    await withCounter(async (database) => {
      const increment = () =>
        database.transaction(async (tx) => {
          const row = await tx.first(counter(database));
          await sleep(20);
          await tx.run(setCounter(database, Number(row?.value) + 1));
        });
      await Promise.all([increment(), increment(), increment()]);
      assert.equal((await counter(database).executeTakeFirst())?.value, '3');
    });
  });

  it('lets no other statement of the process see what an open transaction has not committed', async () => {
    await withCounter(async (database) => {
      let outsideRead: Promise<{ value: string } | undefined> | undefined;
      await assert.rejects(
        database.transaction(async (tx) => {
          await tx.run(setCounter(database, 7));
          outsideRead = counter(database).executeTakeFirst();
          await sleep(20);
          throw new Error('changed my mind');
        }),
        /changed my mind/,
      );
      assert.deepEqual(await outsideRead, { value: '0' });
    });
  });

  it('runs what waits for the commit after it, and never after a rollback', async () => {
    await withCounter(async (database) => {
      const seen: string[] = [];
      await database.transaction(async (tx) => {
        await tx.run(setCounter(database, 1));
        tx.afterCommit(() => seen.push('committed'));
        assert.deepEqual(seen, [], 'not before the commit');
      });
      assert.deepEqual(seen, ['committed']);
      await assert.rejects(
        database.transaction(async (tx) => {
          await tx.run(setCounter(database, 2));
          tx.afterCommit(() => seen.push('rolled back'));
          throw new Error('no');
        }),
        /no/,
      );
      assert.deepEqual(seen, ['committed']);
    });
  });
});
