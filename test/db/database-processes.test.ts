import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { MIGRATION_NAMES } from '../../src/db/migrations/index.js';
import { type FixtureProcess, startFixture } from './fixture-process.js';
import { withTempDir } from './support.js';

describe('openDatabase from several processes', () => {
  it('migrates a new file exactly once when processes open it together', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'shared.sqlite');
      const processes: FixtureProcess[] = [];
      try {
        for (let index = 0; index < 4; index += 1) processes.push(startFixture(new URL('./fixtures/open-database.js', import.meta.url), [file]));
        for (const fixture of processes) assert.equal(await fixture.nextLine(), 'ready');
        for (const fixture of processes) fixture.child.stdin.write('go\n');
        for (const fixture of processes) {
          assert.equal(await fixture.nextLine(), 'opened');
          const { code, stderr } = await fixture.exited;
          assert.equal(code, 0, stderr);
        }
      } finally {
        for (const fixture of processes) fixture.child.kill('SIGKILL');
      }
      const database = await openDatabase({ file });
      try {
        const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(database.kysely);
        assert.deepEqual(
          applied.rows.map((row) => row.name),
          [...MIGRATION_NAMES],
        );
      } finally {
        await database.close();
      }
    });
  });

  it('makes a transaction of another process wait for the write lock instead of failing', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'shared.sqlite');
      const database = await openDatabase({ file });
      const other = startFixture(new URL('./fixtures/increment-counter.js', import.meta.url), [file]);
      try {
        const counter = database.kysely.selectFrom('settings').select('value').where('key', '=', 'counter');
        await database.kysely.insertInto('settings').values({ key: 'counter', value: '0', updated_at: 'now', updated_by: null }).execute();
        assert.equal(await other.nextLine(), 'ready');
        await database.transaction(async (tx) => {
          const row = await tx.first(counter);
          other.child.stdin.write('go\n');
          assert.equal(await other.nextLine(), 'writing');
          // The other process now reads and writes the counter. Here the transaction holds the write
          // lock from its start, so it waits; a deferred one would let it write in between, and
          // then fail on its own write (SQLITE_BUSY: its read is out of date).
          await Promise.race([other.exited, sleep(1000)]);
          await tx.run(
            database.kysely
              .updateTable('settings')
              .set({ value: String(Number(row?.value) + 1) })
              .where('key', '=', 'counter'),
          );
        });
        const { code, stderr } = await other.exited;
        assert.equal(code, 0, stderr);
        assert.equal((await counter.executeTakeFirst())?.value, '2');
      } finally {
        other.child.kill('SIGKILL');
        await database.close();
      }
    });
  });
});
