import type { MediaState } from '../drives/state.js';
import type { Drive, MediaInfo } from '../drives/types.js';

/** What a process of the cluster runs (`disk2iso serve --role`); the embedded mode runs everything as `all`. */
export const NODE_ROLES = ['all', 'web', 'worker'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

/** A drive's last known state as its node reported it in a heartbeat. */
export interface NodeDriveState {
  /** What the node's drive watch knows of the medium (src/drives/state.ts). */
  media: MediaState;
  /** Whether a medium is in; null before the first answer. */
  present: boolean | null;
  /** The medium's volume label, when one was read. */
  label: string | null;
  /** The error code of the latest probe that failed or hung; null otherwise. */
  error: string | null;
  /** When the answer was read; null before the first answer. */
  checkedAt: string | null;
  /**
   * The drive and its medium as the node knows them, for the web instances that list the drive and
   * make jobs for it; absent in the rows of a version before them.
   */
  drive?: Drive;
  disc?: MediaInfo | null;
  errorMessage?: string | null;
}

export interface NodeDrive {
  deviceId: string;
  path: string;
  /** The drive's vendor and model ("ASUS DRW-24B1ST"), '' when it names none: a name in no language, which every reader's page shows as it is. */
  label: string;
  state: NodeDriveState;
  updatedAt: string;
}

/** A node as stored: who it is, what it runs, and when it last gave a sign of life. */
export interface NodeRecord {
  id: string;
  role: NodeRole;
  version: string;
  hostname: string;
  pid: number;
  startedAt: string;
  heartbeatAt: string;
  internalUrl: string | null;
  drives: NodeDrive[];
}
