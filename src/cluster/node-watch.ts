import { errorMessage } from '../errors.js';
import type { JobRecord } from '../jobs/model.js';
import type { ClusterLogger } from './event-bridge.js';

export interface NodeWatch {
  /** Whether the node was online at the last look; null for a job on no node, or before the first look. */
  online(nodeId: string | null): boolean | null;
  start(): Promise<void>;
  stop(): void;
}

export interface NodeWatchDeps {
  /** Whether each listed node is online (registry.online()). */
  read: () => Promise<Map<string, boolean>>;
  /** The jobs of a node that are queued, running or verifying: what a change of its state matters to. */
  jobsOf: (nodeId: string) => Promise<JobRecord[]>;
  /** Shows a job again on the live streams (its update then carries the node's new state). */
  show: (job: JobRecord) => void;
  everyMs: number;
  log: ClusterLogger;
}

/**
 * Looks at the nodes' heartbeats every interval: when a node goes offline (its heartbeat older than
 * cluster.offline_after_seconds, or it left the list) or comes back, its unfinished jobs are shown
 * again on this instance's live streams with the node's state, so a page shows "node offline" on
 * a running job within a heartbeat, without being reloaded. No event of the node itself can say so.
 */
export function createNodeWatch(deps: NodeWatchDeps): NodeWatch {
  let known = new Map<string, boolean>();
  let looked = false;
  let timer: NodeJS.Timeout | undefined;
  let looking: Promise<void> = Promise.resolve();

  async function look(): Promise<void> {
    const now = await deps.read();
    const changed = looked ? [...new Set([...known.keys(), ...now.keys()])].filter((node) => (known.get(node) ?? false) !== (now.get(node) ?? false)) : [];
    known = now;
    looked = true;
    for (const node of changed) for (const job of await deps.jobsOf(node)) deps.show(job);
  }

  const lookInTurn = (): void => {
    looking = looking.then(look).catch((error: unknown) => deps.log.warn({ err: error }, `the nodes' state could not be read: ${errorMessage(error)}`));
  };

  return {
    online(nodeId) {
      if (nodeId === null || !looked) return null;
      return known.get(nodeId) ?? false;
    },
    async start() {
      lookInTurn();
      await looking;
      timer = setInterval(lookInTurn, deps.everyMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
