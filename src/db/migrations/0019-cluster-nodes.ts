import { type Kysely, type Migration, sql } from 'kysely';

/**
 * The cluster's nodes (issue 15): each process registers itself under its node name with its role,
 * version and a heartbeat, and the drives it owns with their last known state. A job names the
 * node whose drive it reads, an archive the node whose disk holds the image when the output folder
 * is not shared; both stay null in the embedded mode. No foreign key from jobs and archives: their
 * history outlives a node that is taken out of the cluster. The same statements on both engines
 * (text, integer, check constraints). Frozen like every released migration.
 */
export const clusterNodesMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`create table cluster_nodes (
      id text primary key,
      role text not null check (role in ('all', 'web', 'worker')),
      version text not null,
      hostname text not null,
      pid integer not null,
      started_at text not null,
      heartbeat_at text not null,
      internal_url text
    )`.execute(db);
    await sql`create table cluster_drives (
      node_id text not null references cluster_nodes(id) on delete cascade,
      device_id text not null,
      path text not null,
      label text not null,
      state text not null,
      updated_at text not null,
      primary key (node_id, device_id)
    )`.execute(db);
    await db.schema.alterTable('jobs').addColumn('node_id', 'text').execute();
    await db.schema.alterTable('archives').addColumn('node_id', 'text').execute();
    // One active job per drive of a node: two nodes' sr0 are two drives. A job of the embedded
    // mode names no node, so its drives stay one set, as before.
    await db.schema.dropIndex('jobs_one_active_per_device').execute();
    await sql`create unique index jobs_one_active_per_device on jobs (coalesce(node_id, ''), device_id) where status in ('running', 'verifying')`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropIndex('jobs_one_active_per_device').execute();
    await sql`create unique index jobs_one_active_per_device on jobs (device_id) where status in ('running', 'verifying')`.execute(db);
    await db.schema.alterTable('archives').dropColumn('node_id').execute();
    await db.schema.alterTable('jobs').dropColumn('node_id').execute();
    await db.schema.dropTable('cluster_drives').execute();
    await db.schema.dropTable('cluster_nodes').execute();
  },
};
