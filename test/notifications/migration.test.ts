import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { migrationProvider } from '../../src/db/migrations/index.js';
import { createNotificationRepository } from '../../src/db/notification-repository.js';
import { withTempDir } from '../support/temp-dir.js';

/** A database as the version before notifications left it, with the given settings stored. */
async function databaseBeforeNotifications(file: string, settings: Record<string, unknown>): Promise<void> {
  const raw = new BetterSqlite3(file);
  const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
  try {
    const { error } = await new Migrator({ db, provider: migrationProvider }).migrateTo('0008_job_workers');
    assert.equal(error, undefined);
    const insert = raw.prepare('insert into settings (key, value, updated_at) values (?, ?, ?)');
    for (const [key, value] of Object.entries(settings)) insert.run(key, JSON.stringify(value), '2026-01-01T00:00:00.000Z');
  } finally {
    await db.destroy();
  }
}

describe('migration 0010: the old webhook setting', () => {
  it('becomes an endpoint for finished jobs with a new secret, and its settings rows go', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'disk2iso.db');
      await databaseBeforeNotifications(file, {
        'notifications.webhook_enabled': true,
        'notifications.webhook_url': 'https://hooks.example.org/disk2iso',
        'imaging.read_attempts': 3,
      });
      const database = await openDatabase({ file });
      try {
        const endpoints = await createNotificationRepository(database).listEndpoints();
        assert.equal(endpoints.length, 1);
        assert.equal(endpoints[0]?.url, 'https://hooks.example.org/disk2iso');
        assert.deepEqual(endpoints[0]?.events, ['job.completed', 'job.completed_with_errors', 'job.failed']);
        assert.equal(endpoints[0]?.enabled, true);
        const secret = await database.kysely.selectFrom('webhook_endpoints').select('secret').executeTakeFirstOrThrow();
        assert.match(secret.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
        const keys = (await database.kysely.selectFrom('settings').select('key').execute()).map((row) => row.key);
        assert.deepEqual(keys, ['imaging.read_attempts'], 'only the two webhook settings are removed');
      } finally {
        await database.close();
      }
    });
  });

  it('adds no endpoint for a webhook that was turned off, and still removes its settings', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'disk2iso.db');
      await databaseBeforeNotifications(file, { 'notifications.webhook_enabled': false, 'notifications.webhook_url': 'https://hooks.example.org/x' });
      const database = await openDatabase({ file });
      try {
        assert.deepEqual(await createNotificationRepository(database).listEndpoints(), []);
        assert.deepEqual(await database.kysely.selectFrom('settings').select('key').execute(), []);
      } finally {
        await database.close();
      }
    });
  });
});

describe('migration 0018: push as a delivery channel', () => {
  it('keeps every delivery of the outbox it copies, and then takes push deliveries', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'disk2iso.db');
      const raw = new BetterSqlite3(file);
      const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
      try {
        assert.equal((await new Migrator({ db, provider: migrationProvider }).migrateTo('0017_file_search_prefixes')).error, undefined);
        const at = '2026-01-01T00:00:00.000Z';
        raw.prepare('insert into notification_events (id, type, at, payload) values (?, ?, ?, ?)').run('evt_1', 'job.failed', at, '{}');
        raw
          .prepare(
            `insert into notification_deliveries (id, event_id, channel, endpoint_id, status, attempts, next_attempt_at, last_attempt_at, last_status_code, last_error, created_at, updated_at)
             values ('msg_1', 'evt_1', 'email', null, 'pending', 3, ?, ?, 451, 'greylisted', ?, ?)`,
          )
          .run(at, at, at, at);
      } finally {
        await db.destroy();
      }
      const database = await openDatabase({ file });
      try {
        const { items } = await createNotificationRepository(database).listDeliveries();
        assert.deepEqual(
          items.map((entry) => [entry.id, entry.channel, entry.status, entry.attempts, entry.lastStatusCode, entry.lastError, entry.subscriptionId]),
          [['msg_1', 'email', 'pending', 3, 451, 'greylisted', null]],
        );
        // The wider CHECK constraint: the old table refused any channel but webhook and email.
        await assert.doesNotReject(
          database.transaction((tx) => tx.run(database.kysely.updateTable('notification_deliveries').set({ channel: 'push' }).where('id', '=', 'msg_1'))),
        );
      } finally {
        await database.close();
      }
    });
  });
});
