import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAuthService } from '../../src/auth/service.js';
import { loadConfig } from '../../src/config/load.js';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { createApiKeyRepository } from '../../src/db/auth-api-key-repository.js';
import type { Database } from '../../src/db/database.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { createLogRepository } from '../../src/db/log-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { createVerificationTaskRepository } from '../../src/db/verification-task-repository.js';
import { createHousekeeping } from '../../src/system/housekeeping.js';
import { CLI, CLIENT, DAY, USER_PASSWORD } from '../auth/support.js';
import { manualClock, withDatabase } from '../db/support.js';
import { api, startTestServer } from '../http/support.js';
import { createTestDataDir, openDataDirDatabase, removeTestDataDir } from '../support/database.js';

/** What is left of each kind, counted in the database itself. */
async function remaining(database: Database) {
  const count = async (table: 'job_logs' | 'logs' | 'audit_log' | 'sessions' | 'api_keys' | 'archive_verification_tasks') =>
    Number(
      (
        await database.kysely
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return {
    job_logs: await count('job_logs'),
    logs: await count('logs'),
    audit_log: await count('audit_log'),
    sessions: await count('sessions'),
    api_keys: await count('api_keys'),
    verification_tasks: await count('archive_verification_tasks'),
  };
}

describe('housekeeping', () => {
  it('removes what is past each retention, keeps the rest, applies a changed setting, and reports each round', async () => {
    await withDatabase(async (database, dir) => {
      const clock = manualClock(new Date('2026-01-01T00:00:00.000Z'));
      const config = loadConfig({ env: { DISK2ISO_DATA_DIR: dir } });
      assert.equal(config.storage.log_retention_days, 30);
      assert.equal(config.security.audit_retention_days, 365);
      const auth = createAuthService({ database, dataDir: dir, now: clock.now });
      const jobs = createJobRepository(database, { now: clock.now });
      const logs = createLogRepository(database, { now: clock.now });
      const tasks = createVerificationTaskRepository(database, { now: clock.now });
      const keys = createApiKeyRepository(database);
      const housekeeping = createHousekeeping({
        config,
        auth,
        pruneJobLogs: (before) => jobs.pruneLogs(before),
        pruneLogs: (before) => logs.prune(before),
        pruneVerificationTasks: (before) => tasks.pruneFinished(before),
        now: clock.now,
      });
      assert.equal(housekeeping.last(), null, 'no round yet');

      // Day 0: a job log line, an application log line, a finished verification task, a login, and keys.
      const job = await createSqliteQueue(database, { now: clock.now }).enqueue({
        name: 'disc',
        deviceId: 'sr0',
        devicePath: '/dev/sr0',
        outputFile: '/out/disc.iso',
      });
      await jobs.appendLog(job.id, 'info', 'day 0');
      await logs.append({ level: 'info', source: 'test', message: 'day 0' });
      const archive = await createArchiveRepository(database, { now: clock.now }).create({
        filename: 'disc.iso',
        path: '/out/disc.iso',
        sizeBytes: 1,
        checksums: {},
        source: { deviceId: null, devicePath: null, discKind: null, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] },
      });
      await tasks.requestCancel((await tasks.enqueue({ archiveId: archive.id, bytesTotal: 1, requestedBy: null })).id);
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      await auth.login('alice', USER_PASSWORD, CLIENT);
      const revokedEarly = await auth.apiKeys.create({ user: 'alice', name: 'revoked on day 0' }, CLI);
      await auth.apiKeys.revoke(revokedEarly.record.id, CLI);
      const expiring = await auth.apiKeys.create({ user: 'alice', name: 'expires on day 1', expiresAt: new Date(clock.now().getTime() + DAY) }, CLI);
      // Its parent expires with it, but it was given longer: deleting the parent would take it along.
      await database.transaction((tx) =>
        keys.insertWithin(tx, {
          id: 'key_child',
          userId: expiring.record.userId,
          name: 'child',
          prefix: 'd2i_child',
          keyHash: 'child-hash',
          scopes: ['jobs:read'],
          at: clock.now(),
          createdBy: 'alice',
          expiresAt: new Date(clock.now().getTime() + 400 * DAY),
          parentId: expiring.record.id,
        }),
      );
      const kept = await auth.apiKeys.create({ user: 'alice', name: 'never expires' }, CLI);

      // Day 20: everything is within its retention; only the session (idle for 20 days) has ended.
      clock.advance(20 * DAY);
      await logs.append({ level: 'info', source: 'test', message: 'day 20' });
      const first = await housekeeping.run();
      assert.deepEqual(first, {
        at: clock.now().toISOString(),
        error: null,
        removed: { sessions: 1, login_failures: 0, api_keys: 0, job_logs: 0, logs: 0, audit_entries: 0, verification_tasks: 0 },
      });
      assert.deepEqual(housekeeping.last(), first);

      // Day 40: the day-0 lines and task are past 30 days; the day-20 line is not.
      clock.advance(20 * DAY);
      const second = await housekeeping.run();
      assert.deepEqual(second.removed, { sessions: 0, login_failures: 0, api_keys: 0, job_logs: 1, logs: 1, audit_entries: 0, verification_tasks: 1 });
      const afterSecond = await remaining(database);
      assert.deepEqual([afterSecond.job_logs, afterSecond.logs, afterSecond.verification_tasks], [0, 1, 0]);

      // A shorter retention applies from the next round on.
      config.storage.log_retention_days = 10;
      assert.equal((await housekeeping.run()).removed.logs, 1, 'the day-20 line is older than 10 days now');
      assert.deepEqual(housekeeping.retentionDays(), { logs: 10, audit: 365, ended_api_keys: 90 });

      // Day 100: the key revoked on day 0 is past 90 days; the expired parent still has a working child.
      clock.advance(60 * DAY);
      const keyRound = await housekeeping.run();
      assert.equal(keyRound.removed.api_keys, 1);
      assert.equal(keyRound.removed.audit_entries, 0, 'day-0 audit entries are within 365 days');
      const left = (await auth.apiKeys.list({}, CLI)).map((key) => key.name).sort();
      assert.deepEqual(left, ['child', 'expires on day 1', 'never expires']);

      // Day 500: the child expired on day 400, more than 90 days ago; it goes, then its parent.
      // The audit entries, all of day 0, are past 365 days.
      clock.advance(400 * DAY);
      const audited = (await remaining(database)).audit_log;
      assert.ok(audited >= 5, `adding alice, her login and her keys were audited: ${audited}`);
      const lastRound = await housekeeping.run();
      assert.equal(lastRound.removed.api_keys, 2);
      assert.equal(lastRound.removed.audit_entries, audited);
      assert.deepEqual(
        (await auth.apiKeys.list({}, CLI)).map((key) => key.id),
        [kept.record.id],
      );
      assert.equal((await remaining(database)).audit_log, 0);
    });
  });

  it('reports a failed round with what it removed before the failure', async () => {
    await withDatabase(async (database, dir) => {
      const clock = manualClock();
      const config = loadConfig({ env: { DISK2ISO_DATA_DIR: dir } });
      const auth = createAuthService({ database, dataDir: dir, now: clock.now });
      const logs = createLogRepository(database, { now: clock.now });
      await logs.append({ level: 'info', source: 'test', message: 'old' });
      clock.advance(40 * DAY);
      const housekeeping = createHousekeeping({
        config,
        auth,
        pruneJobLogs: (before) => createJobRepository(database, { now: clock.now }).pruneLogs(before),
        pruneLogs: (before) => logs.prune(before),
        pruneVerificationTasks: () => Promise.reject(new Error('disk I/O error')),
        now: clock.now,
      });
      const round = await housekeeping.run();
      assert.equal(round.error, 'disk I/O error');
      assert.equal(round.removed.logs, 1, 'the rules before the failing one were applied');
      assert.equal((await remaining(database)).logs, 0);
    });
  });

  it('runs in the service at start with real timestamps, and shows its latest round in the status', async () => {
    for (const [retentionDays, expectedRemoved] of [
      [undefined, 1],
      ['60', 0],
    ] as const) {
      const dataDir = await createTestDataDir('disk2iso-housekeeping-');
      try {
        // Written before the service starts: one line 40 days old, one from now.
        const database = await openDataDirDatabase(dataDir);
        let jobId: string;
        try {
          const queue = createSqliteQueue(database);
          const job = await queue.enqueue({ name: 'disc', deviceId: 'sr0', devicePath: '/dev/sr0', outputFile: '/out/disc.iso' });
          // Finished: the service's runner leaves it (and its log) alone.
          await queue.requestStop(job.id, 'cancel');
          jobId = job.id;
          await createJobRepository(database, { now: () => new Date(Date.now() - 40 * DAY) }).appendLog(jobId, 'info', 'forty days ago');
          await createJobRepository(database).appendLog(jobId, 'info', 'today');
        } finally {
          await database.close();
        }
        const service = await startTestServer({
          dataDir,
          env: retentionDays === undefined ? {} : { DISK2ISO_STORAGE_LOG_RETENTION_DAYS: retentionDays },
        });
        try {
          const status = (await api(service.url, 'GET', '/api/v1/system/status')).body;
          assert.equal(status.housekeeping.interval_seconds, 60);
          assert.deepEqual(status.housekeeping.retention_days, { logs: Number(retentionDays ?? 30), audit: 365, ended_api_keys: 90 });
          assert.equal(status.housekeeping.last_run.error, null);
          assert.equal(status.housekeeping.last_run.removed.job_logs, expectedRemoved);
          assert.ok(Date.parse(status.housekeeping.last_run.at) <= Date.now());
          const lines = (await api(service.url, 'GET', `/api/v1/jobs/${jobId}/logs`)).body.logs.map((line: { message: string }) => line.message);
          assert.deepEqual(lines, expectedRemoved === 1 ? ['today'] : ['forty days ago', 'today']);
        } finally {
          await service.close();
        }
      } finally {
        await removeTestDataDir(dataDir);
      }
    }
  });
});
