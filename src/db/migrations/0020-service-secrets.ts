import { type Kysely, type Migration, sql } from 'kysely';

/**
 * Secrets every instance of a cluster must share (issue 15): the key that signs bearer tokens, so a
 * token one web instance issued is good at the others, and the VAPID key pair that browsers
 * subscribe to push with, so any instance's outbox can send to them. The embedded mode keeps them
 * as files in the data dir, as before, and leaves this table empty. Frozen like every released migration.
 */
export const serviceSecretsMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`create table service_secrets (
      name text primary key,
      value text not null,
      created_at text not null
    )`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('service_secrets').execute();
  },
};
