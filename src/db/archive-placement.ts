import { type RawBuilder, sql } from 'kysely';

/**
 * The ids of the archives whose image `node` can read from its own disk: its own, and those of no
 * node (imported, adopted, or on the shared folder). Work that reads an image claims only these.
 */
export function archivesReadableBy(node: string): RawBuilder<unknown> {
  return sql`(select id from archives where node_id is null or node_id = ${node})`;
}
