import type { DriveMediaSnapshot } from '../drives/state.js';
import type { ErrorCode } from '../error-codes.js';
import { errorMessage } from '../errors.js';
import type { RemoteDrive, RemoteDrives } from '../system/devices.js';
import type { BridgedEvent, ClusterLogger, EventBridge } from './event-bridge.js';
import type { NodeDriveState } from './model.js';
import type { NodeView } from './registry.js';

/** The bridge's stream for requests one instance makes of another's drives. */
const COMMAND_STREAM = 'cluster';
/** A node reads its idle drives every round while someone looked at them within two minutes (src/drives/state.ts); telling it twice a minute keeps that up. */
const LOOKED_EVERY_MS = 30_000;

/** What an instance asks of the node that owns a drive. */
type DriveCommand = { type: 'drive.eject'; node: string; device: string } | { type: 'drives.looked' };

function snapshotOf(state: NodeDriveState): DriveMediaSnapshot {
  return {
    state: state.media,
    media: state.disc ?? null,
    // The code is one the node's own drive watch gave (src/drives/state.ts), and every node runs the same version.
    error: state.error === null ? null : { code: state.error as ErrorCode, message: state.errorMessage ?? state.error },
    checkedAt: state.checkedAt,
  };
}

export interface RemoteDrivesDeps {
  /** The cluster's nodes as this process sees them. */
  nodes: () => Promise<NodeView[]>;
  bridge: Pick<EventBridge, 'publish'>;
  log: ClusterLogger;
  now?: () => number;
}

/**
 * The drives of the other online nodes, from their last heartbeat (cluster_drives): what a web
 * instance lists and makes jobs for. Looking at them tells their nodes, so they keep reading their
 * idle drives as they do while someone looks at their own pages; an eject is asked of the node that
 * owns the drive.
 */
export function createRemoteDrives(deps: RemoteDrivesDeps): RemoteDrives {
  const now = deps.now ?? Date.now;
  let lookedAt = Number.NEGATIVE_INFINITY;
  const send = (command: DriveCommand): Promise<void> => deps.bridge.publish(COMMAND_STREAM, command.type, command);

  return {
    async list(): Promise<RemoteDrive[]> {
      if (now() - lookedAt >= LOOKED_EVERY_MS) {
        lookedAt = now();
        send({ type: 'drives.looked' }).catch((error: unknown) =>
          deps.log.warn({ err: error }, `the other nodes were not told that their drives are looked at: ${errorMessage(error)}`),
        );
      }
      const nodes = await deps.nodes();
      return nodes
        .filter((node) => node.online && !node.self)
        .flatMap((node) =>
          node.drives.flatMap((reported) =>
            // A row of a version that did not report the drive itself cannot be made a job of; that node is flagged for its version.
            reported.state.drive === undefined ? [] : [{ drive: { ...reported.state.drive, node: node.id }, known: snapshotOf(reported.state) }],
          ),
        );
    },

    async eject(drive) {
      if (drive.node === undefined) throw new Error(`${drive.id} names no node`);
      await send({ type: 'drive.eject', node: drive.node, device: drive.id });
    },
  };
}

export interface DriveCommandHandlers {
  /** This node's name: only commands for its drives are carried out. */
  node: string;
  eject: (deviceId: string) => Promise<unknown>;
  looked: () => void;
  log: ClusterLogger;
}

/** Carries out on this node what other instances ask of its drives. */
export function followDriveCommands(bridge: Pick<EventBridge, 'subscribe'>, handlers: DriveCommandHandlers): () => void {
  return bridge.subscribe((event: BridgedEvent) => {
    if (event.stream !== COMMAND_STREAM || typeof event.payload !== 'object' || event.payload === null) return;
    const command = event.payload as Partial<DriveCommand>;
    if (command.type === 'drives.looked') handlers.looked();
    else if (command.type === 'drive.eject' && 'node' in command && command.node === handlers.node && typeof command.device === 'string') {
      const device = command.device;
      handlers
        .eject(device)
        .catch((error: unknown) => handlers.log.warn({ err: error, device, from: event.from }, `eject of ${device} asked by ${event.from} failed`));
    }
  });
}
