import { randomBytes } from 'node:crypto';
import { type Selectable, sql } from 'kysely';
import { NotFoundError } from '../errors.js';
import type { JsonObject } from '../json.js';
import {
  type DeliveryRecord,
  type DeliveryStatus,
  type DomainEvent,
  type DomainEventType,
  type NotificationChannel,
  type PushSubscriptionWithKeys,
  SUBSCRIBABLE_EVENT_TYPES,
  type SubscribableEventType,
  type WebhookEndpoint,
  type WebhookEndpointWithSecret,
} from '../notifications/model.js';
import type { Database, Executor } from './database.js';
import { rowToPushSubscription } from './push-subscription-repository.js';
import type { NotificationDeliveriesTable, WebhookEndpointsTable } from './schema.js';
import { CorruptRowError, type ListResult, fromJson, page, timestamp, toJson } from './values.js';

/** `evt_3f9c…`: what it names, then 80 random bits in hex, as job and archive ids. */
export function newNotificationId(prefix: 'evt' | 'msg' | 'whk'): string {
  return `${prefix}_${randomBytes(10).toString('hex')}`;
}

/** A delivery the outbox is about to attempt, with what it needs to send it. */
type DeliveryTargets = { email: boolean; onlyEndpoint?: string; webhooks?: boolean; push?: boolean };

export interface DueDelivery {
  delivery: DeliveryRecord;
  event: DomainEvent;
  /** Null for e-mail and push. */
  endpoint: WebhookEndpointWithSecret | null;
  /** The device of a push delivery; null for the other channels. */
  subscription: PushSubscriptionWithKeys | null;
}

export interface AttemptResult {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  /** Null once it is given up (failed) or sent. */
  retryAt: Date | null;
}

export interface DeliveryFilter {
  status?: DeliveryStatus;
  endpointId?: string;
  limit?: number;
  offset?: number;
}

export interface EndpointInput {
  name: string;
  url: string;
  events: SubscribableEventType[];
  enabled: boolean;
}

export interface NotificationRepository {
  /**
   * Records the event and one pending delivery for each target, in one transaction: once it has
   * resolved, the event survives a kill -9. Webhook targets are every enabled endpoint subscribed to
   * the type (or only `onlyEndpoint`); `email` adds the e-mail channel; `push` every device
   * subscribed to the type.
   */
  record(event: DomainEvent, targets: DeliveryTargets): Promise<DeliveryRecord[]>;
  /** `record` inside a caller's transaction: the event commits with what it reports. */
  recordWithin(tx: Executor, event: DomainEvent, targets: DeliveryTargets): Promise<DeliveryRecord[]>;
  /**
   * Takes up to `limit` deliveries that are due and moves their next attempt `leaseMs` ahead, so a
   * second process (or this one, after a crash mid-attempt) leaves them alone until then.
   */
  claimDue(now: Date, limit: number, leaseMs: number, skip: readonly string[]): Promise<DueDelivery[]>;
  settle(id: string, at: Date, result: AttemptResult): Promise<void>;
  /** Recorded events, newest first; only those of `types` when given. */
  listEvents(filter?: { types?: readonly DomainEventType[]; limit?: number }): Promise<DomainEvent[]>;
  listDeliveries(filter?: DeliveryFilter): Promise<ListResult<DeliveryRecord>>;
  listEndpoints(): Promise<WebhookEndpoint[]>;
  getEndpoint(id: string): Promise<WebhookEndpoint>;
  createEndpoint(input: EndpointInput, secret: string, at: Date): Promise<WebhookEndpointWithSecret>;
  updateEndpoint(id: string, patch: Partial<EndpointInput>, at: Date): Promise<WebhookEndpoint>;
  deleteEndpoint(id: string): Promise<void>;
}

function eventTypes(row: Pick<Selectable<WebhookEndpointsTable>, 'id' | 'events'>): SubscribableEventType[] {
  const parsed: unknown = fromJson(row.events);
  if (!Array.isArray(parsed) || !parsed.every((type) => (SUBSCRIBABLE_EVENT_TYPES as readonly unknown[]).includes(type))) {
    throw new CorruptRowError('webhook endpoint', row.id, 'events', 'not a list of event types');
  }
  return parsed as SubscribableEventType[];
}

function rowToEndpoint(row: Selectable<WebhookEndpointsTable>): WebhookEndpoint {
  return {
    id: row.id,
    name: row.name,
    url: row.url,
    events: eventTypes(row),
    enabled: row.enabled === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function rowToDelivery(row: Selectable<NotificationDeliveriesTable> & { event_type: string }): DeliveryRecord {
  return {
    id: row.id,
    eventId: row.event_id,
    eventType: row.event_type as DomainEventType,
    channel: row.channel,
    endpointId: row.endpoint_id,
    subscriptionId: row.subscription_id,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastAttemptAt: row.last_attempt_at,
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function createNotificationRepository(database: Database): NotificationRepository {
  const db = database.kysely;
  const deliveriesWithType = () =>
    db.selectFrom('notification_deliveries').innerJoin('notification_events', 'notification_events.id', 'notification_deliveries.event_id');

  const recordWithin = async (tx: Executor, event: DomainEvent, targets: DeliveryTargets): Promise<DeliveryRecord[]> => {
    await tx.run(db.insertInto('notification_events').values({ id: event.id, type: event.type, at: event.at, payload: toJson(event.payload) }));
    const endpoints =
      targets.webhooks === false
        ? []
        : (await tx.all(db.selectFrom('webhook_endpoints').selectAll().where('enabled', '=', 1))).filter((row) =>
            targets.onlyEndpoint !== undefined ? row.id === targets.onlyEndpoint : (eventTypes(row) as readonly DomainEventType[]).includes(event.type),
          );
    const devices =
      targets.push === true
        ? (
            await tx.all(
              // A disabled user's devices hear nothing until the user is enabled again.
              db
                .selectFrom('push_subscriptions')
                .innerJoin('users', 'users.id', 'push_subscriptions.user_id')
                .where('users.disabled', '=', 0)
                .select(['push_subscriptions.id', 'push_subscriptions.events']),
            )
          ).filter((row) => (fromJson(row.events) as unknown[]).includes(event.type))
        : [];
    const channels: Array<{ channel: NotificationChannel; endpointId: string | null; subscriptionId: string | null }> = [
      ...endpoints.map((row) => ({ channel: 'webhook' as const, endpointId: row.id, subscriptionId: null })),
      ...(targets.email ? [{ channel: 'email' as const, endpointId: null, subscriptionId: null }] : []),
      ...devices.map((row) => ({ channel: 'push' as const, endpointId: null, subscriptionId: row.id })),
    ];
    const deliveries: DeliveryRecord[] = [];
    for (const { channel, endpointId, subscriptionId } of channels) {
      const row = {
        id: newNotificationId('msg'),
        event_id: event.id,
        channel,
        endpoint_id: endpointId,
        subscription_id: subscriptionId,
        status: 'pending' as const,
        attempts: 0,
        next_attempt_at: event.at,
        last_attempt_at: null,
        last_status_code: null,
        last_error: null,
        created_at: event.at,
        updated_at: event.at,
      };
      await tx.run(db.insertInto('notification_deliveries').values(row));
      deliveries.push(rowToDelivery({ ...row, event_type: event.type }));
    }
    return deliveries;
  };

  return {
    record: (event, targets) => database.transaction((tx) => recordWithin(tx, event, targets)),
    recordWithin,

    async claimDue(now, limit, leaseMs, skip) {
      if (limit <= 0) return [];
      return database.transaction(async (tx) => {
        let query = db
          .selectFrom('notification_deliveries as d')
          .innerJoin('notification_events as e', 'e.id', 'd.event_id')
          .leftJoin('webhook_endpoints as w', 'w.id', 'd.endpoint_id')
          .selectAll('d')
          .select(['e.type as event_type', 'e.at as event_at', 'e.payload as event_payload'])
          .select(['w.name as w_name', 'w.url as w_url', 'w.secret as w_secret', 'w.events as w_events', 'w.enabled as w_enabled'])
          .select(['w.created_at as w_created_at', 'w.updated_at as w_updated_at'])
          .leftJoin('push_subscriptions as p', 'p.id', 'd.subscription_id')
          .select(['p.user_id as p_user_id', 'p.endpoint as p_endpoint', 'p.p256dh as p_p256dh', 'p.auth as p_auth', 'p.label as p_label'])
          .select(['p.events as p_events', 'p.created_at as p_created_at'])
          .where('d.status', '=', 'pending')
          .where('d.next_attempt_at', '<=', timestamp(now))
          .orderBy('d.next_attempt_at')
          .limit(limit);
        if (skip.length > 0) query = query.where('d.id', 'not in', [...skip]);
        // PostgreSQL: another dispatcher's claim in progress is passed over, never sent twice (src/db/row-locks.ts);
        // only the deliveries are locked, the outer joins' tables cannot be.
        if (database.dialect === 'postgres') query = query.forUpdate(['d']).skipLocked();
        const rows = await tx.all(query);
        const leasedUntil = timestamp(new Date(now.getTime() + leaseMs));
        const due: DueDelivery[] = [];
        for (const row of rows) {
          await tx.run(db.updateTable('notification_deliveries').set({ next_attempt_at: leasedUntil }).where('id', '=', row.id));
          const endpoint: WebhookEndpointWithSecret | null =
            row.endpoint_id === null || row.w_url === null || row.w_secret === null || row.w_name === null || row.w_events === null
              ? null
              : {
                  id: row.endpoint_id,
                  name: row.w_name,
                  url: row.w_url,
                  secret: row.w_secret,
                  events: eventTypes({ id: row.endpoint_id, events: row.w_events }),
                  enabled: row.w_enabled === 1,
                  createdAt: row.w_created_at ?? '',
                  updatedAt: row.w_updated_at ?? '',
                };
          due.push({
            delivery: rowToDelivery(row),
            event: { id: row.event_id, type: row.event_type as DomainEventType, at: row.event_at, payload: fromJson<JsonObject>(row.event_payload) },
            endpoint,
            subscription:
              row.subscription_id === null ||
              row.p_user_id === null ||
              row.p_endpoint === null ||
              row.p_p256dh === null ||
              row.p_auth === null ||
              row.p_label === null ||
              row.p_events === null ||
              row.p_created_at === null
                ? null
                : rowToPushSubscription({
                    id: row.subscription_id,
                    user_id: row.p_user_id,
                    endpoint: row.p_endpoint,
                    p256dh: row.p_p256dh,
                    auth: row.p_auth,
                    label: row.p_label,
                    events: row.p_events,
                    created_at: row.p_created_at,
                  }),
          });
        }
        return due;
      });
    },

    async listEvents(filter = {}) {
      // rowid: the order of recording, also among events of the same millisecond.
      let query = db
        .selectFrom('notification_events')
        .selectAll()
        .orderBy(sql`rowid`, 'desc')
        .limit(filter.limit ?? 100);
      if (filter.types !== undefined) query = query.where('type', 'in', filter.types.length > 0 ? [...filter.types] : ['']);
      const rows = await query.execute();
      return rows.map((row) => ({ id: row.id, type: row.type as DomainEventType, at: row.at, payload: fromJson<JsonObject>(row.payload) }));
    },

    async settle(id, at, result) {
      const when = timestamp(at);
      await database.transaction((tx) =>
        tx.run(
          db
            .updateTable('notification_deliveries')
            .set((eb) => ({
              status: result.ok ? 'sent' : result.retryAt === null ? 'failed' : 'pending',
              attempts: eb('attempts', '+', 1),
              next_attempt_at: result.retryAt === null ? when : timestamp(result.retryAt),
              last_attempt_at: when,
              last_status_code: result.statusCode,
              last_error: result.error,
              updated_at: when,
            }))
            .where('id', '=', id),
        ),
      );
    },

    async listDeliveries(filter = {}) {
      const { limit, offset } = page(filter.limit, filter.offset);
      let query = deliveriesWithType();
      if (filter.status !== undefined) query = query.where('notification_deliveries.status', '=', filter.status);
      if (filter.endpointId !== undefined) query = query.where('notification_deliveries.endpoint_id', '=', filter.endpointId);
      const rows = await query
        .selectAll('notification_deliveries')
        .select('notification_events.type as event_type')
        .orderBy('notification_deliveries.created_at', 'desc')
        .orderBy('notification_deliveries.id')
        .limit(limit)
        .offset(offset)
        .execute();
      const total = await query.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
      return { items: rows.map(rowToDelivery), total: Number(total.count) };
    },

    async listEndpoints() {
      const rows = await db.selectFrom('webhook_endpoints').selectAll().orderBy('created_at').orderBy('id').execute();
      return rows.map(rowToEndpoint);
    },

    async getEndpoint(id) {
      const row = await db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst();
      if (row === undefined) throw new NotFoundError('webhook_endpoint_not_found', `webhook endpoint ${id} does not exist`, { id });
      return rowToEndpoint(row);
    },

    async createEndpoint(input, secret, at) {
      const when = timestamp(at);
      const row = {
        id: newNotificationId('whk'),
        name: input.name,
        url: input.url,
        secret,
        events: toJson(input.events),
        enabled: input.enabled ? 1 : 0,
        created_at: when,
        updated_at: when,
      };
      await db.insertInto('webhook_endpoints').values(row).execute();
      return { ...rowToEndpoint(row), secret };
    },

    async updateEndpoint(id, patch, at) {
      const changed = await db
        .updateTable('webhook_endpoints')
        .set({
          ...(patch.name === undefined ? {} : { name: patch.name }),
          ...(patch.url === undefined ? {} : { url: patch.url }),
          ...(patch.events === undefined ? {} : { events: toJson(patch.events) }),
          ...(patch.enabled === undefined ? {} : { enabled: patch.enabled ? 1 : 0 }),
          updated_at: timestamp(at),
        })
        .where('id', '=', id)
        .executeTakeFirst();
      if (changed.numUpdatedRows === 0n) throw new NotFoundError('webhook_endpoint_not_found', `webhook endpoint ${id} does not exist`, { id });
      return this.getEndpoint(id);
    },

    async deleteEndpoint(id) {
      const deleted = await db.deleteFrom('webhook_endpoints').where('id', '=', id).executeTakeFirst();
      if (deleted.numDeletedRows === 0n) throw new NotFoundError('webhook_endpoint_not_found', `webhook endpoint ${id} does not exist`, { id });
    },
  };
}
