import Type from 'typebox';
import { NODE_ROLES } from '../../cluster/model.js';
import { type NodeRegistry, nodeJson } from '../../cluster/registry.js';
import type { App } from '../app.js';
import { Nullable, Timestamp } from '../schemas.js';

const NodeDriveView = Type.Object(
  {
    device_id: Type.String(),
    path: Type.String(),
    label: Type.String({ description: "The drive's vendor and model, empty when it names none" }),
    state: Type.Object(
      {
        media: Type.Enum(['probed', 'failed', 'probing', 'not_responding'], { description: 'What the node knows of the medium' }),
        present: Nullable(Type.Boolean({ description: 'A medium is in; null before the first answer' })),
        label: Nullable(Type.String({ description: "The medium's volume label" })),
        error: Nullable(Type.String({ description: 'The error code of a probe that failed or hung' })),
        checked_at: Nullable(Timestamp),
      },
      { additionalProperties: false },
    ),
    updated_at: Timestamp,
  },
  { additionalProperties: false },
);

const NodeView = Type.Object(
  {
    id: Type.String({ description: 'The node name (cluster.node_name)' }),
    role: Type.Enum([...NODE_ROLES]),
    version: Type.String(),
    version_mismatch: Type.Boolean({ description: 'It runs another version than the node answering' }),
    hostname: Type.String(),
    pid: Type.Integer(),
    started_at: Timestamp,
    heartbeat_at: Timestamp,
    heartbeat_age_seconds: Type.Integer({ minimum: 0 }),
    online: Type.Boolean({ description: 'Its heartbeat is younger than cluster.offline_after_seconds' }),
    self: Type.Boolean({ description: 'It is the node answering' }),
    drives: Type.Array(NodeDriveView),
  },
  { additionalProperties: false },
);

export function clusterRoutes(registry: Pick<NodeRegistry, 'nodes'>) {
  return (app: App): void => {
    app.get(
      '/api/v1/system/nodes',
      {
        config: { permission: 'system:read' },
        schema: {
          tags: ['system'],
          summary: "The cluster's nodes, their drives and heartbeats",
          description:
            'Every registered node by name: its role, version (flagged when it differs from the answering node), heartbeat and drives. The embedded mode has one node, this process. A node stopped on purpose leaves the list; one that stopped answering stays, offline.',
          response: { 200: Type.Object({ nodes: Type.Array(NodeView) }, { additionalProperties: false }) },
        },
      },
      async () => ({ nodes: (await registry.nodes()).map(nodeJson) }),
    );
  };
}
