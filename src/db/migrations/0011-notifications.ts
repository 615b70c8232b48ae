import { randomBytes } from 'node:crypto';
import { type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

/**
 * Notifications: the durable stream of domain events, the webhook endpoints, and the outbox of
 * deliveries (one row per event and subscribed channel, written in the event's transaction, so an
 * event recorded before a kill -9 is still sent after the restart).
 *
 * The old single webhook (settings `notifications.webhook_enabled` / `webhook_url`, which nothing
 * ever sent) becomes an endpoint for finished jobs with a newly generated secret, and its settings
 * rows are removed. Frozen like every released migration.
 */
export const notificationsMigration: Migration = {
  async up(db: Kysely<unknown>) {
    let events = db.schema.createTable('notification_events');
    // Events are listed in the order they were recorded (SQLite's rowid); PostgreSQL has no rowid of its own.
    if (sqlDialect(db) === 'postgres') events = events.addColumn('rowid', 'bigint', (column) => column.notNull().unique().generatedByDefaultAsIdentity());
    await events
      .addColumn('id', 'text', (column) => column.primaryKey())
      .addColumn('type', 'text', (column) => column.notNull())
      .addColumn('at', 'text', (column) => column.notNull())
      .addColumn('payload', 'text', (column) => column.notNull())
      .execute();
    await db.schema.createIndex('notification_events_at').on('notification_events').column('at').execute();

    await db.schema
      .createTable('webhook_endpoints')
      .addColumn('id', 'text', (column) => column.primaryKey())
      .addColumn('name', 'text', (column) => column.notNull())
      .addColumn('url', 'text', (column) => column.notNull())
      .addColumn('secret', 'text', (column) => column.notNull())
      .addColumn('events', 'text', (column) => column.notNull())
      .addColumn('enabled', 'integer', (column) => column.notNull().check(sql`enabled in (0, 1)`))
      .addColumn('created_at', 'text', (column) => column.notNull())
      .addColumn('updated_at', 'text', (column) => column.notNull())
      .execute();

    await db.schema
      .createTable('notification_deliveries')
      .addColumn('id', 'text', (column) => column.primaryKey())
      .addColumn('event_id', 'text', (column) => column.notNull().references('notification_events.id').onDelete('cascade'))
      .addColumn('channel', 'text', (column) => column.notNull().check(sql`channel in ('webhook', 'email')`))
      .addColumn('endpoint_id', 'text', (column) => column.references('webhook_endpoints.id').onDelete('cascade'))
      .addColumn('status', 'text', (column) => column.notNull().check(sql`status in ('pending', 'sent', 'failed')`))
      .addColumn('attempts', 'integer', (column) => column.notNull().defaultTo(0))
      .addColumn('next_attempt_at', 'text', (column) => column.notNull())
      .addColumn('last_attempt_at', 'text')
      .addColumn('last_status_code', 'integer')
      .addColumn('last_error', 'text')
      .addColumn('created_at', 'text', (column) => column.notNull())
      .addColumn('updated_at', 'text', (column) => column.notNull())
      .execute();
    await db.schema.createIndex('notification_deliveries_due').on('notification_deliveries').columns(['status', 'next_attempt_at']).execute();
    await db.schema.createIndex('notification_deliveries_created').on('notification_deliveries').column('created_at').execute();

    const legacy = await sql<{ key: string; value: string }>`
      select key, value from settings where key in ('notifications.webhook_enabled', 'notifications.webhook_url')`.execute(db);
    const stored = new Map(legacy.rows.map((row) => [row.key, JSON.parse(row.value) as unknown]));
    const url = stored.get('notifications.webhook_url');
    if (stored.get('notifications.webhook_enabled') === true && typeof url === 'string' && url !== '') {
      const at = new Date().toISOString();
      const events = JSON.stringify(['job.completed', 'job.completed_with_errors', 'job.failed']);
      await sql`insert into webhook_endpoints (id, name, url, secret, events, enabled, created_at, updated_at)
        values (${`whk_${randomBytes(10).toString('hex')}`}, 'webhook', ${url}, ${`whsec_${randomBytes(32).toString('base64')}`}, ${events}, 1, ${at}, ${at})`.execute(
        db,
      );
    }
    await sql`delete from settings where key in ('notifications.webhook_enabled', 'notifications.webhook_url')`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    for (const table of ['notification_deliveries', 'webhook_endpoints', 'notification_events']) await db.schema.dropTable(table).execute();
  },
};
