import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogRepository } from '../../src/db/log-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { ConflictError } from '../../src/errors.js';
import { createEventBus } from '../../src/events/bus.js';
import type { JobEvents } from '../../src/jobs/events.js';
import {
  ACTIVE_JOB_STATUSES,
  FINISHED_JOB_STATUSES,
  JOB_STATUSES,
  type JobRecord,
  type JobStatus,
  UNFINISHED_JOB_STATUSES,
  isActive,
  isFinished,
  isRequeueable,
  isUnfinished,
  needsAttention,
} from '../../src/jobs/model.js';
import { silentLogger } from '../../src/log.js';
import { createEventLog } from '../../src/system/event-log.js';
import { withDatabase } from '../db/support.js';

const WORKER = 'model-worker';

describe('the job model', () => {
  it('divides the statuses into unfinished and finished; the active ones are unfinished', () => {
    assert.deepEqual([...UNFINISHED_JOB_STATUSES, ...FINISHED_JOB_STATUSES].sort(), [...JOB_STATUSES].sort());
    assert.deepEqual(
      JOB_STATUSES.filter((status) => isUnfinished(status) === isFinished(status)),
      [],
      'no status is both or neither',
    );
    assert.deepEqual(JOB_STATUSES.filter(isActive), [...ACTIVE_JOB_STATUSES]);
    assert.deepEqual([...ACTIVE_JOB_STATUSES], ['running', 'verifying'], 'a verifying job holds its drive as a running one does');
    for (const status of ACTIVE_JOB_STATUSES) assert.ok(isUnfinished(status), status);
  });

  it('names exactly the statuses the queue takes a job back into the queue from', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const accepted: JobStatus[] = [];
      const devices = JOB_STATUSES.map((status) => `loop-${status}`);
      for (const [index, status] of JOB_STATUSES.entries()) {
        const device = devices[index] ?? '';
        const job = await queue.enqueue({ name: status, deviceId: device, devicePath: `/dev/${device}`, outputFile: `/out/${status}.iso` });
        if (status !== 'queued') {
          // Only this job's drive may start: the jobs queued before (or again) wait on theirs.
          const busyDeviceIds = devices.filter((other) => other !== device);
          assert.equal((await queue.claimNext(WORKER, { leaseMs: 60_000, busyDeviceIds }))?.id, job.id);
          if (status === 'verifying') await queue.update(job.id, WORKER, { status: 'verifying' });
          else if (status !== 'running') await queue.finish(job.id, WORKER, status);
        }
        assert.equal((await queue.get(job.id))?.status, status);
        try {
          if ((await queue.requeue(job.id)).status === 'queued' && status !== 'queued') accepted.push(status);
        } catch (error) {
          assert.ok(error instanceof ConflictError && error.code === 'invalid_state', `${status}: ${String(error)}`);
        }
      }
      assert.deepEqual(accepted, JOB_STATUSES.filter(isRequeueable));
    });
  });

  it('says which jobs need someone: failed, waiting for space, or completed with unreadable sectors', () => {
    const job = (status: JobStatus, errorCode: string | null = null, badBytes = 0) => ({ status, errorCode, badBytes });
    const cases: Array<[ReturnType<typeof job>, boolean]> = [
      [job('failed', 'read_error'), true],
      [job('paused', 'no_space'), true],
      [job('paused', 'storage_threshold'), true],
      [job('completed', null, 2048), true],
      [job('paused'), false],
      [job('completed'), false],
      [job('cancelled'), false],
      [job('queued'), false],
      [job('running', null, 2048), false],
      [job('verifying'), false],
    ];
    for (const [given, expected] of cases) assert.equal(needsAttention(given), expected, JSON.stringify(given));
  });

  it('puts a job that needs someone into the application log above info', async () => {
    await withDatabase(async (database) => {
      const logs = createLogRepository(database);
      const eventLog = createEventLog({ logs, log: silentLogger() });
      const events = createEventBus<JobEvents>((error) => {
        throw error;
      });
      const stop = eventLog.follow(events);
      const queue = createSqliteQueue(database);
      const finished = async (name: string, status: 'completed' | 'failed' | 'paused', patch: Parameters<typeof queue.finish>[3]): Promise<JobRecord> => {
        const job = await queue.enqueue({ name, deviceId: name, devicePath: `/dev/${name}`, outputFile: `/out/${name}.iso` });
        assert.equal((await queue.claimNext(WORKER, { leaseMs: 60_000 }))?.id, job.id);
        const ended = await queue.finish(job.id, WORKER, status, patch);
        events.emit('job.finished', { job: ended });
        return ended;
      };
      const clean = await finished('clean', 'completed', {});
      const scratched = await finished('scratched', 'completed', { badBytes: 4096 });
      const full = await finished('full', 'paused', { errorCode: 'no_space', errorMessage: 'the output file system is full' });
      const asked = await finished('asked', 'paused', {});
      const broken = await finished('broken', 'failed', { errorCode: 'read_error', errorMessage: 'the drive gave up' });
      stop();
      await eventLog.flush();
      const lines = (await logs.list({ order: 'asc' })).items.map((line) => [line.jobId, line.level, line.message]);
      assert.deepEqual(lines, [
        [clean.id, 'info', `job ${clean.id} is completed`],
        [scratched.id, 'warning', `job ${scratched.id} is completed with 4096 unreadable bytes`],
        [full.id, 'warning', `job ${full.id} is paused: the output file system is full`],
        [asked.id, 'info', `job ${asked.id} is paused`],
        [broken.id, 'error', `job ${broken.id} is failed: the drive gave up`],
      ]);
    });
  });
});
