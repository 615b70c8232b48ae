import { type Kysely, type Migration, sql } from 'kysely';

/**
 * Web Push: the browsers (devices) each user subscribed, and `push` as a third delivery channel.
 * A delivery to a device names its subscription; removing the subscription (or its user) removes
 * its pending deliveries with it. SQLite cannot change a CHECK constraint in place, so the outbox
 * table is copied into a new one with the wider channel list and the new column. Frozen like every
 * released migration.
 */
export const pushSubscriptionsMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`create table push_subscriptions (
      id text primary key,
      user_id text not null references users(id) on delete cascade,
      endpoint text not null unique,
      p256dh text not null,
      auth text not null,
      label text not null,
      events text not null,
      created_at text not null
    )`.execute(db);
    await sql`create index push_subscriptions_user on push_subscriptions (user_id)`.execute(db);

    await sql`create table notification_deliveries_next (
      id text primary key,
      event_id text not null references notification_events(id) on delete cascade,
      channel text not null check (channel in ('webhook', 'email', 'push')),
      endpoint_id text references webhook_endpoints(id) on delete cascade,
      subscription_id text references push_subscriptions(id) on delete cascade,
      status text not null check (status in ('pending', 'sent', 'failed')),
      attempts integer not null default 0,
      next_attempt_at text not null,
      last_attempt_at text,
      last_status_code integer,
      last_error text,
      created_at text not null,
      updated_at text not null
    )`.execute(db);
    await sql`insert into notification_deliveries_next
      (id, event_id, channel, endpoint_id, subscription_id, status, attempts, next_attempt_at, last_attempt_at, last_status_code, last_error, created_at, updated_at)
      select id, event_id, channel, endpoint_id, null, status, attempts, next_attempt_at, last_attempt_at, last_status_code, last_error, created_at, updated_at
      from notification_deliveries`.execute(db);
    await sql`drop table notification_deliveries`.execute(db);
    await sql`alter table notification_deliveries_next rename to notification_deliveries`.execute(db);
    await sql`create index notification_deliveries_due on notification_deliveries (status, next_attempt_at)`.execute(db);
    await sql`create index notification_deliveries_created on notification_deliveries (created_at)`.execute(db);
    await sql`create index notification_deliveries_subscription on notification_deliveries (subscription_id)`.execute(db);
  },
  /** Back to the outbox of 0011: push deliveries cannot be kept there, so they go with the devices. */
  async down(db: Kysely<unknown>) {
    await sql`create table notification_deliveries_previous (
      id text primary key,
      event_id text not null references notification_events(id) on delete cascade,
      channel text not null check (channel in ('webhook', 'email')),
      endpoint_id text references webhook_endpoints(id) on delete cascade,
      status text not null check (status in ('pending', 'sent', 'failed')),
      attempts integer not null default 0,
      next_attempt_at text not null,
      last_attempt_at text,
      last_status_code integer,
      last_error text,
      created_at text not null,
      updated_at text not null
    )`.execute(db);
    await sql`insert into notification_deliveries_previous
      select id, event_id, channel, endpoint_id, status, attempts, next_attempt_at, last_attempt_at, last_status_code, last_error, created_at, updated_at
      from notification_deliveries where channel != 'push'`.execute(db);
    await sql`drop table notification_deliveries`.execute(db);
    await sql`alter table notification_deliveries_previous rename to notification_deliveries`.execute(db);
    await sql`create index notification_deliveries_due on notification_deliveries (status, next_attempt_at)`.execute(db);
    await sql`create index notification_deliveries_created on notification_deliveries (created_at)`.execute(db);
    await sql`drop table push_subscriptions`.execute(db);
  },
};
