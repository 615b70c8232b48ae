import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
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
});
