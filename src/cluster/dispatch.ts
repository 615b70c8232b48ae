import { setTimeout as sleep } from 'node:timers/promises';
import { CompiledQuery } from 'kysely';
import PgBoss from 'pg-boss';
import type { Executor } from '../db/database.js';
import { redactedUrl } from '../db/postgres.js';
import { errorMessage } from '../errors.js';
import type { JobPriority } from '../jobs/model.js';
import { type ClusterLogger, checkNodeId } from './event-bridge.js';

/**
 * Delivers work to the node whose drive a job names, through pg-boss (docs/architecture.md,
 * "Cluster mode"). The jobs table stays the record of a job; a message here only says "job X may
 * run on your drive now" and is consumed once the node's runner holds the job's lease.
 */
export interface Dispatch {
  /** Installs or updates pg-boss's schema (`pgboss`) and this node's queue; delivery starts once a handler is set. */
  start(): Promise<void>;
  /** Stops fetching, waits for the delivery under way, and closes pg-boss's connections. */
  stop(): Promise<void>;
  /**
   * Inside the transaction that makes `jobId` runnable (enqueue, requeue, resume, recovery): once it
   * commits, `nodeId`'s handler gets the job, higher priorities first; if it rolls back, nothing is
   * sent. A node that never started gets its queue here, in the same transaction.
   */
  sendWithin(tx: Executor, nodeId: string, jobId: string, priority: JobPriority): Promise<void>;
  /**
   * This node's handler: it claims the job and returns once the run holds its lease (or once it
   * found the job no longer runnable: finished, or taken by someone); it throws when the job cannot
   * start yet (its drive is busy), and the same job is delivered again after the retry delay.
   */
  onWork(handler: (jobId: string) => Promise<void>): void;
  /**
   * Looks for work now instead of at the end of the polling interval: for a message to this node
   * that another instance announced (a message this instance sends to itself wakes it by itself).
   */
  wake(): void;
}

export interface DispatchOptions {
  url: string;
  /** This node's name: its queue is `disk2iso-node-<nodeId>`. */
  nodeId: string;
  log: ClusterLogger;
  /** How often an idle node looks for work; default 1000 ms. */
  pollMs?: number;
  /** How long a job whose drive is busy waits before it is offered again; default 5 s. */
  retryDelaySeconds?: number;
}

/** pg-boss's numbers: higher first. */
const PRIORITY: Record<JobPriority, number> = { low: 0, normal: 1, high: 2 };
/**
 * A message not taken within this is archived by pg-boss (its `keep_until`). A job that waits longer
 * (a drive busy for a month) needs a new message: the recovery pass sends one for every queued job
 * without a pending message.
 */
const RETENTION_MINUTES = 30 * 24 * 60;
/** A handler that neither completed nor failed its delivery in this time (its process died) is retried. */
const EXPIRE_SECONDS = 15 * 60;

/** How often a start step a deadlock rolled back is tried, and the first pause before it is (doubling, with jitter). */
const DEADLOCK_ATTEMPTS = 8;
const DEADLOCK_PAUSE_MS = 50;

/** `step` again while PostgreSQL ends it as a deadlock's victim (SQLSTATE 40P01), with growing, jittered pauses. */
async function afterDeadlocks<T>(step: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await step();
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (code !== '40P01' || attempt >= DEADLOCK_ATTEMPTS) throw error;
      await sleep(DEADLOCK_PAUSE_MS * 2 ** attempt * (0.5 + Math.random()));
    }
  }
}

/** The queue of a node. */
function nodeQueue(nodeId: string): string {
  return `disk2iso-node-${checkNodeId(nodeId)}`;
}

/**
 * pg-boss runs its statements through this when given `db`: here the connection of one of our
 * transactions, so its insert commits or rolls back with the job row.
 */
function insideTransaction(tx: Executor): PgBoss.Db {
  return {
    // pg-boss's own type says any[]: its statements take plain values, passed on as they are.
    executeSql: async (text: string, values: unknown[]) => ({ rows: await tx.all({ compile: () => CompiledQuery.raw(text, values) }) }),
  };
}

export function createDispatch(options: DispatchOptions): Dispatch {
  const { url, log } = options;
  const ownQueue = nodeQueue(options.nodeId);
  const pollMs = options.pollMs ?? 1000;
  const retryDelay = options.retryDelaySeconds ?? 5;
  const queueOptions = {
    policy: 'standard',
    retryDelay,
    // Enough retries for a job to wait behind others on its drive for the whole retention.
    retryLimit: Math.ceil((RETENTION_MINUTES * 60) / Math.max(1, retryDelay)),
    retryBackoff: false,
    expireInSeconds: EXPIRE_SECONDS,
    retentionMinutes: RETENTION_MINUTES,
  } as const;
  const shownUrl = redactedUrl(url);
  const boss = new PgBoss({
    connectionString: url,
    max: 3,
    application_name: `disk2iso-dispatch-${options.nodeId}`,
    // Maintenance expires deliveries whose handler died and archives old messages; one node at a time does it.
    supervise: true,
    schedule: false,
    migrate: true,
  });
  // Its pool reports connections the server dropped; without a listener the event would end the process.
  boss.on('error', (error) => log.warn({ err: error, url: shownUrl }, 'the job dispatch lost a database connection'));

  let handler: ((jobId: string) => Promise<void>) | undefined;
  let started = false;
  const stopping = new AbortController();
  /** Ends the idle wait of the delivery loop early. */
  let idle: AbortController | undefined;
  let loop: Promise<void> | undefined;

  /**
   * Its own fetch loop rather than pg-boss's work(): that one completes and fails deliveries
   * without awaiting them, and a rejection there (the database restarting at that moment) would be
   * unhandled and end the process.
   */
  async function deliverLoop(work: (jobId: string) => Promise<void>): Promise<void> {
    while (!stopping.signal.aborted) {
      let message: PgBoss.Job<{ jobId: string }> | undefined;
      try {
        // pg-boss's fetch answers nothing while the database is away, so this loop idles until it is back.
        [message] = await boss.fetch<{ jobId: string }>(ownQueue, { batchSize: 1, priority: true });
      } catch (error) {
        log.warn({ err: error, url: shownUrl }, 'the job dispatch could not look for work');
      }
      if (message !== undefined) await deliver(work, message);
      else {
        idle = new AbortController();
        await sleep(pollMs, undefined, { signal: AbortSignal.any([stopping.signal, idle.signal]) }).catch(() => undefined);
        idle = undefined;
      }
    }
  }

  async function deliver(work: (jobId: string) => Promise<void>, message: PgBoss.Job<{ jobId: string }>): Promise<void> {
    let outcome: 'complete' | 'retry' = 'complete';
    let reason = '';
    try {
      await work(message.data.jobId);
    } catch (error) {
      outcome = 'retry';
      reason = errorMessage(error);
    }
    try {
      // Not delivered twice while the handler is alive; if this fails, the delivery expires and comes again, and a claim of a running job finds it taken.
      if (outcome === 'complete') await boss.complete(ownQueue, message.id);
      else await boss.fail(ownQueue, message.id, { message: reason });
    } catch (error) {
      log.warn({ err: error, url: shownUrl, jobId: message.data.jobId }, 'the job dispatch could not record a delivery; it comes again once it expires');
    }
  }

  const begin = (): void => {
    if (started && handler !== undefined && loop === undefined) loop = deliverLoop(handler);
  };

  return {
    async start() {
      // pg-boss installs its schema under its own advisory lock. Instances started together then create
      // their queues (a partition of pgboss.job each) at once, and PostgreSQL may pick one of them as a
      // deadlock's victim: that creation was rolled back whole, and is done again.
      await boss.start();
      await afterDeadlocks(() => boss.createQueue(ownQueue, { name: ownQueue, ...queueOptions }));
      started = true;
      begin();
    },

    async stop() {
      stopping.abort();
      idle = undefined;
      await loop;
      if (started) await boss.stop({ graceful: false, close: true });
    },

    async sendWithin(tx, nodeId, jobId, priority) {
      const queue = nodeQueue(nodeId);
      const send = () => boss.send(queue, { jobId }, { priority: PRIORITY[priority], db: insideTransaction(tx) });
      if (queue === ownQueue) tx.afterCommit(() => idle?.abort());
      if ((await send()) !== null) return;
      // No row: the queue does not exist yet (pg-boss inserts through a join with its queue table).
      await tx.all({ compile: () => CompiledQuery.raw('select pgboss.create_queue($1, $2)', [queue, JSON.stringify(queueOptions)]) });
      if ((await send()) === null) throw new Error(`pg-boss did not accept a message to ${queue}`);
    },

    wake() {
      idle?.abort();
    },

    onWork(work) {
      if (handler !== undefined) throw new Error('onWork: this node already has a handler');
      handler = work;
      begin();
    },
  };
}
