import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KyselyPlugin } from 'kysely';
import { type ArchiveRepository, createArchiveRepository } from '../../src/db/archive-repository.js';
import { isForeignKeyViolation } from '../../src/db/dialect.js';
import { type JobListFilter, type JobRepository, createJobRepository } from '../../src/db/job-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { ConflictError, NotFoundError, ValidationError } from '../../src/errors.js';
import type { JobOptions, JobPriority } from '../../src/jobs/model.js';
import type { EnqueueInput, JobQueue } from '../../src/jobs/queue.js';
import { openAgain } from '../support/database.js';
import { manualClock, withDatabase } from './support.js';

function input(name: string, deviceId = 'sr0', createdBy: string | null = null): EnqueueInput {
  return { name, deviceId, devicePath: `/dev/${deviceId}`, outputFile: `/out/${name}.iso`, createdBy };
}

/** Every page of `filter`, with its positions checked against the queue's own full ranking. */
async function assertPagePositions(jobs: JobRepository, queue: JobQueue, filter: JobListFilter): Promise<number> {
  const expected = await queue.positions();
  const page = await jobs.listWithQueuePositions(filter);
  assert.deepEqual(page.items, (await jobs.list(filter)).items, `${JSON.stringify(filter)}: the same page as list()`);
  assert.equal(page.total, (await jobs.list(filter)).total);
  const shown = page.items.flatMap((job) => (expected.has(job.id) ? [[job.id, expected.get(job.id)]] : []));
  assert.deepEqual([...page.positions], shown, `${JSON.stringify(filter)}: a position for each queued job on the page, none for others`);
  return shown.length;
}

/** An archive entry for a job's image, as the runner records a finished disc. */
function catalogueDisc(archives: ArchiveRepository, jobId: string) {
  return archives.create({
    jobId,
    filename: 'disc.iso',
    path: '/out/disc.iso',
    sizeBytes: 2048,
    checksums: {},
    source: { deviceId: 'sr0', devicePath: '/dev/sr0', discKind: 'data', volumeLabel: null, volumeId: null, mediaType: 'cd', fileSystems: [] },
  });
}

describe('job repository', () => {
  it('returns a job with its JSON options, or null for an unknown id', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const jobs = createJobRepository(database);
      const options: JobOptions = { read_attempts: 7, verify: false, checksums: ['sha1'], disc: { label: 'Ümlaut "quoted" \\ back', kind: 'data' } };
      const created = await queue.enqueue({ ...input('disc'), options, sizeBytes: 4_700_000_000 });
      const loaded = await jobs.get(created.id);
      assert.deepEqual(loaded, created);
      assert.deepEqual(loaded?.options, options);
      assert.equal(loaded?.sizeBytes, 4_700_000_000);
      assert.equal(await jobs.get('job_nothing'), null);
    });
  });

  it('lists with filters, sorting and a total that ignores paging', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      const jobs = createJobRepository(database, { now: clock.now });
      const names = ['charlie', 'alpha', 'echo', 'bravo', 'delta'];
      const ids: Record<string, string> = {};
      for (const [index, name] of names.entries()) {
        clock.advance(1000);
        ids[name] = (await queue.enqueue(input(name, index % 2 === 0 ? 'sr0' : 'sr1', index < 2 ? 'user_a' : 'user_b'))).id;
      }
      clock.advance(1000);
      const running = await queue.claimNext('w', { leaseMs: 60_000 });
      assert.equal(running?.name, 'charlie');
      clock.advance(1000);
      await queue.requestStop(ids.delta ?? '', 'cancel');

      const newestFirst = await jobs.list();
      assert.deepEqual(
        newestFirst.items.map((job) => job.name),
        ['delta', 'bravo', 'echo', 'alpha', 'charlie'],
      );
      assert.equal(newestFirst.total, 5);

      const oldestFirst = await jobs.list({ order: 'asc' });
      assert.deepEqual(
        oldestFirst.items.map((job) => job.name),
        names,
      );

      const byName = await jobs.list({ sort: 'name', order: 'asc' });
      assert.deepEqual(
        byName.items.map((job) => job.name),
        ['alpha', 'bravo', 'charlie', 'delta', 'echo'],
      );

      const byUpdate = await jobs.list({ sort: 'updated', order: 'desc', limit: 2 });
      assert.deepEqual(
        byUpdate.items.map((job) => job.name),
        ['delta', 'charlie'],
      );
      assert.equal(byUpdate.total, 5);

      const secondPage = await jobs.list({ sort: 'name', order: 'asc', limit: 2, offset: 2 });
      assert.deepEqual(
        secondPage.items.map((job) => job.name),
        ['charlie', 'delta'],
      );
      assert.equal(secondPage.total, 5);
      const pastTheEnd = await jobs.list({ limit: 2, offset: 10 });
      assert.deepEqual(pastTheEnd, { items: [], total: 5 });

      const queued = await jobs.list({ statuses: ['queued'], sort: 'name', order: 'asc' });
      assert.deepEqual(
        queued.items.map((job) => job.name),
        ['alpha', 'bravo', 'echo'],
      );
      assert.equal(queued.total, 3);
      const activeOrCancelled = await jobs.list({ statuses: ['running', 'cancelled'], sort: 'name', order: 'asc' });
      assert.deepEqual(
        activeOrCancelled.items.map((job) => job.name),
        ['charlie', 'delta'],
      );
      assert.deepEqual(await jobs.list({ statuses: [] }), { items: [], total: 0 });

      const onSr1 = await jobs.list({ deviceId: 'sr1', sort: 'name', order: 'asc' });
      assert.deepEqual(
        onSr1.items.map((job) => job.name),
        ['alpha', 'bravo'],
      );
      const byUser = await jobs.list({ createdBy: 'user_a', sort: 'name', order: 'asc' });
      assert.deepEqual(
        byUser.items.map((job) => job.name),
        ['alpha', 'charlie'],
      );
      const combined = await jobs.list({ createdBy: 'user_b', deviceId: 'sr0', statuses: ['queued'] });
      assert.deepEqual(
        combined.items.map((job) => job.name),
        ['echo'],
      );
    });
  });

  it('rejects a negative or fractional limit or offset', async () => {
    await withDatabase(async (database) => {
      const jobs = createJobRepository(database);
      await assert.rejects(jobs.list({ limit: -1 }), ValidationError);
      await assert.rejects(jobs.list({ offset: 1.5 }), ValidationError);
    });
  });

  it('counts jobs by status, with zero for the absent ones', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const jobs = createJobRepository(database);
      await queue.enqueue(input('a', 'sr0'));
      await queue.enqueue(input('b', 'sr0'));
      await queue.enqueue(input('c', 'sr1'));
      await queue.claimNext('w', { leaseMs: 60_000 });
      await queue.claimNext('w', { leaseMs: 60_000 });
      assert.deepEqual(await jobs.countByStatus(), {
        queued: 1,
        running: 2,
        paused: 0,
        verifying: 0,
        completed: 0,
        failed: 0,
        cancelled: 0,
      });
    });
  });

  it('deletes a job that is not running, with its log lines, and unlinks its archive', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const jobs = createJobRepository(database);
      const archives = createArchiveRepository(database);
      const job = await queue.enqueue(input('disc'));
      await jobs.appendLog(job.id, 'info', 'started');
      const claimed = await queue.claimNext('w', { leaseMs: 60_000 });
      assert.ok(claimed);

      await assert.rejects(jobs.delete(job.id), (error: unknown) => error instanceof ConflictError && error.code === 'job_active');
      const archive = await catalogueDisc(archives, job.id);
      const finished = await queue.finish(job.id, 'w', 'completed', { archiveId: archive.id, progress: 100 });
      assert.equal(finished.archiveId, archive.id);

      await jobs.delete(job.id);
      assert.equal(await jobs.get(job.id), null);
      assert.deepEqual(await jobs.listLogs(job.id), { items: [], total: 0 });
      assert.equal((await archives.get(archive.id))?.jobId, null, 'the archive stays, without its job');
      await assert.rejects(jobs.delete(job.id), NotFoundError);
    });
  });

  it('appends job log lines and reads them oldest first, after an id, paged, and prunes old ones', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      const jobs = createJobRepository(database, { now: clock.now });
      const job = await queue.enqueue(input('disc'));
      const other = await queue.enqueue(input('other', 'sr1'));
      const first = await jobs.appendLog(job.id, 'info', 'copy pass started');
      clock.advance(60_000);
      const second = await jobs.appendLog(job.id, 'warning', 'read error at 4096');
      await jobs.appendLog(other.id, 'error', 'other job');
      clock.advance(60_000);
      const third = await jobs.appendLog(job.id, 'debug', 'retry pass 1');

      assert.deepEqual(first, { id: first.id, jobId: job.id, at: '2026-01-15T10:00:00.000Z', level: 'info', message: 'copy pass started' });
      const all = await jobs.listLogs(job.id);
      assert.deepEqual(
        all.items.map((line) => line.message),
        ['copy pass started', 'read error at 4096', 'retry pass 1'],
      );
      assert.equal(all.total, 3);
      const after = await jobs.listLogs(job.id, { afterId: first.id });
      assert.deepEqual(
        after.items.map((line) => line.id),
        [second.id, third.id],
      );
      const paged = await jobs.listLogs(job.id, { limit: 1, offset: 1 });
      assert.deepEqual(
        paged.items.map((line) => line.id),
        [second.id],
      );
      assert.equal(paged.total, 3);
      await assert.rejects(jobs.appendLog('job_missing', 'info', 'x'), isForeignKeyViolation);

      assert.equal(await jobs.pruneLogs(new Date('2026-01-15T10:01:00.000Z')), 1);
      assert.deepEqual(
        (await jobs.listLogs(job.id)).items.map((line) => line.id),
        [second.id, third.id],
      );
    });
  });

  it('gives the queued jobs on a page their places in the whole queue, by priority then queue order', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const queue = createSqliteQueue(database, { now: clock.now });
      const jobs = createJobRepository(database, { now: clock.now });
      const priorities: JobPriority[] = ['normal', 'low', 'high', 'normal', 'high', 'low', 'normal'];
      const ids: string[] = [];
      for (let index = 0; index < 35; index += 1) {
        clock.advance(1000);
        const job = await queue.enqueue({
          ...input(`disc-${String(index).padStart(2, '0')}`, `sr${index % 5}`),
          priority: priorities[index % priorities.length] ?? 'normal',
        });
        ids.push(job.id);
      }
      // Not queued: running, finished, paused; their places go to the jobs behind them.
      for (let index = 0; index < 3; index += 1) await queue.claimNext('w', { leaseMs: 60_000 });
      const claimed = (await jobs.list({ statuses: ['running'] })).items;
      assert.ok(claimed[0]);
      await queue.finish(claimed[0].id, 'w', 'completed');
      await queue.requestStop(ids[20] ?? '', 'pause');
      await queue.requestStop(ids[30] ?? '', 'cancel');
      // A queued job moved by a priority change and one queued again (a new place at the back).
      await queue.setPriority(ids[33] ?? '', 'high');
      await queue.requeue(ids[20] ?? '');

      const newestTwo = await jobs.listWithQueuePositions({ limit: 2 });
      assert.deepEqual(
        newestTwo.items.map((job) => job.id),
        [ids[34], ids[33]],
      );
      assert.ok((newestTwo.positions.get(ids[34] ?? '') ?? 0) > 2, 'the newest job waits behind jobs that are not on the page');
      assert.equal(newestTwo.positions.size, 2);

      const filters: JobListFilter[] = [
        {},
        { limit: 1 },
        { limit: 3, offset: 10 },
        { order: 'asc', limit: 7, offset: 4 },
        { sort: 'name', order: 'asc', limit: 5, offset: 20 },
        { sort: 'updated', limit: 4 },
        { statuses: ['queued'], limit: 6, offset: 12 },
        { statuses: ['queued', 'paused', 'completed'], order: 'asc' },
        { statuses: ['running', 'completed', 'cancelled'] },
        { deviceId: 'sr2', limit: 3, offset: 1 },
        { limit: 5, offset: 100 },
      ];
      let queuedShown = 0;
      for (const filter of filters) queuedShown += await assertPagePositions(jobs, queue, filter);
      assert.ok(queuedShown > 30, `the filters show queued jobs (${queuedShown})`);
      for (let offset = 0; offset < 40; offset += 3) await assertPagePositions(jobs, queue, { limit: 3, offset });

      const expected = await queue.positions();
      for (const id of ids) assert.equal(await jobs.queuePosition(id), expected.get(id) ?? null, `queue position of ${id}`);
      assert.equal(await jobs.queuePosition('job_nothing'), null);
    });
  });

  it('counts queue positions per node: each node’s jobs wait in their own line, by priority then age', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database, { nodeId: 'tower-a' });
      const jobs = createJobRepository(database);
      const add = async (name: string, nodeId: string, priority: JobPriority) =>
        (await queue.enqueue({ ...input(name, `${nodeId}.sr0`), nodeId, priority })).id;
      const a1 = await add('a1', 'tower-a', 'normal');
      const b1 = await add('b1', 'tower-b', 'normal');
      const a2 = await add('a2', 'tower-a', 'normal');
      const b2 = await add('b2', 'tower-b', 'high');
      const a3 = await add('a3', 'tower-a', 'high');
      const expected = new Map([
        [a3, 1],
        [a1, 2],
        [a2, 3],
        [b2, 1],
        [b1, 2],
      ]);
      assert.deepEqual(new Map([...(await queue.positions())].sort()), new Map([...expected].sort()));
      for (const [id, place] of expected) assert.equal(await jobs.queuePosition(id), place, `queue position of ${id}`);
      for (const filter of [{}, { limit: 2 }, { limit: 2, offset: 2 }, { sort: 'name', order: 'asc' }] as JobListFilter[]) {
        assert.equal(await assertPagePositions(jobs, queue, filter), (await jobs.list(filter)).items.length);
      }
    });
  });

  it('answers version reads asked together with one read of the database, which sees every change made before them', async () => {
    await withDatabase(async (database) => {
      let reads = 0;
      const counting: KyselyPlugin = {
        transformQuery({ node }) {
          if (JSON.stringify(node).includes('table_versions')) reads += 1;
          return node;
        },
        transformResult: async ({ result }) => result,
      };
      const queue = createSqliteQueue(database);
      const jobs = createJobRepository({ ...database, kysely: database.kysely.withPlugin(counting) });
      const before = await jobs.version();
      reads = 0;
      // A read under way while a change commits, then twenty requests that came after the change.
      const underWay = jobs.version();
      await queue.enqueue(input('disc'));
      const after = await Promise.all(Array.from({ length: 20 }, () => jobs.version()));
      await underWay;
      assert.ok(
        after.every((version) => version > before),
        `every read asked after the change sees it: ${before} before, ${after.join(' ')} after`,
      );
      const burst = await Promise.all(Array.from({ length: 20 }, () => jobs.version()));
      assert.deepEqual(new Set(burst), new Set([after[0]]), 'nothing changed in between');
      // One read each for the first caller of a group, and one for the callers who came while it ran.
      assert.ok(reads <= 5, `41 version reads in three groups took ${reads} reads of the database`);
    });
  });

  it('raises the jobs version on every change to a job, through any connection, and on nothing else', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const jobs = createJobRepository(database);
      const archives = createArchiveRepository(database);
      const changes = async (what: string, change: () => Promise<unknown>): Promise<void> => {
        const before = await jobs.version();
        await change();
        assert.ok((await jobs.version()) > before, `${what} raises the version`);
      };
      const keeps = async (what: string, change: () => Promise<unknown>): Promise<void> => {
        const before = await jobs.version();
        await change();
        assert.equal(await jobs.version(), before, `${what} leaves the version alone`);
      };

      let job = await queue.enqueue(input('disc'));
      await keeps('reading', async () => {
        await jobs.list();
        await jobs.listWithQueuePositions();
        await jobs.get(job.id);
        await queue.positions();
      });
      await keeps('a job log line', () => jobs.appendLog(job.id, 'info', 'queued'));
      await changes('enqueueing', () => queue.enqueue(input('other', 'sr1')));
      await changes('a priority change', () => queue.setPriority(job.id, 'high'));
      await changes('a claim', () => queue.claimNext('w', { leaseMs: 60_000 }));
      const archive = await catalogueDisc(archives, job.id);
      await changes('finishing', async () => {
        job = await queue.finish(job.id, 'w', 'completed', { archiveId: archive.id });
      });
      await changes("deleting the job's archive, which unlinks it from the job", () => archives.delete(archive.id));
      assert.equal((await jobs.get(job.id))?.archiveId, null);
      await changes('deleting a job', () => jobs.delete(job.id));

      const other = await openAgain(database);
      try {
        const queued = (await jobs.list({ statuses: ['queued'] })).items[0];
        assert.ok(queued);
        await changes('a change committed through another connection', () => createSqliteQueue(other).setPriority(queued.id, 'low'));
      } finally {
        await other.close();
      }
    });
  });
});
