import type { Selectable } from 'kysely';
import { NODE_ROLES, type NodeDrive, type NodeDriveState, type NodeRecord } from '../cluster/model.js';
import type { Database } from './database.js';
import type { ClusterDrivesTable, ClusterNodesTable } from './schema.js';
import { CorruptRowError, parseJson, timestamp, toJson } from './values.js';

/** A node as it registers: everything but its drives, which come with each heartbeat. */
export type NodeRegistration = Omit<NodeRecord, 'drives' | 'heartbeatAt'>;

/** A drive as a heartbeat reports it (its time is the heartbeat's). */
export type NodeDriveReport = Omit<NodeDrive, 'updatedAt'>;

export interface ClusterRepository {
  /** Adds the node, or replaces the row of an earlier process of the same name (its drives go with it); its heartbeat is its start. */
  register(node: NodeRegistration): Promise<void>;
  /**
   * Renews the node's heartbeat and replaces its drives with `drives`, in one transaction. False when
   * the node has no row (removed meanwhile): nothing is written, and the node registers again.
   */
  heartbeat(nodeId: string, drives: readonly NodeDriveReport[], at: Date): Promise<boolean>;
  /** Records where the other nodes reach the node's internal endpoint (known once it listens). */
  setInternalUrl(nodeId: string, url: string | null): Promise<void>;
  /** Removes the node and its drives (a graceful stop); nothing when it is not there. */
  remove(nodeId: string): Promise<void>;
  get(nodeId: string): Promise<NodeRecord | null>;
  /** Every node by name, each with its drives by device id. */
  list(): Promise<NodeRecord[]>;
}

function rowToDrive(row: Selectable<ClusterDrivesTable>): NodeDrive {
  const state = parseJson(row.state, () => new CorruptRowError('cluster drive', `${row.node_id}/${row.device_id}`, 'state', 'not JSON'));
  if (typeof state !== 'object' || state === null || Array.isArray(state) || typeof (state as { media?: unknown }).media !== 'string') {
    throw new CorruptRowError('cluster drive', `${row.node_id}/${row.device_id}`, 'state', 'not a drive state');
  }
  return { deviceId: row.device_id, path: row.path, label: row.label, state: state as NodeDriveState, updatedAt: row.updated_at };
}

function rowToNode(row: Selectable<ClusterNodesTable>, drives: NodeDrive[]): NodeRecord {
  if (!(NODE_ROLES as readonly string[]).includes(row.role)) throw new CorruptRowError('cluster node', row.id, 'role', row.role);
  return {
    id: row.id,
    role: row.role,
    version: row.version,
    hostname: row.hostname,
    pid: row.pid,
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
    internalUrl: row.internal_url,
    drives,
  };
}

export function createClusterRepository(database: Database): ClusterRepository {
  const db = database.kysely;
  return {
    register(node) {
      return database.transaction(async (tx) => {
        // Deleting first drops the drives an earlier process of this name reported, by the cascade.
        await tx.run(db.deleteFrom('cluster_nodes').where('id', '=', node.id));
        await tx.run(
          db.insertInto('cluster_nodes').values({
            id: node.id,
            role: node.role,
            version: node.version,
            hostname: node.hostname,
            pid: node.pid,
            started_at: node.startedAt,
            heartbeat_at: node.startedAt,
            internal_url: node.internalUrl,
          }),
        );
      });
    },

    heartbeat(nodeId, drives, at) {
      const now = timestamp(at);
      return database.transaction(async (tx) => {
        const renewed = await tx.run(db.updateTable('cluster_nodes').set({ heartbeat_at: now }).where('id', '=', nodeId));
        if (renewed === 0) return false;
        await tx.run(db.deleteFrom('cluster_drives').where('node_id', '=', nodeId));
        if (drives.length > 0) {
          await tx.run(
            db.insertInto('cluster_drives').values(
              drives.map((drive) => ({
                node_id: nodeId,
                device_id: drive.deviceId,
                path: drive.path,
                label: drive.label,
                state: toJson(drive.state),
                updated_at: now,
              })),
            ),
          );
        }
        return true;
      });
    },

    async setInternalUrl(nodeId, url) {
      await db.updateTable('cluster_nodes').set({ internal_url: url }).where('id', '=', nodeId).execute();
    },

    async remove(nodeId) {
      await db.deleteFrom('cluster_nodes').where('id', '=', nodeId).execute();
    },

    async get(nodeId) {
      const row = await db.selectFrom('cluster_nodes').selectAll().where('id', '=', nodeId).executeTakeFirst();
      if (row === undefined) return null;
      const drives = await db.selectFrom('cluster_drives').selectAll().where('node_id', '=', nodeId).orderBy('device_id').execute();
      return rowToNode(row, drives.map(rowToDrive));
    },

    async list() {
      // Two plain reads, not a write transaction (the dashboard asks often): a heartbeat between them
      // gives a node's newer drives, which are as current, and drives of a node that left in between
      // have no node row to go with and are dropped.
      const nodes = await db.selectFrom('cluster_nodes').selectAll().orderBy('id').execute();
      const drives = await db.selectFrom('cluster_drives').selectAll().orderBy('node_id').orderBy('device_id').execute();
      const byNode = new Map<string, NodeDrive[]>();
      for (const row of drives) byNode.set(row.node_id, [...(byNode.get(row.node_id) ?? []), rowToDrive(row)]);
      return nodes.map((row) => rowToNode(row, byNode.get(row.id) ?? []));
    },
  };
}
