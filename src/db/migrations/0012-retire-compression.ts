import { type Kysely, type Migration, sql } from 'kysely';

/**
 * The setting `imaging.compression` is gone: its only value was `none` and nothing read it. A value
 * stored through the API or the configuration page goes with it, so the service does not report it
 * as an unknown setting at every start. Frozen like every released migration.
 */
export const retireCompressionMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`delete from settings where key = 'imaging.compression'`.execute(db);
  },
};
