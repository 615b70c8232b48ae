import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import { openPostgres } from '../../src/db/postgres.js';
import { usePostgres } from '../support/postgres.js';

const postgres = usePostgres();

test('a PostgreSQL restart fails the statements in flight, never the process, and the next ones work', async () => {
  const database = await openPostgres(await postgres().createDatabase());
  try {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      uncaught.push(error);
    };
    process.on('uncaughtException', onUncaught);
    try {
      // One statement running on a checked-out connection, one transaction open on another.
      const sleeping = sql`select pg_sleep(30)`.execute(database.kysely).then(
        () => 'finished',
        (error: unknown) => error,
      );
      let enteredTransaction: () => void = () => undefined;
      const entered = new Promise<void>((resolve) => {
        enteredTransaction = resolve;
      });
      const transaction = database
        .transaction(async (tx) => {
          await tx.run(database.kysely.selectNoFrom(sql<number>`1`.as('one')));
          enteredTransaction();
          await tx.run(database.kysely.selectNoFrom(sql<number>`pg_sleep(30)`.as('slept')));
        })
        .then(
          () => 'committed',
          (error: unknown) => error,
        );
      await entered;
      await postgres().restart();
      const [slept, committed] = await Promise.all([sleeping, transaction]);
      assert.ok(slept instanceof Error, `the statement in flight fails instead of ${String(slept)}`);
      assert.ok(committed instanceof Error, `the transaction in flight fails instead of ${String(committed)}`);
      // A pooled connection the restart ended is replaced: the next statements run.
      for (let attempt = 0; attempt < 3; attempt++) {
        const { rows } = await sql<{ one: number }>`select 1 as one`.execute(database.kysely);
        assert.deepEqual(rows, [{ one: 1 }]);
      }
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(uncaught, [], 'no connection error reached the process as an uncaught exception');
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
  } finally {
    await database.close();
  }
});
