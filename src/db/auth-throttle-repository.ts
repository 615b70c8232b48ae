import type { ThrottleScope } from '../auth/model.js';
import type { Database, Executor } from './database.js';
import { timestamp } from './values.js';

interface Lockout {
  scope: ThrottleScope;
  key: string;
  lockedAt: string;
  until: string;
}

/** Failed logins and the lockouts they caused, per account name and per client address. */
export interface ThrottleRepository {
  /** The lockout on this key that lasts beyond `now`, if any. */
  activeLockoutWithin(tx: Executor, scope: ThrottleScope, key: string, now: Date): Promise<Lockout | null>;
  addFailureWithin(tx: Executor, scope: ThrottleScope, key: string, at: Date): Promise<void>;
  /** Failures on this key at or after `since`. */
  countFailuresWithin(tx: Executor, scope: ThrottleScope, key: string, since: Date): Promise<number>;
  /** Locks the key until `until` and forgets the failures that led there, so the count starts afresh after it. */
  lockWithin(tx: Executor, scope: ThrottleScope, key: string, at: Date, until: Date): Promise<void>;
  /** Forgets the key's failures and lifts its lockout. */
  clearWithin(tx: Executor, scope: ThrottleScope, key: string): Promise<void>;
  /** Forgets failures before `failuresBefore` and lockouts that ended before `now`; returns how many rows went. */
  prune(failuresBefore: Date, now: Date): Promise<number>;
}

export function createThrottleRepository(database: Database): ThrottleRepository {
  const db = database.kysely;
  const failuresOf = (scope: ThrottleScope, key: string) => db.deleteFrom('login_failures').where('scope', '=', scope).where('key', '=', key);

  return {
    async activeLockoutWithin(tx, scope, key, now) {
      const row = await tx.first(db.selectFrom('lockouts').selectAll().where('scope', '=', scope).where('key', '=', key).where('until', '>', timestamp(now)));
      return row === undefined ? null : { scope: row.scope, key: row.key, lockedAt: row.locked_at, until: row.until };
    },

    async addFailureWithin(tx, scope, key, at) {
      await tx.run(db.insertInto('login_failures').values({ scope, key, at: timestamp(at) }));
    },

    async countFailuresWithin(tx, scope, key, since) {
      const row = await tx.first(
        db
          .selectFrom('login_failures')
          .select((eb) => eb.fn.countAll<number>().as('count'))
          .where('scope', '=', scope)
          .where('key', '=', key)
          .where('at', '>=', timestamp(since)),
      );
      return row?.count ?? 0;
    },

    async lockWithin(tx, scope, key, at, until) {
      await tx.run(
        db
          .insertInto('lockouts')
          .values({ scope, key, locked_at: timestamp(at), until: timestamp(until) })
          .onConflict((conflict) =>
            conflict.columns(['scope', 'key']).doUpdateSet((eb) => ({ locked_at: eb.ref('excluded.locked_at'), until: eb.ref('excluded.until') })),
          ),
      );
      await tx.run(failuresOf(scope, key));
    },

    async clearWithin(tx, scope, key) {
      await tx.run(failuresOf(scope, key));
      await tx.run(db.deleteFrom('lockouts').where('scope', '=', scope).where('key', '=', key));
    },

    async prune(failuresBefore, now) {
      const failures = await db.deleteFrom('login_failures').where('at', '<', timestamp(failuresBefore)).executeTakeFirst();
      const lockouts = await db.deleteFrom('lockouts').where('until', '<=', timestamp(now)).executeTakeFirst();
      return Number(failures.numDeletedRows) + Number(lockouts.numDeletedRows);
    },
  };
}
