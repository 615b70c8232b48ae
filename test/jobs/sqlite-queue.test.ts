import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { ConflictError, NotFoundError, ValidationError } from '../../src/errors.js';
import type { JobPriority, JobRecord, LeaseHolder } from '../../src/jobs/model.js';
import { type EnqueueInput, type JobQueue, newWorkerId } from '../../src/jobs/queue.js';
import { manualClock, withDatabase } from '../db/support.js';
import { openAgain } from '../support/database.js';

const LEASE_MS = 30_000;

function job(name: string, deviceId: string, priority?: JobPriority): EnqueueInput {
  return {
    name,
    deviceId,
    devicePath: `/dev/${deviceId}`,
    outputFile: `/srv/images/${name}.iso`,
    ...(priority === undefined ? {} : { priority }),
  };
}

async function claimAll(queue: JobQueue, workerId: string): Promise<string[]> {
  const names: string[] = [];
  for (let next = await queue.claimNext(workerId, { leaseMs: LEASE_MS }); next; next = await queue.claimNext(workerId, { leaseMs: LEASE_MS })) {
    names.push(next.name);
  }
  return names;
}

describe('job queue', () => {
  it('enqueues a job as queued with defaults, options and a growing seq', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      const first = await queue.enqueue({
        ...job('disc1', 'sr0'),
        options: { read_attempts: 3, verify: true, checksums: ['md5', 'sha256'] },
        createdBy: 'user_1',
      });
      clock.advance(1000);
      const second = await queue.enqueue(job('disc2', 'sr0'));

      assert.match(first.id, /^job_[0-9a-f]{20}$/);
      assert.equal(first.status, 'queued');
      assert.equal(first.priority, 'normal');
      assert.deepEqual(first.options, { read_attempts: 3, verify: true, checksums: ['md5', 'sha256'] });
      assert.equal(first.createdBy, 'user_1');
      assert.equal(first.createdAt, '2026-01-15T10:00:00.000Z');
      assert.equal(first.updatedAt, first.createdAt);
      assert.equal(first.attempts, 0);
      assert.equal(first.leaseOwner, null);
      assert.equal(first.startedAt, null);
      assert.ok(second.seq > first.seq);
      assert.deepEqual(await queue.get(first.id), first);
      assert.equal(await queue.get('job_unknown'), null);
    });
  });

  it('claims by priority, high before normal before low, and first in first out within one', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const inputs: Array<[string, JobPriority]> = [
        ['low-1', 'low'],
        ['normal-1', 'normal'],
        ['high-1', 'high'],
        ['low-2', 'low'],
        ['normal-2', 'normal'],
        ['high-2', 'high'],
      ];
      // One drive per job, so only priority and order decide.
      for (const [name, priority] of inputs) await queue.enqueue(job(name, `drive-${name}`, priority));
      assert.deepEqual(await claimAll(queue, 'worker'), ['high-1', 'high-2', 'normal-1', 'normal-2', 'low-1', 'low-2']);
    });
  });

  it('sets the claimed job running under a lease and counts the attempt', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      const queued = await queue.enqueue(job('disc', 'sr0'));
      clock.advance(5000);
      const claimed = await queue.claimNext('worker-a', { leaseMs: LEASE_MS });
      assert.ok(claimed);
      assert.equal(claimed.id, queued.id);
      assert.equal(claimed.status, 'running');
      assert.equal(claimed.leaseOwner, 'worker-a');
      assert.equal(claimed.startedAt, '2026-01-15T10:00:05.000Z');
      assert.equal(claimed.leaseExpiresAt, '2026-01-15T10:00:35.000Z');
      assert.equal(claimed.attempts, 1);
    });
  });

  it('runs at most one job per drive and leaves other drives free', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      await queue.enqueue(job('sr0-first', 'sr0', 'low'));
      await queue.enqueue(job('sr0-second', 'sr0', 'high'));
      await queue.enqueue(job('sr1-only', 'sr1', 'low'));

      const first = await queue.claimNext('w', { leaseMs: LEASE_MS });
      assert.equal(first?.name, 'sr0-second');
      const second = await queue.claimNext('w', { leaseMs: LEASE_MS });
      assert.equal(second?.name, 'sr1-only', 'sr0 is busy, so the lower-priority job on sr1 starts');
      assert.equal(await queue.claimNext('w', { leaseMs: LEASE_MS }), null, 'sr0 still runs a job');

      assert.ok(first);
      await queue.update(first.id, 'w', { status: 'verifying', phase: 'verifying' });
      assert.equal(await queue.claimNext('w', { leaseMs: LEASE_MS }), null, 'a verifying job holds its drive too');

      await queue.finish(first.id, 'w', 'completed');
      const third = await queue.claimNext('w', { leaseMs: LEASE_MS });
      assert.equal(third?.name, 'sr0-first');
    });
  });

  it('skips drives the caller reports busy', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      await queue.enqueue(job('on-sr0', 'sr0', 'high'));
      await queue.enqueue(job('on-sr1', 'sr1', 'low'));
      const claimed = await queue.claimNext('w', { leaseMs: LEASE_MS, busyDeviceIds: ['sr0'] });
      assert.equal(claimed?.name, 'on-sr1');
      assert.equal(await queue.claimNext('w', { leaseMs: LEASE_MS, busyDeviceIds: ['sr0'] }), null);
    });
  });

  it('keeps the number of running jobs under maxRunning', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      for (const device of ['sr0', 'sr1', 'sr2']) await queue.enqueue(job(`on-${device}`, device));
      const a = await queue.claimNext('w', { leaseMs: LEASE_MS, maxRunning: 2 });
      const b = await queue.claimNext('w', { leaseMs: LEASE_MS, maxRunning: 2 });
      assert.ok(a && b);
      assert.equal(await queue.claimNext('w', { leaseMs: LEASE_MS, maxRunning: 2 }), null);
      await queue.update(a.id, 'w', { status: 'verifying' });
      assert.equal(await queue.claimNext('w', { leaseMs: LEASE_MS, maxRunning: 2 }), null, 'verifying counts as running');
      await queue.finish(a.id, 'w', 'completed');
      const c = await queue.claimNext('w', { leaseMs: LEASE_MS, maxRunning: 2 });
      assert.equal(c?.name, 'on-sr2');
    });
  });

  it('gives each node its own jobs and drives: a job is claimed only by the node whose drive it names', async () => {
    await withDatabase(async (database) => {
      const nodeA = createSqliteQueue(database, { nodeId: 'tower-a' });
      const nodeB = createSqliteQueue(database, { nodeId: 'tower-b' });
      const forA = await nodeA.enqueue(job('on-a', 'sr0'));
      assert.equal(await nodeB.claimNext('worker-b', { leaseMs: LEASE_MS }), null, 'node B never claims a job of node A');
      await assert.rejects(nodeB.claimJob(forA.id, 'worker-b', { leaseMs: LEASE_MS }), (error: unknown) => {
        assert.ok(error instanceof ConflictError);
        assert.equal(error.code, 'invalid_state');
        assert.match(error.message, /node tower-a/);
        return true;
      });
      // Both nodes' sr0 are drives of their own: one job runs on each at once.
      const forB = await nodeB.enqueue(job('on-b', 'sr0'));
      assert.equal((await nodeA.claimNext('worker-a', { leaseMs: LEASE_MS }))?.id, forA.id);
      const claimedB = await nodeB.claimNext('worker-b', { leaseMs: LEASE_MS, maxRunning: 1 });
      assert.equal(claimedB?.id, forB.id, 'node A running a job neither blocks sr0 of node B nor counts against its maxRunning');
      // Within one node the drive is still taken: a second job on A's sr0 waits.
      await nodeA.enqueue(job('on-a-later', 'sr0'));
      assert.equal(await nodeA.claimNext('worker-a', { leaseMs: LEASE_MS }), null);
      await assert.rejects(
        nodeA.enqueue({ ...job('on-a-now', 'sr0'), claim: { workerId: 'worker-a', leaseMs: LEASE_MS } }),
        (error: unknown) => error instanceof ConflictError && error.code === 'device_busy',
      );
    });
  });

  it('lets the first node that takes up a job naming no node (moved from the embedded database) own it', async () => {
    await withDatabase(async (database) => {
      const embedded = createSqliteQueue(database);
      const moved = await embedded.enqueue(job('moved', 'sr1'));
      const nodeA = createSqliteQueue(database, { nodeId: 'tower-a' });
      const nodeB = createSqliteQueue(database, { nodeId: 'tower-b' });
      const claimed = await nodeA.claimNext('worker-a', { leaseMs: LEASE_MS });
      assert.equal(claimed?.id, moved.id);
      const row = await database.kysely.selectFrom('jobs').select('node_id').where('id', '=', moved.id).executeTakeFirstOrThrow();
      assert.equal(row.node_id, 'tower-a');
      await nodeA.finish(moved.id, 'worker-a', 'paused');
      assert.equal(await nodeB.claimNext('worker-b', { leaseMs: LEASE_MS }), null, 'once owned, it stays with its node');
    });
  });

  it('rejects a lease or limit that is not a positive integer', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      await queue.enqueue(job('disc', 'sr0'));
      await assert.rejects(queue.claimNext('w', { leaseMs: 0 }), ValidationError);
      await assert.rejects(queue.claimNext('w', { leaseMs: LEASE_MS, maxRunning: 0 }), ValidationError);
      await assert.rejects(queue.claimNext('w', { leaseMs: 1.5 }), ValidationError);
    });
  });

  it('never hands one job to two claimers on two connections, nor two jobs of one drive', async () => {
    await withDatabase(async (first) => {
      const second = await openAgain(first);
      try {
        const queues = [createSqliteQueue(first), createSqliteQueue(second)];
        const jobCount = 120;
        const devices = 6;
        const queueA = queues[0];
        assert.ok(queueA);
        for (let index = 0; index < jobCount; index += 1) await queueA.enqueue(job(`job-${index}`, `dev${index % devices}`));

        const claims: Array<{ worker: string; job: JobRecord }> = [];
        let overlaps = 0;
        const activeDevices = new Set<string>();
        const work = async (queue: JobQueue, worker: string): Promise<void> => {
          for (;;) {
            const claimed = await queue.claimNext(worker, { leaseMs: LEASE_MS });
            if (claimed === null) {
              if ((await queue.positions()).size === 0) return;
              await yieldToEventLoop();
              continue;
            }
            if (activeDevices.has(claimed.deviceId)) overlaps += 1;
            activeDevices.add(claimed.deviceId);
            claims.push({ worker, job: claimed });
            // Let the other claimer run while this job holds its drive.
            await yieldToEventLoop();
            activeDevices.delete(claimed.deviceId);
            await queue.finish(claimed.id, worker, 'completed');
          }
        };
        await Promise.all(queues.flatMap((queue, index) => [work(queue, `conn${index}-a`), work(queue, `conn${index}-b`)]));

        const ids = claims.map((claim) => claim.job.id);
        assert.equal(ids.length, jobCount);
        assert.equal(new Set(ids).size, jobCount, 'no job was claimed twice');
        assert.equal(overlaps, 0, 'no drive ran two jobs at once');
        assert.ok(claims.every((claim) => claim.job.attempts === 1));
        for (const prefix of ['conn0', 'conn1']) {
          assert.ok(
            claims.some((claim) => claim.worker.startsWith(prefix)),
            `${prefix} claimed jobs too`,
          );
        }
      } finally {
        await second.close();
      }
    });
  });

  it('lets a job whose lease expired be recovered, keeping its progress, start time and attempts', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      const queued = await queue.enqueue(job('disc', 'sr0'));
      const claimed = await queue.claimNext('dead-worker', { leaseMs: LEASE_MS });
      assert.ok(claimed);
      await queue.update(claimed.id, 'dead-worker', { phase: 'copying', progress: 42.5, bytesDone: 1000, sizeBytes: 4000, speedBps: 100, etaSeconds: 30 });

      clock.advance(LEASE_MS - 1);
      assert.deepEqual(await queue.recoverExpired(), [], 'the lease has not run out yet');
      clock.advance(2);
      const recovered = await queue.recoverExpired();
      assert.equal(recovered.length, 1);
      const [job0] = recovered;
      assert.ok(job0);
      assert.equal(job0.id, queued.id);
      assert.equal(job0.status, 'queued');
      assert.equal(job0.leaseOwner, null);
      assert.equal(job0.leaseExpiresAt, null);
      assert.equal(job0.attempts, 1);
      assert.equal(job0.progress, 42.5);
      assert.equal(job0.bytesDone, 1000);
      assert.equal(job0.phase, 'copying');
      assert.equal(job0.speedBps, null);
      assert.equal(job0.seq, queued.seq, 'it keeps its place in the queue');
      assert.equal(job0.startedAt, claimed.startedAt);

      assert.equal(await queue.heartbeat(claimed.id, 'dead-worker', LEASE_MS), false);
      assert.equal(await queue.update(claimed.id, 'dead-worker', { progress: 50 }), null);
      await assert.rejects(queue.finish(claimed.id, 'dead-worker', 'completed'), (error: unknown) => {
        assert.ok(error instanceof ConflictError);
        assert.equal(error.code, 'lease_lost');
        return true;
      });

      clock.advance(1000);
      const again = await queue.claimNext('new-worker', { leaseMs: LEASE_MS });
      assert.equal(again?.id, queued.id);
      assert.equal(again?.attempts, 2);
      assert.equal(again?.startedAt, claimed.startedAt, 'started_at is the first start');
      assert.equal(again?.progress, 42.5);
      assert.deepEqual(await queue.recoverExpired(), []);
    });
  });

  it('extends a lease on heartbeat, only for the worker holding the job', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      await queue.enqueue(job('disc', 'sr0'));
      const claimed = await queue.claimNext('worker', { leaseMs: 1000 });
      assert.ok(claimed);

      clock.advance(800);
      assert.equal(await queue.heartbeat(claimed.id, 'worker', 1000), true);
      assert.equal(await queue.heartbeat(claimed.id, 'someone-else', 1000), false);
      assert.equal((await queue.get(claimed.id))?.leaseExpiresAt, '2026-01-15T10:00:01.800Z');

      clock.advance(800);
      assert.deepEqual(await queue.recoverExpired(), [], 'without the heartbeat the lease would have expired');
      clock.advance(201);
      assert.deepEqual(
        (await queue.recoverExpired()).map((recovered) => recovered.id),
        [claimed.id],
      );
      assert.equal(await queue.heartbeat(claimed.id, 'worker', 1000), false, 'the lease is lost once recovered');
    });
  });

  it('carries out a stop that was asked for when it recovers a dead job', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      const toCancel = await queue.enqueue(job('cancel-me', 'sr0'));
      const toPause = await queue.enqueue(job('pause-me', 'sr1'));
      await queue.claimNext('w', { leaseMs: 1000 });
      await queue.claimNext('w', { leaseMs: 1000 });
      await queue.requestStop(toCancel.id, 'cancel');
      await queue.requestStop(toPause.id, 'pause');
      clock.advance(5000);
      const recovered = new Map((await queue.recoverExpired()).map((record) => [record.id, record]));
      assert.equal(recovered.get(toCancel.id)?.status, 'cancelled');
      assert.equal(recovered.get(toCancel.id)?.finishedAt, '2026-01-15T10:00:05.000Z');
      assert.equal(recovered.get(toPause.id)?.status, 'paused');
      assert.equal(recovered.get(toPause.id)?.finishedAt, null);
      assert.equal(recovered.get(toPause.id)?.requestedAction, null);
    });
  });

  it('records who holds a lease, and recovers at once the jobs of a holder that has ended, only while it still holds them', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      const holder = (pid: number): LeaseHolder => ({ host: 'nas', bootId: 'boot-1', pidNamespace: 'pid:[4026531836]', pid, startTicks: 1000 + pid });
      const dead = await queue.enqueue(job('dead-holder', 'sr0'));
      const alive = await queue.enqueue(job('live-holder', 'sr1'));
      const reclaimed = await queue.enqueue(job('reclaimed', 'sr2'));
      await queue.enqueue(job('no-holder', 'sr3'));
      assert.equal((await queue.claimNext('w-dead', { leaseMs: LEASE_MS, holder: holder(101) }))?.id, dead.id);
      assert.equal((await queue.claimNext('w-alive', { leaseMs: LEASE_MS, holder: holder(102) }))?.id, alive.id);
      const first = await queue.claimNext('w-gone', { leaseMs: LEASE_MS, holder: holder(103) });
      assert.equal(first?.id, reclaimed.id);
      assert.deepEqual(first?.leaseHolder, holder(103));
      await queue.claimNext('w-unknown', { leaseMs: LEASE_MS });

      const asked: number[] = [];
      const recovered = await queue.recoverExpired({
        holderGone: async (candidate) => {
          asked.push(candidate.pid);
          if (candidate.pid === 103) {
            // Between the check and the requeue its job ends and another worker claims it: that one must keep it.
            await queue.finish(reclaimed.id, 'w-gone', 'paused');
            await queue.requeue(reclaimed.id);
            await queue.claimNext('w-new', { leaseMs: LEASE_MS, holder: holder(104) });
          }
          return candidate.pid === 101 || candidate.pid === 103;
        },
      });
      assert.deepEqual(asked.sort(), [101, 102, 103], 'only jobs with a recorded holder are checked');
      assert.deepEqual(
        recovered.map((record) => [record.id, record.status, record.leaseOwner, record.leaseHolder]),
        [[dead.id, 'queued', null, null]],
      );
      assert.equal((await queue.get(alive.id))?.leaseOwner, 'w-alive', 'a living holder keeps its job');
      assert.equal((await queue.get(reclaimed.id))?.leaseOwner, 'w-new');
      assert.equal((await queue.get(reclaimed.id))?.status, 'running');

      const finished = await queue.finish(alive.id, 'w-alive', 'completed');
      assert.equal(finished.leaseHolder, null, 'the holder goes with the lease');
    });
  });

  it('records progress and finishes a held job', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      await queue.enqueue(job('disc', 'sr0'));
      const claimed = await queue.claimNext('w', { leaseMs: LEASE_MS });
      assert.ok(claimed);

      clock.advance(1000);
      const updated = await queue.update(claimed.id, 'w', {
        phase: 'copying',
        progress: 10,
        bytesDone: 100,
        sizeBytes: 1000,
        speedBps: 50,
        etaSeconds: 18,
        badBytes: 2048,
        errorCount: 1,
      });
      assert.equal(updated?.progress, 10);
      assert.equal(updated?.badBytes, 2048);
      assert.equal(updated?.speedBps, 50);
      assert.equal(updated?.updatedAt, '2026-01-15T10:00:01.000Z');
      assert.equal(await queue.update(claimed.id, 'other', { progress: 11 }), null);

      clock.advance(1000);
      const finished = await queue.finish(claimed.id, 'w', 'failed', { errorCode: 'read_error', errorMessage: 'EIO at 4096', progress: 90 });
      assert.equal(finished.status, 'failed');
      assert.equal(finished.errorCode, 'read_error');
      assert.equal(finished.errorMessage, 'EIO at 4096');
      assert.equal(finished.progress, 90);
      assert.equal(finished.finishedAt, '2026-01-15T10:00:02.000Z');
      assert.equal(finished.leaseOwner, null);
      assert.equal(finished.speedBps, null);
      assert.equal(finished.etaSeconds, null);
      await assert.rejects(queue.finish(claimed.id, 'w', 'completed'), ConflictError);
      await assert.rejects(queue.finish('job_unknown', 'w', 'completed'), NotFoundError);
    });
  });

  it('reports queue positions by priority, then order, and moves a job when its priority changes', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const a = await queue.enqueue(job('a', 'sr0'));
      const b = await queue.enqueue(job('b', 'sr0'));
      const c = await queue.enqueue(job('c', 'sr1', 'low'));
      const d = await queue.enqueue(job('d', 'sr1'));
      assert.deepEqual(
        [...(await queue.positions())],
        [
          [a.id, 1],
          [b.id, 2],
          [d.id, 3],
          [c.id, 4],
        ],
      );

      const raised = await queue.setPriority(c.id, 'high');
      assert.equal(raised.priority, 'high');
      assert.deepEqual(
        [...(await queue.positions())],
        [
          [c.id, 1],
          [a.id, 2],
          [b.id, 3],
          [d.id, 4],
        ],
      );

      const claimed = await queue.claimNext('w', { leaseMs: LEASE_MS });
      assert.equal(claimed?.id, c.id);
      assert.deepEqual(
        [...(await queue.positions())],
        [
          [a.id, 1],
          [b.id, 2],
          [d.id, 3],
        ],
        'only queued jobs have a position',
      );

      assert.ok(claimed);
      await queue.finish(claimed.id, 'w', 'completed');
      await assert.rejects(queue.setPriority(c.id, 'low'), ConflictError);
      await assert.rejects(queue.setPriority('job_unknown', 'low'), NotFoundError);
    });
  });

  it('pauses and cancels queued and paused jobs at once', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      const a = await queue.enqueue(job('a', 'sr0'));
      const b = await queue.enqueue(job('b', 'sr1'));

      const paused = await queue.requestStop(a.id, 'pause');
      assert.equal(paused.status, 'paused');
      assert.equal(paused.requestedAction, null);
      assert.equal((await queue.requestStop(a.id, 'pause')).status, 'paused');
      assert.equal(await queue.claimNext('w', { leaseMs: LEASE_MS, busyDeviceIds: ['sr1'] }), null, 'a paused job is not claimed');

      clock.advance(1000);
      const cancelled = await queue.requestStop(a.id, 'cancel');
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.finishedAt, '2026-01-15T10:00:01.000Z');
      assert.equal((await queue.requestStop(b.id, 'cancel')).status, 'cancelled');

      await assert.rejects(queue.requestStop(a.id, 'pause'), (error: unknown) => error instanceof ConflictError && error.code === 'invalid_state');
      await assert.rejects(queue.requestStop('job_unknown', 'cancel'), NotFoundError);
    });
  });

  it('asks the worker of a running job to stop, and a cancel is never weakened to a pause', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const queued = await queue.enqueue(job('a', 'sr0'));
      await queue.claimNext('w', { leaseMs: LEASE_MS });

      const pausing = await queue.requestStop(queued.id, 'pause');
      assert.equal(pausing.status, 'running');
      assert.equal(pausing.requestedAction, 'pause');
      assert.equal((await queue.update(queued.id, 'w', { progress: 5 }))?.requestedAction, 'pause', 'the worker sees it');

      assert.equal((await queue.requestStop(queued.id, 'cancel')).requestedAction, 'cancel');
      assert.equal((await queue.requestStop(queued.id, 'pause')).requestedAction, 'cancel');

      const finished = await queue.finish(queued.id, 'w', 'cancelled');
      assert.equal(finished.status, 'cancelled');
      assert.equal(finished.requestedAction, null);
    });
  });

  it('stops every unfinished job at once and reports the ones it changed', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const running = await queue.enqueue(job('running', 'sr0'));
      await queue.claimNext('w', { leaseMs: LEASE_MS });
      const queued = await queue.enqueue(job('queued', 'sr1'));
      const paused = await queue.enqueue(job('paused', 'sr2'));
      await queue.requestStop(paused.id, 'pause');
      const done = await queue.enqueue(job('done', 'sr3'));
      const claimedDone = await queue.claimNext('w2', { leaseMs: LEASE_MS, busyDeviceIds: ['sr1'] });
      assert.equal(claimedDone?.id, done.id);
      await queue.finish(done.id, 'w2', 'completed');

      const paused1 = await queue.requestStopAll('pause');
      assert.deepEqual(
        paused1.map((record) => [record.id, record.status, record.requestedAction]),
        [
          [running.id, 'running', 'pause'],
          [queued.id, 'paused', null],
        ],
      );
      const cancelled = await queue.requestStopAll('cancel');
      assert.deepEqual(
        cancelled.map((record) => [record.id, record.status, record.requestedAction]),
        [
          [running.id, 'running', 'cancel'],
          [queued.id, 'cancelled', null],
          [paused.id, 'cancelled', null],
        ],
      );
      assert.equal((await queue.get(done.id))?.status, 'completed');
    });
  });

  it('queues a paused, failed or cancelled job again behind the others, keeping its progress', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const first = await queue.enqueue(job('first', 'sr0'));
      await queue.claimNext('w', { leaseMs: LEASE_MS });
      await queue.update(first.id, 'w', { progress: 30, bytesDone: 300 });
      await queue.finish(first.id, 'w', 'paused');
      const other = await queue.enqueue(job('other', 'sr0'));

      const requeued = await queue.requeue(first.id);
      assert.equal(requeued.status, 'queued');
      assert.ok(requeued.seq > other.seq, 'it goes behind jobs queued meanwhile');
      assert.equal(requeued.progress, 30);
      assert.equal(requeued.attempts, 1);
      assert.deepEqual(await queue.requeue(first.id), requeued, 'requeueing a queued job changes nothing');

      const claimed = await queue.claimNext('w', { leaseMs: LEASE_MS });
      assert.equal(claimed?.id, other.id);
      assert.ok(claimed);
      await assert.rejects(queue.requeue(claimed.id), ConflictError);
      await queue.finish(claimed.id, 'w', 'failed', { errorCode: 'read_error', errorMessage: 'EIO' });
      const retried = await queue.requeue(claimed.id);
      assert.equal(retried.status, 'queued');
      assert.equal(retried.errorCode, null);
      assert.equal(retried.errorMessage, null);
      assert.equal(retried.finishedAt, null);

      const again = await queue.claimNext('w', { leaseMs: LEASE_MS });
      assert.equal(again?.id, first.id);
      assert.ok(again);
      await queue.finish(again.id, 'w', 'completed');
      await assert.rejects(queue.requeue(again.id), ConflictError);
      await assert.rejects(queue.requeue('job_unknown'), NotFoundError);
    });
  });

  it('moves a job to another drive as it queues it again, where it waits while another job runs', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const moving = await queue.enqueue(job('moving', 'sr0'));
      await queue.claimNext('w', { leaseMs: LEASE_MS });
      await queue.finish(moving.id, 'w', 'paused', { progress: 40, bytesDone: 4000, phase: 'copying' });
      const occupying = await queue.enqueue(job('occupying', 'sr1'));
      assert.equal((await queue.claimNext('w', { leaseMs: LEASE_MS }))?.id, occupying.id);
      await assert.rejects(
        queue.requeue(occupying.id, { drive: { id: 'sr2', path: '/dev/sr2' } }),
        (error: unknown) => error instanceof ConflictError && error.code === 'invalid_state',
      );

      const moved = await queue.requeue(moving.id, { drive: { id: 'sr1', path: '/dev/sr1' } });
      assert.deepEqual([moved.status, moved.deviceId, moved.devicePath, moved.progress, moved.bytesDone], ['queued', 'sr1', '/dev/sr1', 40, 4000]);
      assert.equal(await queue.claimNext('w', { leaseMs: LEASE_MS }), null, 'one job per drive: it waits for sr1');
      await queue.finish(occupying.id, 'w', 'completed');
      const claimed = await queue.claimNext('w', { leaseMs: LEASE_MS });
      assert.deepEqual([claimed?.id, claimed?.deviceId, claimed?.attempts], [moving.id, 'sr1', 2]);

      const waiting = await queue.enqueue(job('waiting', 'sr3'));
      const queuedMove = await queue.requeue(waiting.id, { drive: { id: 'sr4', path: '/dev/sr4' } });
      assert.deepEqual([queuedMove.status, queuedMove.deviceId, queuedMove.seq], ['queued', 'sr4', waiting.seq], 'a queued job keeps its place');
    });
  });

  it('makes worker ids that name the process and differ between workers', () => {
    const [a, b] = [newWorkerId(), newWorkerId()];
    assert.notEqual(a, b);
    assert.ok(a.includes(`:${process.pid}:`));
  });
});
