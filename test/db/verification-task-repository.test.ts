import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { type ArchiveRepository, createArchiveRepository } from '../../src/db/archive-repository.js';
import type { Database } from '../../src/db/database.js';
import { type VerificationTaskRepository, createVerificationTaskRepository } from '../../src/db/verification-task-repository.js';
import { ConflictError, NotFoundError } from '../../src/errors.js';
import type { LeaseHolder } from '../../src/jobs/model.js';
import { openAgain } from '../support/database.js';
import { type ManualClock, manualClock, withDatabase } from './support.js';

const HOLDER: LeaseHolder = { host: 'here', bootId: 'boot', pidNamespace: 'pid:[1]', pid: 42, startTicks: 7 };
const LEASE = { leaseMs: 30_000, holder: HOLDER, maxRunning: 1 };
const SECOND = 1000;

interface Fixture {
  database: Database;
  tasks: VerificationTaskRepository;
  archives: ArchiveRepository;
  clock: ManualClock;
  archive(name: string): Promise<string>;
}

async function withTasks(work: (fixture: Fixture) => Promise<void>): Promise<void> {
  await withDatabase(async (database) => {
    const clock = manualClock();
    const archives = createArchiveRepository(database, { now: clock.now });
    const archive = async (name: string) =>
      (
        await archives.create({
          filename: `${name}.iso`,
          path: `/out/${name}.iso`,
          sizeBytes: 4096,
          checksums: {},
          source: { deviceId: null, devicePath: null, discKind: null, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] },
        })
      ).id;
    await work({ database, tasks: createVerificationTaskRepository(database, { now: clock.now }), archives, clock, archive });
  });
}

const verification =
  (archives: ArchiveRepository, archiveId: string, ok: boolean) => async (tx: Parameters<ArchiveRepository['recordVerificationWithin']>[0]) => {
    const entry = await archives.recordVerificationWithin(tx, archiveId, {
      startedAt: new Date(),
      finishedAt: new Date(),
      ok,
      results: {},
      seconds: 1,
      requestedBy: 'alice',
    });
    return { status: 'completed' as const, verificationId: entry.id, ok: entry.ok };
  };

describe('verification task repository', () => {
  it('queues one task per archive at a time, runs the oldest first, one at a time', async () => {
    await withTasks(async ({ tasks, clock, archive }) => {
      const [first, second] = [await archive('first'), await archive('second')];
      const a = await tasks.enqueue({ archiveId: first, bytesTotal: 4096, requestedBy: 'alice' });
      assert.equal(a.status, 'queued');
      assert.match(a.id, /^verify_[0-9a-f]{20}$/);
      await assert.rejects(tasks.enqueue({ archiveId: first, bytesTotal: 4096, requestedBy: 'bob' }), (error: unknown) => {
        assert.ok(error instanceof ConflictError);
        assert.equal(error.code, 'verification_running');
        return true;
      });
      clock.advance(SECOND);
      const b = await tasks.enqueue({ archiveId: second, bytesTotal: 4096, requestedBy: null });

      const claimed = await tasks.claimNext('worker-1', LEASE);
      assert.equal(claimed?.id, a.id, 'oldest first');
      assert.equal(claimed?.status, 'running');
      assert.equal(claimed?.attempts, 1);
      assert.equal(await tasks.claimNext('worker-2', LEASE), null, 'one runs at a time');
      assert.equal((await tasks.claimNext('worker-2', { ...LEASE, maxRunning: 2 }))?.id, b.id);
      assert.deepEqual(await tasks.countByStatus(), { queued: 0, running: 2, completed: 0, failed: 0, cancelled: 0 });
      await assert.rejects(tasks.enqueue({ archiveId: first, bytesTotal: 4096, requestedBy: 'bob' }), { code: 'verification_running' });
      assert.deepEqual(
        (await tasks.active([first])).map((task) => task.id),
        [a.id],
      );
      assert.deepEqual(await tasks.active([]), []);
    });
  });

  it('gives a node only the tasks of the images on its own disk, each node running its own one at a time', async () => {
    await withTasks(async ({ tasks, archives, clock }) => {
      const onNode = async (name: string, nodeId: string | null) =>
        (
          await archives.create({
            filename: `${name}.iso`,
            path: `/out/${name}.iso`,
            sizeBytes: 4096,
            checksums: {},
            source: { deviceId: null, devicePath: null, discKind: null, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] },
            nodeId,
          })
        ).id;
      const ofA = await onNode('on-a', 'tower-a');
      const ofB = await onNode('on-b', 'tower-b');
      const shared = await onNode('shared', null);
      assert.equal((await archives.get(ofA))?.nodeId, 'tower-a', 'the archive records its node');
      const taskOfB = await tasks.enqueue({ archiveId: ofB, bytesTotal: 4096, requestedBy: null });
      clock.advance(SECOND);
      const taskOfA = await tasks.enqueue({ archiveId: ofA, bytesTotal: 4096, requestedBy: null });
      clock.advance(SECOND);
      const sharedTask = await tasks.enqueue({ archiveId: shared, bytesTotal: 4096, requestedBy: null });

      assert.equal((await tasks.claimNext('a-1', { ...LEASE, node: 'tower-a' }))?.id, taskOfA.id, 'tower-a passes over the older task of tower-b');
      assert.equal(await tasks.claimNext('a-2', { ...LEASE, node: 'tower-a' }), null, 'one at a time on tower-a');
      assert.equal((await tasks.claimNext('b-1', { ...LEASE, node: 'tower-b' }))?.id, taskOfB.id, 'tower-a’s run does not hold tower-b’s disk');
      assert.equal((await tasks.claimNext('c-1', { ...LEASE, node: 'tower-c' }))?.id, sharedTask.id, 'an image of no node is anyone’s');
      await tasks.enqueue({ archiveId: await onNode('on-a-2', 'tower-a'), bytesTotal: 4096, requestedBy: null });
      assert.equal(await tasks.claimNext('c-2', { ...LEASE, node: 'tower-c', maxRunning: 5 }), null, 'no node takes another node’s image');
      assert.equal(
        (await tasks.claimNext('any', { ...LEASE, maxRunning: 5 }))?.archiveId,
        (await archives.getByPath('/out/on-a-2.iso'))?.id,
        'without a node, every task is taken',
      );
    });
  });

  it('never gives one task to two claimers on two connections, nor runs more than maxRunning at once', async () => {
    await withTasks(async ({ database, tasks, archive }) => {
      const count = 40;
      for (let index = 0; index < count; index += 1) await tasks.enqueue({ archiveId: await archive(`disc-${index}`), bytesTotal: 4096, requestedBy: null });
      const other = await openAgain(database);
      try {
        const claims = new Map<string, string[]>();
        let overLimit = 0;
        const work = async (repository: VerificationTaskRepository, worker: string): Promise<void> => {
          for (;;) {
            const task = await repository.claimNext(worker, { ...LEASE, maxRunning: 2 });
            if (task === null) {
              if ((await repository.countByStatus()).queued === 0) return;
              await yieldToEventLoop();
              continue;
            }
            claims.set(task.id, [...(claims.get(task.id) ?? []), worker]);
            if ((await repository.countByStatus()).running > 2) overLimit += 1;
            await yieldToEventLoop();
            await repository.finish(task.id, worker, async () => ({ status: 'cancelled' }));
          }
        };
        const repositories = [tasks, createVerificationTaskRepository(other)];
        await Promise.all(repositories.flatMap((repository, index) => [work(repository, `conn${index}-a`), work(repository, `conn${index}-b`)]));
        assert.equal(claims.size, count);
        assert.deepEqual(
          [...claims].filter(([, workers]) => workers.length > 1),
          [],
          'no task was claimed twice',
        );
        assert.equal(overLimit, 0, 'never more than maxRunning ran at once');
      } finally {
        await other.close();
      }
    });
  });

  it('completes a run together with its history entry, only while the worker holds it', async () => {
    await withTasks(async ({ tasks, archives, archive }) => {
      const id = await archive('disc');
      const task = await tasks.enqueue({ archiveId: id, bytesTotal: 4096, requestedBy: 'alice' });
      await tasks.claimNext('worker-1', LEASE);
      const progressed = await tasks.progress(task.id, 'worker-1', { bytesDone: 2048, bytesTotal: 8192, speedBps: 1000.4, etaSeconds: 6.2 });
      assert.deepEqual([progressed?.bytesDone, progressed?.bytesTotal, progressed?.speedBps, progressed?.etaSeconds], [2048, 8192, 1000, 6]);
      assert.equal(await tasks.progress(task.id, 'intruder', { bytesDone: 1, bytesTotal: 1, speedBps: null, etaSeconds: null }), null);
      assert.equal(await tasks.finish(task.id, 'intruder', verification(archives, id, true)), null, 'a worker without the lease writes nothing');
      assert.equal((await archives.listVerifications(id)).total, 0);

      const done = await tasks.finish(task.id, 'worker-1', verification(archives, id, false));
      assert.equal(done?.status, 'completed');
      assert.equal(done?.ok, false);
      assert.equal(done?.speedBps, null, 'the rate ends with the run');
      const history = await archives.listVerifications(id);
      assert.equal(history.total, 1);
      assert.equal(done?.verificationId, history.items[0]?.id);
      assert.equal((await archives.get(id))?.status, 'damaged');
      assert.equal(await tasks.finish(task.id, 'worker-1', verification(archives, id, true)), null, 'a finished task adds nothing twice');
      assert.equal((await archives.listVerifications(id)).total, 1);
      assert.equal((await tasks.enqueue({ archiveId: id, bytesTotal: 1, requestedBy: null })).status, 'queued', 'a finished task no longer blocks');
    });
  });

  it('cancels a queued task at once, asks a running one, and leaves a finished one as it is', async () => {
    await withTasks(async ({ tasks, archive }) => {
      const queued = await tasks.enqueue({ archiveId: await archive('queued'), bytesTotal: 1, requestedBy: null });
      const cancelled = await tasks.requestCancel(queued.id);
      assert.equal(cancelled.status, 'cancelled');
      assert.notEqual(cancelled.finishedAt, null);
      assert.deepEqual(await tasks.requestCancel(queued.id), cancelled, 'again: unchanged');

      const running = await tasks.enqueue({ archiveId: await archive('running'), bytesTotal: 1, requestedBy: null });
      await tasks.claimNext('worker-1', LEASE);
      const asked = await tasks.requestCancel(running.id);
      assert.deepEqual([asked.status, asked.cancelRequested], ['running', true]);
      assert.equal((await tasks.progress(running.id, 'worker-1', { bytesDone: 1, bytesTotal: 1, speedBps: null, etaSeconds: null }))?.cancelRequested, true);
      assert.equal((await tasks.release(running.id, 'worker-1'))?.status, 'cancelled', 'a run given back after a cancel ends cancelled');

      await assert.rejects(
        tasks.requestCancel('verify_0000'),
        (error: unknown) => error instanceof NotFoundError && error.code === 'verification_task_not_found',
      );
    });
  });

  it('gives a stopped run back to the queue from zero, and takes over runs whose lease ran out or whose holder died', async () => {
    await withTasks(async ({ tasks, clock, archive }) => {
      const first = await tasks.enqueue({ archiveId: await archive('first'), bytesTotal: 4096, requestedBy: null });
      await tasks.claimNext('worker-1', LEASE);
      await tasks.progress(first.id, 'worker-1', { bytesDone: 1024, bytesTotal: 4096, speedBps: 10, etaSeconds: 300 });
      const released = await tasks.release(first.id, 'worker-1');
      assert.deepEqual([released?.status, released?.bytesDone, released?.speedBps], ['queued', 0, null]);

      await tasks.claimNext('worker-1', LEASE);
      assert.equal(await tasks.heartbeat(first.id, 'worker-1', 30_000), true);
      assert.deepEqual(await tasks.recoverExpired(async () => false), [], 'a live lease stays');
      clock.advance(31 * SECOND);
      const expired = await tasks.recoverExpired(async () => false);
      assert.deepEqual(
        expired.map((task) => [task.id, task.status]),
        [[first.id, 'queued']],
      );
      assert.equal(await tasks.heartbeat(first.id, 'worker-1', 30_000), false, 'the old worker lost it');

      const again = await tasks.claimNext('worker-2', LEASE);
      assert.equal(again?.attempts, 3, 'each start counts');
      const seen: LeaseHolder[] = [];
      const dead = await tasks.recoverExpired(async (holder) => {
        seen.push(holder);
        return true;
      });
      assert.deepEqual(seen, [HOLDER], 'the holder stored with the lease is what is judged');
      assert.deepEqual(
        dead.map((task) => task.status),
        ['queued'],
      );
    });
  });

  it('lists newest first with filters, goes with its archive, and prunes finished tasks by when they ended', async () => {
    await withTasks(async ({ database, tasks, archives, clock, archive }) => {
      const old = await archive('old');
      const kept = await archive('kept');
      const oldTask = await tasks.enqueue({ archiveId: old, bytesTotal: 1, requestedBy: null });
      await tasks.requestCancel(oldTask.id);
      clock.advance(10 * 86_400 * SECOND);
      const recent = await tasks.enqueue({ archiveId: kept, bytesTotal: 1, requestedBy: null });
      await tasks.requestCancel(recent.id);
      const waiting = await tasks.enqueue({ archiveId: old, bytesTotal: 1, requestedBy: null });

      assert.deepEqual(
        (await tasks.list()).items.map((task) => task.id),
        [waiting.id, recent.id, oldTask.id],
      );
      assert.deepEqual(
        (await tasks.list({ archiveId: old, statuses: ['cancelled'] })).items.map((task) => task.id),
        [oldTask.id],
      );
      assert.deepEqual((await tasks.list({ statuses: [] })).total, 0);

      assert.equal(await tasks.pruneFinished(new Date(clock.now().getTime() - 5 * 86_400 * SECOND)), 1);
      assert.deepEqual(
        (await tasks.list()).items.map((task) => task.id),
        [waiting.id, recent.id],
        'the queued one stays whatever its age; the recent one is within the retention',
      );

      assert.equal(await archives.delete(old), true);
      assert.equal(await tasks.get(waiting.id), null, 'the archive takes its tasks along');
      const rows = await database.kysely.selectFrom('archive_verification_tasks').select('id').execute();
      assert.deepEqual(
        rows.map((row) => row.id),
        [recent.id],
      );
    });
  });
});
