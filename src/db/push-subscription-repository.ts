import { randomBytes } from 'node:crypto';
import type { Selectable } from 'kysely';
import { ConflictError, NotFoundError } from '../errors.js';
import { PUSH_EVENT_TYPES, type PushEventType, type PushSubscription, type PushSubscriptionWithKeys } from '../notifications/model.js';
import type { Database } from './database.js';
import type { PushSubscriptionsTable } from './schema.js';
import { CorruptRowError, parseJson, timestamp, toJson } from './values.js';

/** What a browser hands over when it subscribes (PushSubscription.toJSON()), with the user's choices. */
export interface PushSubscriptionInput {
  endpoint: string;
  p256dh: string;
  auth: string;
  label: string;
  events: PushEventType[];
}

export interface PushSubscriptionRepository {
  /**
   * Stores the device for `userId`. The same endpoint again (the same browser) replaces the earlier
   * row, whoever it belonged to: a browser profile has one endpoint, and it now notifies whoever
   * subscribed it last. Refuses a user's device beyond `limit`.
   */
  save(userId: string, input: PushSubscriptionInput, at: Date, limit: number): Promise<PushSubscription>;
  listForUser(userId: string): Promise<PushSubscription[]>;
  /** Removes one of the user's devices; another user's (or none) is not found. */
  deleteForUser(userId: string, id: string): Promise<void>;
  /** Removes a device the push service says is gone (404/410), with its pending deliveries. */
  deleteGone(id: string): Promise<void>;
}

/** A stored row as the outbox and the API see it (the notification repository reads subscriptions in its outbox query). */
export function rowToPushSubscription(row: Selectable<PushSubscriptionsTable>): PushSubscriptionWithKeys {
  const events = parseJson(row.events, () => new CorruptRowError('push subscription', row.id, 'events', 'not JSON'));
  if (!Array.isArray(events) || !events.every((type) => (PUSH_EVENT_TYPES as readonly unknown[]).includes(type))) {
    throw new CorruptRowError('push subscription', row.id, 'events', 'not a list of push event types');
  }
  return {
    id: row.id,
    userId: row.user_id,
    label: row.label,
    events: events as PushEventType[],
    service: new URL(row.endpoint).origin,
    createdAt: row.created_at,
    endpoint: row.endpoint,
    p256dh: row.p256dh,
    auth: row.auth,
  };
}

/** The view without the endpoint and keys: all any answer shows. */
function withoutKeys({ endpoint: _endpoint, p256dh: _p256dh, auth: _auth, ...rest }: PushSubscriptionWithKeys): PushSubscription {
  return rest;
}

export function createPushSubscriptionRepository(database: Database): PushSubscriptionRepository {
  const db = database.kysely;
  return {
    save(userId, input, at, limit) {
      return database.transaction(async (tx) => {
        await tx.run(db.deleteFrom('push_subscriptions').where('endpoint', '=', input.endpoint));
        const held = await tx.first(
          db
            .selectFrom('push_subscriptions')
            .select((eb) => eb.fn.countAll<number>().as('count'))
            .where('user_id', '=', userId),
        );
        if (Number(held?.count ?? 0) >= limit) {
          throw new ConflictError('push_subscription_limit', `a user may subscribe at most ${limit} devices; remove one first`, { limit });
        }
        const row = {
          id: `psh_${randomBytes(10).toString('hex')}`,
          user_id: userId,
          endpoint: input.endpoint,
          p256dh: input.p256dh,
          auth: input.auth,
          label: input.label,
          events: toJson(input.events),
          created_at: timestamp(at),
        };
        await tx.run(db.insertInto('push_subscriptions').values(row));
        return withoutKeys(rowToPushSubscription(row));
      });
    },

    async listForUser(userId) {
      const rows = await db.selectFrom('push_subscriptions').selectAll().where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute();
      return rows.map((row) => withoutKeys(rowToPushSubscription(row)));
    },

    async deleteForUser(userId, id) {
      const deleted = await db.deleteFrom('push_subscriptions').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
      if (deleted.numDeletedRows === 0n) throw new NotFoundError('push_subscription_not_found', `no push subscription ${id} of this user`, { id });
    },

    async deleteGone(id) {
      await db.deleteFrom('push_subscriptions').where('id', '=', id).execute();
    },
  };
}
