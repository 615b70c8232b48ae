import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { AUDIT_EVENTS, type AuditEvent, createAuditTrail } from '../../src/audit/trail.js';
import { createAuditRepository } from '../../src/db/audit-repository.js';
import { ValidationError } from '../../src/errors.js';
import { manualClock, withDatabase } from '../db/support.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

describe('audit trail', () => {
  it("records entries in the specification's JSON shape", async () => {
    await withDatabase(async (database) => {
      const clock = manualClock(new Date('2025-12-31T14:21:04Z'));
      const audit = createAuditTrail({ repository: createAuditRepository(database), now: clock.now });
      const entry = await audit.record({
        event_type: 'authentication',
        action: 'login_success',
        user: 'admin',
        ip_address: '192.168.1.100',
        user_agent: 'Mozilla/5.0...',
        details: { method: 'password' },
      });
      const { id, ...shape } = entry;
      assert.ok(id > 0);
      assert.deepEqual(JSON.parse(JSON.stringify(shape)), {
        timestamp: '2025-12-31T14:21:04.000Z',
        event_type: 'authentication',
        action: 'login_success',
        user: 'admin',
        ip_address: '192.168.1.100',
        user_agent: 'Mozilla/5.0...',
        details: { method: 'password' },
      });
      const stored = await audit.record({ event_type: 'job', action: 'create', user: 'op', ip_address: '10.0.0.1', user_agent: null });
      assert.deepEqual(stored.details, {}, 'details default to an empty object');
    });
  });

  it('knows the events the specification lists, plus lockouts and denied requests', () => {
    const known = Object.entries(AUDIT_EVENTS).flatMap(([type, actions]) => actions.map((action) => `${type}:${action}`));
    for (const expected of [
      'authentication:login_success',
      'authentication:login_failure',
      'authentication:logout',
      'authentication:lockout',
      'password_change:change',
      'api_key:create',
      'api_key:revoke',
      'config:change',
      'job:create',
      'job:delete',
      'archive:delete',
      'user:role_change',
      'access:access_denied',
    ]) {
      assert.ok(known.includes(expected), expected);
    }
  });

  it('filters by user, event type, action and time range, newest first, with paging and totals', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock(new Date('2026-03-01T00:00:00Z'));
      const audit = createAuditTrail({ repository: createAuditRepository(database), now: clock.now });
      const events: AuditEvent[] = [
        { event_type: 'authentication', action: 'login_success', user: 'alice', ip_address: '10.0.0.1', user_agent: null },
        { event_type: 'job', action: 'create', user: 'alice', ip_address: '10.0.0.1', user_agent: null, details: { job_id: 'job_1' } },
        { event_type: 'authentication', action: 'login_failure', user: 'bob', ip_address: '10.0.0.2', user_agent: null },
        { event_type: 'config', action: 'change', user: 'admin', ip_address: 'local', user_agent: null },
        { event_type: 'authentication', action: 'logout', user: 'alice', ip_address: '10.0.0.1', user_agent: null },
      ];
      for (const event of events) {
        await audit.record(event);
        clock.advance(10 * MINUTE);
      }
      const actions = async (filter: Parameters<typeof audit.list>[0]) => (await audit.list(filter)).items.map((entry) => entry.action);
      assert.deepEqual(await actions({}), ['logout', 'change', 'login_failure', 'create', 'login_success']);
      assert.deepEqual(await actions({ user: 'alice' }), ['logout', 'create', 'login_success']);
      assert.deepEqual(await actions({ eventType: 'authentication', order: 'asc' }), ['login_success', 'login_failure', 'logout']);
      assert.deepEqual(await actions({ eventType: 'authentication', action: 'login_failure' }), ['login_failure']);
      assert.deepEqual(await actions({ since: new Date('2026-03-01T00:10:00Z'), until: new Date('2026-03-01T00:30:00Z') }), ['login_failure', 'create']);
      assert.deepEqual(await actions({ user: "alice' or '1'='1" }), [], 'filters are parameters, not SQL');

      const paged = await audit.list({ limit: 2, offset: 1 });
      assert.deepEqual(
        paged.items.map((entry) => entry.action),
        ['change', 'login_failure'],
      );
      assert.equal(paged.total, 5);
      await assert.rejects(audit.list({ limit: -1 }), ValidationError);
    });
  });

  it('is append-only: no API to change or remove an entry, and the database refuses updates', async () => {
    await withDatabase(async (database) => {
      const repository = createAuditRepository(database);
      const audit = createAuditTrail({ repository });
      assert.deepEqual(Object.keys(audit).sort(), ['applyRetention', 'list', 'record', 'recordWithin']);
      assert.deepEqual(Object.keys(repository).sort(), ['append', 'appendWithin', 'list', 'prune']);
      const entry = await audit.record({
        event_type: 'archive',
        action: 'delete',
        user: 'admin',
        ip_address: '10.0.0.1',
        user_agent: null,
        details: { archive_id: 'archive_1' },
      });

      await assert.rejects(
        database.kysely.updateTable('audit_log').set({ user: 'someone-else' }).where('id', '=', entry.id).execute(),
        /audit_log is append-only/,
      );
      await assert.rejects(sql`update audit_log set details = '{}'`.execute(database.kysely), /append-only/);
      await assert.rejects(
        database.transaction((tx) => tx.run(database.kysely.updateTable('audit_log').set({ action: 'nothing' }))),
        /append-only/,
      );
      const [unchanged] = (await audit.list()).items;
      assert.deepEqual(unchanged, entry);
    });
  });

  it('commits an entry recorded within a transaction together with it, or not at all', async () => {
    await withDatabase(async (database) => {
      const audit = createAuditTrail({ repository: createAuditRepository(database) });
      const event: AuditEvent = { event_type: 'user', action: 'add', user: 'cli:root', ip_address: 'local', user_agent: null };
      await assert.rejects(
        database.transaction(async (tx) => {
          await audit.recordWithin(tx, event);
          throw new Error('the action failed');
        }),
        /the action failed/,
      );
      assert.equal((await audit.list()).total, 0);
      await database.transaction((tx) => audit.recordWithin(tx, event));
      assert.equal((await audit.list()).total, 1);
    });
  });

  it('loses entries only to the retention rule, by age', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock(new Date('2026-01-01T00:00:00Z'));
      const audit = createAuditTrail({ repository: createAuditRepository(database), now: clock.now });
      for (let day = 0; day < 5; day += 1) {
        await audit.record({ event_type: 'config', action: 'change', user: 'admin', ip_address: 'local', user_agent: null, details: { day } });
        clock.advance(DAY);
      }
      assert.equal(await audit.applyRetention(3), 2);
      assert.deepEqual(
        (await audit.list({ order: 'asc' })).items.map((entry) => entry.details.day),
        [2, 3, 4],
      );
      await assert.rejects(audit.applyRetention(0), ValidationError);
      await assert.rejects(audit.applyRetention(1.5), ValidationError);
    });
  });

  it('bounds the length of the text fields a client controls', async () => {
    await withDatabase(async (database) => {
      const audit = createAuditTrail({ repository: createAuditRepository(database) });
      const entry = await audit.record({
        event_type: 'authentication',
        action: 'login_failure',
        user: 'x'.repeat(10_000),
        ip_address: '10.0.0.1',
        user_agent: 'y'.repeat(10_000),
      });
      assert.equal(entry.user?.length, 256);
      assert.equal(entry.user_agent?.length, 256);
    });
  });
});
