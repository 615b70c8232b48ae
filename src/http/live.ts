import type { ArchiveEventBus } from '../archive/events.js';
import { type VerificationTaskView, toVerificationTaskView } from '../archive/verification-task.js';
import type { JobEventBus } from '../jobs/events.js';
import type { JobRecord } from '../jobs/model.js';
import { type JobView, toJobUpdate, toJobView } from '../jobs/view.js';
import type { JsonObject } from '../json.js';
import type { DomainEventType } from '../notifications/model.js';
import type { NotificationService } from '../notifications/service.js';

export const LIVE_MESSAGE_TYPES = [
  'job_created',
  'job_update',
  'job_finished',
  'job_removed',
  'job_log',
  'archive_verification_update',
  'domain_event',
] as const;
/** @internal exported for its tests */
export type LiveMessageType = (typeof LIVE_MESSAGE_TYPES)[number];

/**
 * The specification's WebSocket message; SSE sends the same JSON as `data:` with the type as event name.
 * @internal exported for its tests
 */
export interface JobLiveMessage {
  type: Exclude<LiveMessageType, 'archive_verification_update' | 'domain_event'>;
  job_id: string;
  data: Record<string, unknown>;
}

/** A verification task's state (queued, progress, its end): the same task GET /api/v1/archives/verification-tasks/{id} shows. */
interface VerificationLiveMessage {
  type: 'archive_verification_update';
  task_id: string;
  archive_id: string;
  data: VerificationTaskView;
}

/** A domain event as the durable stream recorded it (and webhooks and e-mails carry it): never coalesced, each one is sent. */
interface DomainEventLiveMessage {
  type: 'domain_event';
  event_id: string;
  data: { id: string; type: DomainEventType; at: string; payload: JsonObject };
}

export type LiveMessage = JobLiveMessage | VerificationLiveMessage | DomainEventLiveMessage;

/** One connected client, WebSocket or SSE. */
export interface LiveSink {
  /** `json` is the message serialised, once for all the clients it goes to. */
  send(message: LiveMessage, json: string): void;
  /** Bytes written but not yet taken by the network: how far behind the client is. */
  bufferedBytes(): number;
  heartbeat(): void;
  close(): void;
}

export interface LiveHub {
  /**
   * Starts delivering events to the sink, those `accepts` lets through (default all: a client
   * without the right to read archives gets no verification messages); returns the function that
   * stops it.
   */
  connect(sink: LiveSink, accepts?: (message: LiveMessage) => boolean): () => void;
  clientCount(): number;
  /** Closes every client and stops listening (server shutdown). */
  close(): void;
}

export interface LiveHubOptions {
  events: JobEventBus;
  /** Verification tasks' progress; none without it. */
  archiveEvents?: ArchiveEventBus;
  /** The durable stream's events as they are recorded; none without it. */
  domainEvents?: Pick<NotificationService, 'follow'>;
  /** In the cluster: whether a job's node is online, as this instance last saw it (src/cluster/node-watch.ts). */
  nodeOnline?: (nodeId: string | null) => boolean | null;
  /**
   * Each client gets at most one batch per interval (default 50 ms: twenty a second). An event that
   * comes after a quiet interval goes out at once; only events that follow closer are held back, so
   * the interval is also the longest an update waits for a client that keeps up. Per-job progress is already limited to four
   * events a second by the engine; the interval only bounds bursts across many jobs and log lines.
   */
  flushIntervalMs?: number;
  heartbeatMs?: number;
  /** A client with more unsent bytes than this gets nothing new until it catches up, only the latest state per job. */
  maxBufferedBytes?: number;
  /** Log lines (and, apart, domain events) kept per lagging client; older ones are dropped. */
  maxPendingLogLines?: number;
}

interface Client {
  sink: LiveSink;
  accepts: (message: LiveMessage) => boolean;
  /** Ordered by first arrival; a job's newer update replaces its older one in place. */
  pending: Map<string, LiveMessage>;
  logKeys: string[];
  domainKeys: string[];
}

/** A job's full state for job_created/job_finished; queue positions are not tracked live, so they are left out. */
function snapshot(job: JobRecord): Omit<JobView, 'queue_position'> {
  const view: Partial<JobView> = toJobView(job, null);
  delete view.queue_position;
  return view as Omit<JobView, 'queue_position'>;
}

/**
 * Fans job events and verification progress out to live clients. Emitting never waits on a
 * client: an event only updates each client's small pending map, and a timer flushes the maps.
 * Updates coalesce per job and per verification task, so a slow client's backlog is bounded by
 * their number (plus a capped number of log lines).
 * The flush is a leading-edge throttle: an update at 2 Hz reaches every client without waiting for
 * a timer tick, while a burst is still sent as one batch per interval.
 */
export function createLiveHub(options: LiveHubOptions): LiveHub {
  const flushIntervalMs = options.flushIntervalMs ?? 50;
  const maxBufferedBytes = options.maxBufferedBytes ?? 256 * 1024;
  const maxPendingLogLines = options.maxPendingLogLines ?? 200;
  const clients = new Set<Client>();
  let logSeq = 0;
  let lastFlushAt = Number.NEGATIVE_INFINITY;
  let flushTimer: NodeJS.Timeout | undefined;
  let closed = false;

  const enqueue = (key: string, message: LiveMessage): void => {
    if (clients.size > 0) scheduleFlush();
    for (const client of clients) {
      if (!client.accepts(message)) continue;
      if (message.type === 'job_finished' || message.type === 'job_removed') client.pending.delete(`update:${message.job_id}`);
      client.pending.set(key, message);
      // Lines and events are not coalesced: a client that lags keeps the newest of them only.
      const kept = message.type === 'job_log' ? client.logKeys : message.type === 'domain_event' ? client.domainKeys : null;
      if (kept !== null) {
        kept.push(key);
        if (kept.length > maxPendingLogLines) {
          const oldest = kept.shift();
          if (oldest !== undefined) client.pending.delete(oldest);
        }
      }
    }
  };

  const unsubscribe = [
    options.events.on('job.created', ({ job }) => enqueue(`created:${job.id}`, { type: 'job_created', job_id: job.id, data: snapshot(job) })),
    options.events.on('job.updated', ({ job }) =>
      enqueue(`update:${job.id}`, { type: 'job_update', job_id: job.id, data: toJobUpdate(job, options.nodeOnline?.(job.nodeId) ?? null) }),
    ),
    options.events.on('job.finished', ({ job }) => enqueue(`finished:${job.id}`, { type: 'job_finished', job_id: job.id, data: snapshot(job) })),
    options.events.on('job.removed', ({ jobId }) => enqueue(`removed:${jobId}`, { type: 'job_removed', job_id: jobId, data: {} })),
    options.events.on('job.log', ({ jobId, level, message, at }) => {
      logSeq += 1;
      enqueue(`log:${logSeq}`, { type: 'job_log', job_id: jobId, data: { level, message, at } });
    }),
  ];
  if (options.domainEvents) {
    unsubscribe.push(
      options.domainEvents.follow((event) =>
        enqueue(`domain:${event.id}`, {
          type: 'domain_event',
          event_id: event.id,
          data: { id: event.id, type: event.type, at: event.at, payload: event.payload },
        }),
      ),
    );
  }
  if (options.archiveEvents) {
    // The latest state of a task replaces any older one still pending: its end included, nothing is lost.
    unsubscribe.push(
      options.archiveEvents.on('archive.verification', ({ task }) =>
        enqueue(`verification:${task.id}`, {
          type: 'archive_verification_update',
          task_id: task.id,
          archive_id: task.archiveId,
          data: toVerificationTaskView(task),
        }),
      ),
    );
  }

  const drop = (client: Client): void => {
    clients.delete(client);
    client.pending.clear();
  };

  /** Returns whether a client still has something pending because it is behind. */
  const flush = (): boolean => {
    let lagging = false;
    const serialised = new Map<LiveMessage, string>();
    const json = (message: LiveMessage): string => {
      let text = serialised.get(message);
      if (text === undefined) {
        text = JSON.stringify(message);
        serialised.set(message, text);
      }
      return text;
    };
    for (const client of clients) {
      if (client.pending.size === 0) continue;
      if (client.sink.bufferedBytes() > maxBufferedBytes) {
        lagging = true;
        continue;
      }
      const batch = [...client.pending.values()];
      client.pending.clear();
      client.logKeys = [];
      client.domainKeys = [];
      try {
        for (const message of batch) client.sink.send(message, json(message));
      } catch {
        // A socket that fails on write is gone; its own close handler would say so a moment later.
        drop(client);
      }
    }
    return lagging;
  };

  function scheduleFlush(): void {
    if (flushTimer !== undefined || closed) return;
    // Never sooner than the next turn of the event loop, so the events emitted in one turn go out together.
    const wait = Math.max(0, lastFlushAt + flushIntervalMs - Date.now());
    flushTimer = setTimeout(() => {
      flushTimer = undefined;
      lastFlushAt = Date.now();
      // A lagging client is looked at again an interval later, events or not, until it caught up.
      if (flush()) scheduleFlush();
    }, wait);
    flushTimer.unref();
  }
  const heartbeatTimer = setInterval(() => {
    for (const client of clients) {
      try {
        client.sink.heartbeat();
      } catch {
        drop(client);
      }
    }
  }, options.heartbeatMs ?? 15_000);
  heartbeatTimer.unref();

  return {
    connect(sink, accepts = () => true) {
      const client: Client = { sink, accepts, pending: new Map(), logKeys: [], domainKeys: [] };
      clients.add(client);
      return () => drop(client);
    },
    clientCount: () => clients.size,
    close() {
      closed = true;
      clearTimeout(flushTimer);
      clearInterval(heartbeatTimer);
      for (const stop of unsubscribe) stop();
      flush();
      for (const client of [...clients]) {
        drop(client);
        try {
          client.sink.close();
        } catch {
          // Already closed by the peer: nothing left to release.
        }
      }
    },
  };
}
