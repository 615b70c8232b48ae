import { type Clock, systemClock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Executor } from '../db/database.js';
import type { AttemptResult, DeliveryFilter, DueDelivery, EndpointInput, NotificationRepository } from '../db/notification-repository.js';
import { newNotificationId } from '../db/notification-repository.js';
import { ValidationError, errorMessage } from '../errors.js';
import type { DiscEventBus } from '../jobs/automation.js';
import type { JobEventBus } from '../jobs/events.js';
import type { JsonObject } from '../json.js';
import type { Logger } from '../log.js';
import { followDiscEvents } from './disc-events.js';
import { createJobEventMapper } from './job-events.js';
import type { DeliveryRecord, DomainEvent, DomainEventType, NotificationChannel, WebhookEndpoint, WebhookEndpointWithSecret } from './model.js';
import { DestinationRefusedError, newWebhookSecret, postJson, resolveDestination, signatureHeaders } from './webhook.js';

/**
 * Notifications: records domain events with their deliveries (the outbox) and sends those from a
 * worker of its own, never inside a request and never in the way of imaging: every attempt has a
 * timeout, a bounded number run at once, and a failed one is tried again later with a growing pause.
 */

export interface OutboxTiming {
  /** How often the outbox looks for due deliveries besides being woken by a new event (default 1 s). */
  pollMs: number;
  /** Pause after the first failed attempt; it doubles with each further one (default 30 s). */
  retryBaseMs: number;
  /** Longest pause between two attempts (default 1 h). */
  retryMaxMs: number;
  /** Attempts before a delivery is given up (default 10: about 4 h with the defaults). */
  maxAttempts: number;
  /** Longest an attempt may take, connection and answer included (default 10 s). */
  timeoutMs: number;
  /** Attempts running at once (default 4). */
  concurrency: number;
}

export const DEFAULT_OUTBOX_TIMING: OutboxTiming = {
  pollMs: 1000,
  retryBaseMs: 30_000,
  retryMaxMs: 3_600_000,
  maxAttempts: 10,
  timeoutMs: 10_000,
  concurrency: 4,
};

/** What a channel's attempt came to: a status code where the channel has one, or why it failed. */
export interface ChannelOutcome {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
}

/** A channel besides webhooks (e-mail): which events it wants and how it sends one. */
export interface ExtraChannel {
  wants(type: DomainEventType): boolean;
  send(due: DueDelivery, signal: AbortSignal): Promise<ChannelOutcome>;
}

export interface NotificationServiceDeps {
  config: Config;
  repository: NotificationRepository;
  events: JobEventBus;
  /** Discs and drives coming and going, and what automation did about them; none without it. */
  discEvents?: Pick<DiscEventBus, 'onAny'>;
  log: Logger;
  email?: ExtraChannel;
  /** Web Push to the devices users subscribed; none without it. */
  push?: Pick<ExtraChannel, 'send'>;
  now?: Clock;
  timing?: Partial<OutboxTiming>;
}

export interface NotificationService {
  /** Subscribes to the job bus and starts the outbox. */
  start(): void;
  /** Stops recording and sending; an attempt under way is broken off and stays pending for the next start. */
  stop(): Promise<void>;
  /** Records an event that does not come from a bus (service.started, a storage threshold). */
  raise(type: DomainEventType, payload: JsonObject): Promise<DomainEvent>;
  /**
   * Records an event inside a caller's transaction (a verification and its result commit together);
   * followers and the outbox hear of it once that transaction has committed.
   */
  raiseWithin(tx: Executor, type: DomainEventType, payload: JsonObject): Promise<DomainEvent>;
  /** Tells `listener` of every event once it is recorded (the live stream); returns the function that stops it. */
  follow(listener: (event: DomainEvent) => void): () => void;
  /** Recorded events, newest first. */
  listEvents(filter?: Parameters<NotificationRepository['listEvents']>[0]): Promise<DomainEvent[]>;
  listEndpoints(): Promise<WebhookEndpoint[]>;
  getEndpoint(id: string): Promise<WebhookEndpoint>;
  /** The secret is generated here and returned only in this answer. */
  createEndpoint(input: EndpointInput): Promise<WebhookEndpointWithSecret>;
  updateEndpoint(id: string, patch: Partial<EndpointInput>): Promise<WebhookEndpoint>;
  deleteEndpoint(id: string): Promise<void>;
  listDeliveries(filter?: DeliveryFilter): ReturnType<NotificationRepository['listDeliveries']>;
  /** Queues a `notification.test` event for one channel and returns its delivery; the outbox sends it like any other. */
  sendTest(target: { endpointId: string } | { channel: 'email' }): Promise<DeliveryRecord>;
}

/** The body a receiver gets, in the Standard Webhooks shape: type, timestamp, data. */
function webhookBody(event: DomainEvent): string {
  return JSON.stringify({ type: event.type, timestamp: event.at, data: { event_id: event.id, ...event.payload } });
}

function checkEndpoint(input: Partial<EndpointInput>): void {
  if (input.name !== undefined && (input.name.trim() === '' || input.name.length > 100)) {
    throw new ValidationError('validation_failed', 'a webhook needs a name of 1 to 100 characters', [{ field: 'name' }]);
  }
  if (input.url !== undefined) checkUrl(input.url);
}

function checkUrl(url: string): void {
  if (url.length > 2048) throw new ValidationError('validation_failed', 'a webhook URL has at most 2048 characters', [{ field: 'url' }]);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError('validation_failed', `${url} is not a URL`, [{ field: 'url' }]);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ValidationError('validation_failed', 'a webhook URL starts with http:// or https://', [{ field: 'url' }]);
  }
}

export function createNotificationService(deps: NotificationServiceDeps): NotificationService {
  const { config, repository, events, log, email, push } = deps;
  const now = deps.now ?? systemClock;
  const timing: OutboxTiming = { ...DEFAULT_OUTBOX_TIMING, ...deps.timing };
  const inFlight = new Map<string, Promise<void>>();
  const stopSending = new AbortController();
  const unsubscribe: Array<() => void> = [];
  let running = false;
  let timer: NodeJS.Timeout | null = null;
  const followers = new Set<(event: DomainEvent) => void>();
  // Events from the buses are recorded without their emitter waiting, one after another in the order
  // they were raised: on PostgreSQL two recordings at once would commit in either order, and the
  // stream, its followers and the outbox would tell a disc's insertion before its removal. stop() waits for them.
  let recordingFromBus: Promise<void> = Promise.resolve();
  // One pump at a time: two that both counted the free slots before either claimed would exceed the concurrency.
  let pumping: Promise<void> | null = null;
  let pumpAgain = false;

  const newEvent = (type: DomainEventType, payload: JsonObject): DomainEvent => ({ id: newNotificationId('evt'), type, at: now().toISOString(), payload });
  const targetsOf = (type: DomainEventType) => ({ email: email?.wants(type) ?? false, push: push !== undefined });

  async function record(type: DomainEventType, payload: JsonObject, targets: Parameters<NotificationRepository['record']>[1]) {
    const event = newEvent(type, payload);
    const deliveries = await recordEvent(event, targets);
    return { event, deliveries };
  }

  async function recordEvent(event: DomainEvent, targets: Parameters<NotificationRepository['record']>[1]): Promise<DeliveryRecord[]> {
    const deliveries = await repository.record(event, targets);
    announce(event, deliveries);
    return deliveries;
  }

  /** Only once the event is committed: a follower or the outbox must never see one that was rolled back. */
  function announce(event: DomainEvent, deliveries: readonly DeliveryRecord[]): void {
    if (deliveries.length > 0) wake();
    if (event.type !== 'notification.test') {
      for (const follower of followers) {
        try {
          follower(event);
        } catch (error) {
          log.error({ err: error, event: event.id }, 'a domain event follower failed');
        }
      }
    }
  }

  async function raise(type: DomainEventType, payload: JsonObject): Promise<DomainEvent> {
    return (await record(type, payload, targetsOf(type))).event;
  }

  async function raiseWithin(tx: Executor, type: DomainEventType, payload: JsonObject): Promise<DomainEvent> {
    const event = newEvent(type, payload);
    const deliveries = await repository.recordWithin(tx, event, targetsOf(type));
    tx.afterCommit(() => announce(event, deliveries));
    return event;
  }

  function raiseFromBus(type: DomainEventType, payload: JsonObject): void {
    // The time it was raised, not the time its turn to be recorded came.
    const event = newEvent(type, payload);
    const targets = targetsOf(type);
    recordingFromBus = recordingFromBus.then(() =>
      recordEvent(event, targets).then(
        () => undefined,
        (error: unknown) => log.error({ err: error, type }, 'recording a domain event failed'),
      ),
    );
  }

  function retryAfter(attempts: number): Date | null {
    if (attempts >= timing.maxAttempts) return null;
    return new Date(now().getTime() + Math.min(timing.retryBaseMs * 2 ** (attempts - 1), timing.retryMaxMs));
  }

  async function sendWebhook(due: DueDelivery): Promise<ChannelOutcome> {
    const { endpoint, event, delivery } = due;
    if (endpoint === null || !endpoint.enabled) return { ok: false, statusCode: null, error: 'the endpoint is disabled' };
    const url = new URL(endpoint.url);
    const destination = await resolveDestination(url, config.notifications.allow_private_destinations);
    const body = webhookBody(event);
    const signal = AbortSignal.any([stopSending.signal, AbortSignal.timeout(timing.timeoutMs)]);
    const { statusCode } = await postJson(url, destination, signatureHeaders(endpoint.secret, delivery.id, now(), body), body, signal);
    const ok = statusCode >= 200 && statusCode < 300;
    return { ok, statusCode, error: ok ? null : `the receiver answered ${statusCode}` };
  }

  async function attempt(due: DueDelivery): Promise<void> {
    let outcome: ChannelOutcome;
    try {
      if (due.delivery.channel === 'webhook') outcome = await sendWebhook(due);
      else if (due.delivery.channel === 'push') {
        const signal = AbortSignal.any([stopSending.signal, AbortSignal.timeout(timing.timeoutMs)]);
        outcome = push === undefined ? { ok: false, statusCode: null, error: 'push is not configured' } : await push.send(due, signal);
      } else if (email !== undefined) outcome = await email.send(due, stopSending.signal);
      else outcome = { ok: false, statusCode: null, error: 'e-mail is not configured' };
    } catch (error) {
      outcome = { ok: false, statusCode: null, error: error instanceof DestinationRefusedError ? error.message : errorMessage(error) };
    }
    const attempts = due.delivery.attempts + 1;
    // Broken off by a stop: not the receiver's fault, so the next start tries it at once.
    const retryAt = stopSending.signal.aborted && !outcome.ok ? now() : retryAfter(attempts);
    const result: AttemptResult = { ...outcome, retryAt: outcome.ok ? null : retryAt };
    try {
      await repository.settle(due.delivery.id, now(), result);
    } catch (error) {
      log.error({ err: error, delivery: due.delivery.id }, 'recording a notification attempt failed');
    }
    if (!outcome.ok) {
      log.warn(
        { delivery: due.delivery.id, channel: due.delivery.channel, endpoint: due.delivery.endpointId, attempts, error: outcome.error },
        result.retryAt === null ? 'notification given up' : 'notification attempt failed',
      );
    }
  }

  function pump(): void {
    if (!running) return;
    if (pumping !== null) {
      pumpAgain = true;
      return;
    }
    pumping = claimAndSend().finally(() => {
      pumping = null;
      if (pumpAgain) {
        pumpAgain = false;
        pump();
      }
    });
  }

  async function claimAndSend(): Promise<void> {
    let due: DueDelivery[] = [];
    try {
      due = await repository.claimDue(now(), timing.concurrency - inFlight.size, timing.timeoutMs + 30_000, [...inFlight.keys()]);
    } catch (error) {
      log.error({ err: error }, 'reading the notification outbox failed');
    }
    for (const item of due) {
      const done = attempt(item).finally(() => {
        inFlight.delete(item.delivery.id);
        wake();
      });
      inFlight.set(item.delivery.id, done);
    }
  }

  function wake(): void {
    if (!running) return;
    // Out of the caller's stack: recording an event happens inside a bus listener, sending never does.
    setImmediate(pump);
  }

  const mapJob = createJobEventMapper();
  const onJob = (source: 'job.created' | 'job.updated' | 'job.finished') =>
    events.on(source, ({ job }) => {
      const draft = mapJob(source, job);
      if (draft !== null) raiseFromBus(draft.type, draft.payload);
    });

  return {
    start() {
      unsubscribe.push(onJob('job.created'), onJob('job.updated'), onJob('job.finished'));
      if (deps.discEvents) unsubscribe.push(followDiscEvents(deps.discEvents, (draft) => raiseFromBus(draft.type, draft.payload)));
      running = true;
      timer = setInterval(pump, timing.pollMs);
      timer.unref();
      wake();
    },
    async stop() {
      running = false;
      if (timer) clearInterval(timer);
      for (const off of unsubscribe.splice(0)) off();
      stopSending.abort();
      await recordingFromBus;
      await pumping;
      await Promise.all(inFlight.values());
    },
    raise,
    raiseWithin,
    follow(listener) {
      followers.add(listener);
      return () => followers.delete(listener);
    },
    listEvents: (filter) => repository.listEvents(filter),
    listEndpoints: () => repository.listEndpoints(),
    getEndpoint: (id) => repository.getEndpoint(id),
    async createEndpoint(input) {
      checkEndpoint(input);
      return repository.createEndpoint(input, newWebhookSecret(), now());
    },
    async updateEndpoint(id, patch) {
      checkEndpoint(patch);
      return repository.updateEndpoint(id, patch, now());
    },
    deleteEndpoint: (id) => repository.deleteEndpoint(id),
    listDeliveries: (filter) => repository.listDeliveries(filter),
    async sendTest(target) {
      const channel: NotificationChannel = 'endpointId' in target ? 'webhook' : 'email';
      const payload: JsonObject = { message: 'A test notification from disk2iso' };
      const { deliveries } =
        'endpointId' in target
          ? await record('notification.test', payload, { email: false, onlyEndpoint: (await repository.getEndpoint(target.endpointId)).id })
          : await record('notification.test', payload, { email: true, webhooks: false });
      const delivery = deliveries[0];
      if (delivery === undefined) throw new ValidationError('validation_failed', `the ${channel} channel is disabled`, [{ field: 'channel' }]);
      return delivery;
    },
  };
}
