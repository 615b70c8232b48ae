import { type Kysely, sql } from 'kysely';
import type { DB } from './schema.js';

/** The change counters kept in table_versions, and the migration that made each. */
const COUNTERS = { jobs: '0004', credentials: '0005' } as const;
export type ChangeCounter = keyof typeof COUNTERS;

/** The current value of a change counter: equal readings mean nothing it counts has changed in between. */
export async function readChangeCounter(db: Kysely<DB>, counter: ChangeCounter): Promise<number> {
  const { rows } = await sql<{ version: number }>`select version from table_versions where name = ${counter}`.execute(db);
  const row = rows[0];
  if (row === undefined) throw new Error(`table_versions has no row for ${counter}; migration ${COUNTERS[counter]} did not run`);
  return row.version;
}
