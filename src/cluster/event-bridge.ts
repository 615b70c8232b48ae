import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { redactedUrl } from '../db/postgres.js';
import type { EventBus } from '../events/bus.js';

/** The slice of a pino logger the cluster engines use. */
export interface ClusterLogger {
  info(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
}

/** An event another instance published: `stream` names its bus ('jobs', 'archive', 'discs'), `type` the event on it. */
export interface BridgedEvent {
  /** The node that published it. */
  from: string;
  stream: string;
  type: string;
  payload: unknown;
}

/**
 * Events may have been missed: the listening connection was down (`reconnected`, after `downMs`),
 * or a publisher's sequence skipped some (`missed`: it could not send them). The live streams are
 * then sent the current states of the recently changed jobs (src/cluster/share-events.ts).
 * @internal exported for its tests
 */
export type Resync = { reason: 'reconnected'; downMs: number } | { reason: 'missed'; from: string };

export interface EventBridge {
  /** Connects and listens; events published by others from then on are delivered. */
  start(): Promise<void>;
  /**
   * Sends an event to every other instance. Events are sent in the order they are published (in
   * batches, one statement each); the promise rejects when the database refused them, and those
   * events are lost: the receivers see the gap in this instance's sequence and resync.
   */
  publish(stream: string, type: string, payload: unknown): Promise<void>;
  /** Every event published by another bridge, in publish order per publisher; never this bridge's own. */
  subscribe(listener: (event: BridgedEvent) => void): () => void;
  onResync(listener: (resync: Resync) => void): () => void;
  /**
   * Forwards a local bus's events out under `stream`, and emits the events other instances
   * published under it into `live`: the bus live streams read, which then carries this instance's
   * events and the others'. The local bus's own listeners (side effects: the event log,
   * notifications, metrics) see only what happened here, so nothing is done twice in the cluster.
   * Without `live`, the others' events go into the local bus itself, and none is sent back out.
   */
  attachBus<Events extends object>(local: EventBus<Events>, stream: string, live?: EventBus<Events>): () => void;
  close(): Promise<void>;
}

export interface EventBridgeOptions {
  url: string;
  /** This instance's node name (shown as `from`). */
  nodeId: string;
  log: ClusterLogger;
  /** The NOTIFY channel; default `disk2iso_events`. */
  channel?: string;
  /** How often the listening connection proves it is alive; default 10 s. */
  pingMs?: number;
}

/** PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; a larger event goes in parts below it, header included. */
const PART_BYTES = 7000;
/** Notifications sent in one statement at most. */
const BATCH_NOTIFICATIONS = 200;
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 5000;
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;
const WIRE_VERSION = 'd2i1';

/** A node name as the cluster uses it in messages and queue names. */
export function checkNodeId(nodeId: string): string {
  if (!NODE_ID.test(nodeId)) throw new Error(`node id ${JSON.stringify(nodeId)} must be 1-63 letters, digits, dots, underscores or hyphens`);
  return nodeId;
}

/**
 * Splits text into pieces of at most `maxBytes` UTF-8 bytes, never inside a character. `maxBytes`
 * must hold the longest character (4 bytes).
 * @internal exported for its tests
 */
export function utf8Parts(text: string, maxBytes: number): string[] {
  const bytes = Buffer.from(text, 'utf8');
  const parts: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + maxBytes, bytes.length);
    // A continuation byte (10xxxxxx) would start the next piece inside a character: end before its lead byte.
    while (end < bytes.length && ((bytes[end] ?? 0) & 0xc0) === 0x80) end -= 1;
    parts.push(bytes.toString('utf8', start, end));
    start = end;
  }
  return parts.length === 0 ? [''] : parts;
}

interface Outgoing {
  notifications: string[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface Assembly {
  seq: number;
  parts: number;
  chunks: string[];
}

/**
 * Live events across instances through PostgreSQL's LISTEN/NOTIFY. Each notification is
 * `d2i1 NODE INSTANCE SEQ PART PARTS` and a newline, then (a part of) the JSON of
 * `[stream, type, payload]`. The instance is random per bridge, so a bridge recognises its own
 * events, and the sequence lets a receiver see events a publisher failed to send.
 *
 * One dedicated connection listens and reconnects by itself with backoff; a small pool sends.
 * The notifications of one statement are committed together and queued contiguously, in the
 * order the statement produced them, so a publisher's events arrive in its order.
 */
export function createEventBridge(options: EventBridgeOptions): EventBridge {
  const { url, log } = options;
  const nodeId = checkNodeId(options.nodeId);
  const channel = options.channel ?? 'disk2iso_events';
  if (!CHANNEL.test(channel)) throw new Error(`channel ${JSON.stringify(channel)} must be a lower-case identifier`);
  const pingMs = options.pingMs ?? 10_000;
  const shownUrl = redactedUrl(url);
  const instance = randomBytes(6).toString('hex');
  const listeners = new Set<(event: BridgedEvent) => void>();
  const resyncListeners = new Set<(resync: Resync) => void>();
  const closed = new AbortController();
  const sender = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: pingMs, query_timeout: pingMs });
  // A connection the server drops while idle is replaced at the next send; the error is that send's.
  sender.on('error', () => undefined);

  let seq = 0;
  const outgoing: Outgoing[] = [];
  let sending = false;
  let sendFailing = false;

  let listener: pg.Client | undefined;
  let lostAt: number | null = null;
  let reconnecting: Promise<void> | undefined;
  let pingTimer: NodeJS.Timeout | undefined;
  /** Per publishing bridge (`NODE INSTANCE`): the last sequence number delivered, and a message being put together. */
  const lastSeq = new Map<string, number>();
  const assembling = new Map<string, Assembly>();

  const report = <T>(targets: Set<(value: T) => void>, value: T): void => {
    for (const target of targets) {
      try {
        target(value);
      } catch (error) {
        log.warn({ err: error }, 'a cluster event listener failed');
      }
    }
  };

  async function pump(): Promise<void> {
    if (sending) return;
    sending = true;
    try {
      while (outgoing.length > 0) {
        const batch: Outgoing[] = [];
        let count = 0;
        while (outgoing.length > 0 && (batch.length === 0 || count + (outgoing[0]?.notifications.length ?? 0) <= BATCH_NOTIFICATIONS)) {
          const next = outgoing.shift() as Outgoing;
          batch.push(next);
          count += next.notifications.length;
        }
        try {
          // One statement: its notifications are committed together, in the order unnest yields them.
          await sender.query('select pg_notify($1, part) from unnest($2::text[]) as part', [channel, batch.flatMap((item) => item.notifications)]);
          if (sendFailing) log.info({ url: shownUrl }, 'cluster events are sent again');
          sendFailing = false;
          for (const item of batch) item.resolve();
        } catch (error) {
          if (!sendFailing) log.warn({ err: error, url: shownUrl }, 'cluster events could not be sent; the other instances will resync');
          sendFailing = true;
          for (const item of batch) item.reject(error);
        }
      }
    } finally {
      sending = false;
    }
  }

  function receive(text: string): void {
    const newline = text.indexOf('\n');
    const header = (newline < 0 ? '' : text.slice(0, newline)).split(' ');
    const [version, from, origin, seqText, partText, partsText] = header;
    if (version !== WIRE_VERSION || header.length !== 6 || from === undefined || origin === undefined) return;
    if (origin === instance) return;
    const messageSeq = Number(seqText);
    const part = Number(partText);
    const parts = Number(partsText);
    const key = `${from} ${origin}`;
    const chunk = text.slice(newline + 1);
    let assembly = assembling.get(key);
    if (part === 1) {
      assembly = { seq: messageSeq, parts, chunks: [] };
      assembling.set(key, assembly);
    } else if (assembly === undefined || assembly.seq !== messageSeq || assembly.chunks.length !== part - 1) {
      // The beginning of this message was missed (the listener reconnected in between); the sequence check reports it.
      assembling.delete(key);
      return;
    }
    assembly.chunks.push(chunk);
    if (assembly.chunks.length < assembly.parts) return;
    assembling.delete(key);
    const previous = lastSeq.get(key);
    lastSeq.set(key, messageSeq);
    if (previous !== undefined && messageSeq !== previous + 1) report(resyncListeners, { reason: 'missed', from });
    let decoded: unknown;
    try {
      decoded = JSON.parse(assembly.chunks.join(''));
    } catch (error) {
      log.warn({ err: error, from }, 'an unreadable cluster event was dropped');
      return;
    }
    if (!Array.isArray(decoded) || decoded.length !== 3 || typeof decoded[0] !== 'string' || typeof decoded[1] !== 'string') return;
    report(listeners, { from, stream: decoded[0], type: decoded[1], payload: decoded[2] });
  }

  async function listen(): Promise<void> {
    const client = new pg.Client({ connectionString: url, keepAlive: true, query_timeout: pingMs });
    client.on('error', (error) => lose(client, error));
    client.on('end', () => lose(client, new Error('the connection ended')));
    client.on('notification', (message) => {
      if (message.channel === channel && message.payload !== undefined) receive(message.payload);
    });
    try {
      await client.connect();
      await client.query(`listen "${channel}"`);
    } catch (error) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end().catch(() => undefined);
      throw error;
    }
    listener = client;
  }

  function lose(client: pg.Client, error: unknown): void {
    if (client !== listener) return;
    listener = undefined;
    client.end().catch(() => undefined);
    if (closed.signal.aborted) return;
    lostAt = Date.now();
    log.warn({ err: error, url: shownUrl }, 'the cluster event connection was lost; reconnecting');
    reconnecting ??= reconnect().finally(() => {
      reconnecting = undefined;
    });
  }

  async function reconnect(): Promise<void> {
    let wait = RECONNECT_FIRST_MS;
    while (!closed.signal.aborted) {
      try {
        await sleep(wait, undefined, { signal: closed.signal });
        await listen();
      } catch (error) {
        if (closed.signal.aborted) return;
        log.warn({ err: error, url: shownUrl }, 'the cluster event connection could not be opened again yet');
        wait = Math.min(wait * 2, RECONNECT_MAX_MS);
        continue;
      }
      // Closed while connecting: close() ends the new connection.
      if (closed.signal.aborted) return;
      // What was on the way while no one listened is gone, and so is any half-received message.
      assembling.clear();
      lastSeq.clear();
      const downMs = Date.now() - (lostAt ?? Date.now());
      lostAt = null;
      log.info({ url: shownUrl, downMs }, 'the cluster event connection is back');
      report(resyncListeners, { reason: 'reconnected', downMs });
      return;
    }
  }

  /** A link cut without a reset never ends the connection by itself; a ping that gets no answer does. */
  function ping(): void {
    const client = listener;
    client?.query('select 1').catch((error: unknown) => lose(client, error));
  }

  function publish(stream: string, type: string, payload: unknown): Promise<void> {
    if (closed.signal.aborted) return Promise.reject(new Error('the cluster event bridge is closed'));
    let body: string;
    try {
      body = JSON.stringify([stream, type, payload]);
    } catch (error) {
      return Promise.reject(error);
    }
    seq += 1;
    const chunks = utf8Parts(body, PART_BYTES);
    const notifications = chunks.map((chunk, index) => `${WIRE_VERSION} ${nodeId} ${instance} ${seq} ${index + 1} ${chunks.length}\n${chunk}`);
    return new Promise<void>((resolve, reject) => {
      outgoing.push({ notifications, resolve, reject });
      void pump();
    });
  }

  function subscribe(listen: (event: BridgedEvent) => void): () => void {
    listeners.add(listen);
    return () => listeners.delete(listen);
  }

  return {
    async start() {
      if (listener !== undefined || reconnecting !== undefined) return;
      await listen();
      pingTimer = setInterval(ping, pingMs);
      pingTimer.unref();
    },

    publish,
    subscribe,

    onResync(listen) {
      resyncListeners.add(listen);
      return () => resyncListeners.delete(listen);
    },

    attachBus<Events extends object>(local: EventBus<Events>, stream: string, live: EventBus<Events> = local) {
      const fromOutside = new WeakSet<object>();
      const offLocal = local.onAny((type, payload) => {
        if (typeof payload === 'object' && payload !== null && fromOutside.has(payload)) return;
        if (live !== local) live.emit(type, payload);
        // The bridge logs a failed send once per outage; the receivers resync.
        publish(stream, String(type), payload).catch(() => undefined);
      });
      const offRemote = subscribe((event) => {
        if (event.stream !== stream) return;
        if (typeof event.payload === 'object' && event.payload !== null) fromOutside.add(event.payload);
        // Every instance runs the same version (a node on another one is flagged): the payload has the type its name says.
        live.emit(event.type as keyof Events, event.payload as Events[keyof Events]);
      });
      return () => {
        offLocal();
        offRemote();
      };
    },

    async close() {
      if (closed.signal.aborted) return;
      closed.abort();
      clearInterval(pingTimer);
      await reconnecting;
      const client = listener;
      listener = undefined;
      await client?.end().catch(() => undefined);
      for (const item of outgoing.splice(0)) item.reject(new Error('the cluster event bridge is closed'));
      await sender.end();
    },
  };
}
