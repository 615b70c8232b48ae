import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createJobRepository } from '../../src/db/job-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { currentLeaseHolder, leaseHolderGone } from '../../src/jobs/lease-holder.js';
import { type FixtureProcess, startFixture } from '../db/fixture-process.js';
import { withTempDir } from '../db/support.js';
import { databaseAddress, openTestDatabase } from '../support/database.js';

describe('job queue across processes', () => {
  it('never hands one job to two processes, nor two jobs of one drive', async () => {
    await withTempDir(async (dir) => {
      const jobCount = 240;
      const database = await openTestDatabase(dir);
      const processes: FixtureProcess[] = [];
      try {
        const queue = createSqliteQueue(database);
        for (let index = 0; index < jobCount; index += 1) {
          await queue.enqueue({ name: `job-${index}`, deviceId: `dev${index % 8}`, devicePath: `/dev/loop${index % 8}`, outputFile: `/out/${index}.iso` });
        }
        for (let index = 0; index < 4; index += 1) {
          processes.push(startFixture(new URL('./fixtures/claim-loop.js', import.meta.url), [databaseAddress(database), `process-${index}`]));
        }
        for (const fixture of processes) assert.equal(await fixture.nextLine(), 'ready');
        for (const fixture of processes) fixture.child.stdin.write('go\n');

        const claimedBy: string[][] = [];
        for (const fixture of processes) {
          const report = JSON.parse(await fixture.nextLine()) as { claimed: string[]; sharedDrive: string[] };
          const { code, stderr } = await fixture.exited;
          assert.equal(code, 0, stderr);
          assert.deepEqual(report.sharedDrive, [], 'no drive ran two jobs at once');
          claimedBy.push(report.claimed);
        }
        const all = claimedBy.flat();
        assert.equal(all.length, jobCount);
        assert.equal(new Set(all).size, jobCount, 'no job was claimed twice');
        assert.ok(claimedBy.filter((claimed) => claimed.length > 0).length > 1, 'more than one process got jobs');

        const jobs = await createJobRepository(database).list({ limit: jobCount });
        assert.equal(jobs.total, jobCount);
        assert.ok(jobs.items.every((job) => job.status === 'completed' && job.attempts === 1));
      } finally {
        for (const fixture of processes) fixture.child.kill('SIGKILL');
        await database.close();
      }
    });
  });

  it('finds the job of a killed worker once its lease has expired, and runs it again', async () => {
    await withTempDir(async (dir) => {
      const leaseMs = 60_000;
      const database = await openTestDatabase(dir);
      let fixture: FixtureProcess | undefined;
      try {
        const queued = await createSqliteQueue(database).enqueue({ name: 'disc', deviceId: 'sr0', devicePath: '/dev/sr0', outputFile: '/out/disc.iso' });
        fixture = startFixture(new URL('./fixtures/claim-and-hang.js', import.meta.url), [databaseAddress(database), 'doomed-worker', String(leaseMs)]);
        assert.equal(await fixture.nextLine(), queued.id);
        fixture.child.kill('SIGKILL');
        assert.equal((await fixture.exited).signal, 'SIGKILL');

        const beforeExpiry = createSqliteQueue(database);
        assert.deepEqual(await beforeExpiry.recoverExpired(), [], 'the dead worker still holds an unexpired lease');
        assert.equal(await beforeExpiry.claimNext('new-worker', { leaseMs }), null, 'its drive is still taken');

        const afterExpiry = createSqliteQueue(database, { now: () => new Date(Date.now() + leaseMs + 1000) });
        const recovered = await afterExpiry.recoverExpired();
        assert.deepEqual(
          recovered.map((job) => [job.id, job.status, job.attempts, job.progress, job.bytesDone]),
          [[queued.id, 'queued', 1, 25, 1024 * 1024]],
        );
        assert.equal(await afterExpiry.heartbeat(queued.id, 'doomed-worker', leaseMs), false);
        const again = await afterExpiry.claimNext('new-worker', { leaseMs });
        assert.equal(again?.id, queued.id);
        assert.equal(again?.attempts, 2);
        assert.equal(again?.phase, 'copying', 'the runner sees where the job stopped');
      } finally {
        fixture?.child.kill('SIGKILL');
        await database.close();
      }
    });
  });

  it('takes over the job of a killed worker on this host at once, but waits while the worker still exists, even stopped', async () => {
    await withTempDir(async (dir) => {
      const leaseMs = 3_600_000;
      const database = await openTestDatabase(dir);
      let fixture: FixtureProcess | undefined;
      try {
        const queue = createSqliteQueue(database);
        const queued = await queue.enqueue({ name: 'disc', deviceId: 'sr0', devicePath: '/dev/sr0', outputFile: '/out/disc.iso' });
        fixture = startFixture(new URL('./fixtures/claim-and-hang.js', import.meta.url), [databaseAddress(database), 'doomed-worker', String(leaseMs)]);
        assert.equal(await fixture.nextLine(), queued.id);
        const held = await queue.get(queued.id);
        const self = await currentLeaseHolder();
        assert.deepEqual(
          held?.leaseHolder,
          { ...self, pid: fixture.child.pid, startTicks: held?.leaseHolder?.startTicks },
          'the lease names the worker process',
        );
        assert.notEqual(held?.leaseHolder?.startTicks, undefined);

        const recover = () => queue.recoverExpired({ holderGone: leaseHolderGone });
        assert.deepEqual(await recover(), [], 'a running holder keeps its job');
        fixture.child.kill('SIGSTOP');
        assert.deepEqual(await recover(), [], 'a stopped holder (as one stuck in a read) still exists and keeps its job');
        assert.equal(await leaseHolderGone(self), false, 'this very process is alive');
        assert.equal(await leaseHolderGone({ ...self, startTicks: self.startTicks - 1 }), true, 'the same pid started at another time is another process');
        assert.equal(await leaseHolderGone({ ...self, host: 'another-host' }), false, 'a process elsewhere cannot be judged from here');
        assert.equal(await leaseHolderGone({ ...self, pidNamespace: 'pid:[1]' }), false, 'nor one in another pid namespace');
        assert.equal(await leaseHolderGone({ ...self, bootId: 'an-earlier-boot' }), true, 'a holder from before the last boot is gone');

        fixture.child.kill('SIGKILL');
        assert.equal((await fixture.exited).signal, 'SIGKILL');
        const recovered = await recover();
        assert.deepEqual(
          recovered.map((job) => [job.id, job.status, job.leaseOwner, job.progress]),
          [[queued.id, 'queued', null, 25]],
          'its lease had an hour to run',
        );
        assert.equal((await queue.claimNext('new-worker', { leaseMs }))?.id, queued.id);
      } finally {
        fixture?.child.kill('SIGKILL');
        await database.close();
      }
    });
  });
});
