import type { Kysely, Migration } from 'kysely';

/**
 * Who holds a job's lease, beyond the worker id: the host, and the process there by pid and start
 * time (JSON, written by the queue at each claim, cleared with the lease). On the same host a
 * restart can then tell that the holder has died and take its jobs over at once, instead of
 * waiting for the lease to run out. Frozen like every released migration.
 */
export const leaseHolderMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('jobs').addColumn('lease_holder', 'text').execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.alterTable('jobs').dropColumn('lease_holder').execute();
  },
};
