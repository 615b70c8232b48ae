import type { Database } from './database.js';
import { timestamp } from './values.js';

/** Secrets the instances of a cluster share, kept in its database (migration 0020). */
export interface SharedSecrets {
  /**
   * The secret named `name`. The first instance to ask stores what its `make()` gave; every other
   * one, asking at the same moment or later, gets that same value.
   */
  getOrCreate(name: string, make: () => string): Promise<string>;
}

export function createSecretRepository(database: Database): SharedSecrets {
  const db = database.kysely;
  return {
    async getOrCreate(name, make) {
      await db
        .insertInto('service_secrets')
        .values({ name, value: make(), created_at: timestamp(new Date()) })
        .onConflict((conflict) => conflict.column('name').doNothing())
        .execute();
      const row = await db.selectFrom('service_secrets').select('value').where('name', '=', name).executeTakeFirstOrThrow();
      return row.value;
    },
  };
}
