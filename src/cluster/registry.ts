import type { Clock } from '../clock.js';
import type { ClusterRepository, NodeDriveReport, NodeRegistration } from '../db/cluster-repository.js';
import type { DriveStates } from '../drives/state.js';
import type { Drive } from '../drives/types.js';
import { ConflictError, errorMessage } from '../errors.js';
import type { NodeRecord } from './model.js';

/** A node as the status page, the API and `disk2iso status` show it. */
export interface NodeView extends NodeRecord {
  /** Its heartbeat is younger than cluster.offline_after_seconds. */
  online: boolean;
  /** Seconds since its last heartbeat (0 for one stamped a moment ahead by another host's clock). */
  heartbeatAgeSeconds: number;
  /** It runs another version than this process: one of them wants an upgrade. */
  versionMismatch: boolean;
  /** It is this process. */
  self: boolean;
}

export interface NodeRegistryDeps {
  repository: ClusterRepository;
  clock: Clock;
  heartbeatMs: number;
  offlineAfterMs: number;
  version: string;
  node: Omit<NodeRegistration, 'version' | 'startedAt'>;
  /** The drives this node owns, as its heartbeat reports them (none for a web instance). */
  drives: () => NodeDriveReport[];
  /**
   * Whether a name another live process holds is refused: in the cluster database, where nodes share
   * the list. The embedded database serves one service; a second process on it (or on a restored
   * copy of it) takes the entry over, and its port or socket decides which one runs.
   */
  exclusiveName: boolean;
  /** Whether a process of this host is alive; another live process may not take over the node's name. */
  processAlive: (pid: number) => boolean;
  /** A heartbeat that could not be written (the database away): told, and tried again at the next beat. */
  onProblem: (message: string) => void;
  /** Runs `beat` every `ms` and returns how to stop it; default setInterval (unref'd). Tests call beat themselves. */
  every?: (ms: number, beat: () => void) => () => void;
}

export interface NodeRegistry {
  /** Registers this node (refusing, with `exclusiveName`, a name a live node of another process holds) and starts the heartbeat. */
  start(): Promise<void>;
  /** One heartbeat now: renews the entry and the drives, or registers again when the entry was removed. */
  beat(): Promise<void>;
  /** Where the other nodes reach this one's internal endpoint, once it listens; kept when the node registers again. */
  advertise(internalUrl: string): Promise<void>;
  /** Stops the heartbeat and removes the entry: a node stopped on purpose leaves the list. */
  stop(): Promise<void>;
  nodes(): Promise<NodeView[]>;
  /**
   * Whether each node is online, read at most once a second: every job list asks, and a heartbeat
   * comes every few seconds anyway.
   */
  online(): Promise<Map<string, boolean>>;
}

/** How long the answer of `online()` is reused. */
const ONLINE_CACHE_MS = 1000;

const defaultEvery = (ms: number, beat: () => void): (() => void) => {
  const timer = setInterval(beat, ms);
  timer.unref();
  return () => clearInterval(timer);
};

/** How the nodes look from one process: online or not by its clock, flagged by its version; `selfId` null for a process that is no node (the CLI). */
export function nodeViews(records: readonly NodeRecord[], viewer: { now: Date; offlineAfterMs: number; version: string; selfId: string | null }): NodeView[] {
  return records.map((record) => {
    const ageMs = Math.max(0, viewer.now.getTime() - Date.parse(record.heartbeatAt));
    return {
      ...record,
      online: ageMs < viewer.offlineAfterMs,
      heartbeatAgeSeconds: Math.floor(ageMs / 1000),
      versionMismatch: record.version !== viewer.version,
      self: record.id === viewer.selfId,
    };
  });
}

/** Whether a process of this host runs: signal 0 checks without sending anything (EPERM: it runs as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A drive as a heartbeat reports it, from what the drive watch knows without probing it again. */
export function driveReport(drive: Drive, snapshot: ReturnType<DriveStates['peek']>): NodeDriveReport {
  return {
    deviceId: drive.id,
    path: drive.path,
    label: [drive.vendor, drive.model].filter((part) => part !== null).join(' '),
    state: {
      media: snapshot.state,
      present: snapshot.media?.present ?? null,
      label: snapshot.media?.volumeLabel ?? null,
      error: snapshot.error?.code ?? null,
      checkedAt: snapshot.checkedAt,
      drive,
      disc: snapshot.media,
      errorMessage: snapshot.error?.message ?? null,
    },
  };
}

export function createNodeRegistry(deps: NodeRegistryDeps): NodeRegistry {
  const { repository, clock, node } = deps;
  const startedAt = clock().toISOString();
  const registration: NodeRegistration = { ...node, version: deps.version, startedAt };
  let stopTimer: (() => void) | null = null;
  let beating: Promise<void> = Promise.resolve();
  let onlineRead: { at: number; answer: Promise<Map<string, boolean>> } | null = null;
  const listNodes = async (): Promise<NodeView[]> =>
    nodeViews(await repository.list(), { now: clock(), offlineAfterMs: deps.offlineAfterMs, version: deps.version, selfId: node.id });

  /** Another process may hold the name while its heartbeat is fresh and it is not a dead process of this host (a restart after a crash). */
  function heldByAnother(existing: NodeRecord): boolean {
    if (clock().getTime() - Date.parse(existing.heartbeatAt) >= deps.offlineAfterMs) return false;
    if (existing.hostname !== node.hostname) return true;
    return existing.pid !== node.pid && deps.processAlive(existing.pid);
  }

  async function beatOnce(): Promise<void> {
    try {
      if (!(await repository.heartbeat(node.id, deps.drives(), clock()))) {
        await repository.register(registration);
        await repository.heartbeat(node.id, deps.drives(), clock());
      }
    } catch (error) {
      deps.onProblem(`the heartbeat of node ${node.id} was not recorded: ${errorMessage(error)}`);
    }
  }

  return {
    async start() {
      const existing = await repository.get(node.id);
      if (deps.exclusiveName && existing !== null && heldByAnother(existing)) {
        throw new ConflictError(
          'node_name_taken',
          `the node name ${node.id} is in use by pid ${existing.pid} on ${existing.hostname} (heartbeat ${existing.heartbeatAt}); give this process another cluster.node_name`,
          { node: node.id, hostname: existing.hostname, pid: existing.pid },
        );
      }
      await repository.register(registration);
      await repository.heartbeat(node.id, deps.drives(), clock());
      stopTimer = (deps.every ?? defaultEvery)(deps.heartbeatMs, () => {
        beating = beating.then(beatOnce);
      });
    },

    beat() {
      beating = beating.then(beatOnce);
      return beating;
    },

    async advertise(internalUrl) {
      registration.internalUrl = internalUrl;
      await repository.setInternalUrl(node.id, internalUrl);
    },

    async stop() {
      stopTimer?.();
      stopTimer = null;
      await beating;
      await repository.remove(node.id);
    },

    nodes: listNodes,

    online() {
      const now = clock().getTime();
      if (onlineRead === null || now - onlineRead.at >= ONLINE_CACHE_MS || now < onlineRead.at) {
        const answer = listNodes().then((views) => new Map(views.map((view) => [view.id, view.online])));
        // A failed read is not kept: the next call reads again.
        answer.catch(() => {
          if (onlineRead?.answer === answer) onlineRead = null;
        });
        onlineRead = { at: now, answer };
      }
      return onlineRead.answer;
    },
  };
}

/** A node as JSON (the API and `disk2iso status --json`). */
export function nodeJson(view: NodeView) {
  return {
    id: view.id,
    role: view.role,
    version: view.version,
    version_mismatch: view.versionMismatch,
    hostname: view.hostname,
    pid: view.pid,
    started_at: view.startedAt,
    heartbeat_at: view.heartbeatAt,
    heartbeat_age_seconds: view.heartbeatAgeSeconds,
    online: view.online,
    self: view.self,
    drives: view.drives.map((drive) => ({
      device_id: drive.deviceId,
      path: drive.path,
      label: drive.label,
      state: {
        media: drive.state.media,
        present: drive.state.present,
        label: drive.state.label,
        error: drive.state.error,
        checked_at: drive.state.checkedAt,
      },
      updated_at: drive.updatedAt,
    })),
  };
}
