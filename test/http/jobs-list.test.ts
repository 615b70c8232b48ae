import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import type { JobPriority } from '../../src/jobs/model.js';
import type { JobQueue } from '../../src/jobs/queue.js';
import { createTestDataDir, openDataDirDatabase, removeTestDataDir } from '../support/database.js';
import { type TestServer, api, startTestServer } from './support.js';

interface ListedJob {
  id: string;
  status: string;
  queue_position: number | null;
}

interface JobList {
  jobs: ListedJob[];
  total: number;
}

const QUEUED = 13;
const PRIORITIES: JobPriority[] = ['normal', 'high', 'low', 'normal', 'low'];

/**
 * The queue is seeded in the data dir before the service starts: one job runs under another
 * worker's long lease and jobs.max_running is 1, so the service's runner starts none of the
 * queued jobs and the queue stays as the test arranges it. The test keeps its own connection to
 * the database, as another process (the CLI) would.
 */
describe('GET /api/v1/jobs: queue positions on every page', () => {
  let dataDir: string;
  let database: Database;
  let queue: JobQueue;
  let service: TestServer;
  const queuedIds: string[] = [];

  before(async () => {
    dataDir = await createTestDataDir('disk2iso-jobs-list-');
    database = await openDataDirDatabase(dataDir);
    queue = createSqliteQueue(database);
    const job = (name: string, deviceId: string, priority: JobPriority = 'normal') => ({
      name,
      deviceId,
      devicePath: `/dev/${deviceId}`,
      outputFile: join(dataDir, 'output', `${name}.iso`),
      priority,
    });
    const holder = await queue.enqueue(job('holder', 'sr9'));
    assert.equal((await queue.claimNext('another-host:1:worker', { leaseMs: 3_600_000 }))?.id, holder.id);
    for (let index = 0; index < QUEUED; index += 1) {
      queuedIds.push((await queue.enqueue(job(`queued-${String(index).padStart(2, '0')}`, `sr${index % 4}`, PRIORITIES[index % PRIORITIES.length]))).id);
    }
    await queue.requestStop((await queue.enqueue(job('paused', 'sr0'))).id, 'pause');
    await queue.requestStop((await queue.enqueue(job('cancelled', 'sr1'))).id, 'cancel');
    service = await startTestServer({ dataDir, env: { DISK2ISO_JOBS_MAX_RUNNING: '1' } });
  });

  after(async () => {
    try {
      await service?.close();
      await database?.close();
    } finally {
      await removeTestDataDir(dataDir);
    }
  });

  const list = async (query: string): Promise<JobList> => {
    const response = await api<JobList>(service.url, 'GET', `/api/v1/jobs?${query}`);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body;
  };

  /** Pages through the list two jobs at a time and checks every job's position against the queue's own ranking. */
  const assertEveryPage = async (query: string): Promise<void> => {
    const expected = await queue.positions();
    const seen: string[] = [];
    for (let offset = 0; ; offset += 2) {
      const page = await list(`${query}&limit=2&offset=${offset}`);
      if (page.jobs.length === 0) break;
      for (const job of page.jobs) {
        assert.equal(job.queue_position, expected.get(job.id) ?? null, `${query} offset ${offset}: ${job.id} (${job.status})`);
        seen.push(job.id);
      }
    }
    assert.equal(new Set(seen).size, seen.length, `${query}: no job on two pages`);
  };

  it('gives a queued job on a small page its place in the whole queue', async () => {
    const newest = await list('limit=2');
    assert.equal(newest.total, QUEUED + 3);
    const expected = await queue.positions();
    const queuedOnPage = newest.jobs.filter((job) => job.status === 'queued');
    assert.equal(queuedOnPage.length, 0, 'the newest two are paused and cancelled');
    const firstQueued = await list('limit=2&offset=2');
    const places = firstQueued.jobs.map((job) => job.queue_position);
    assert.deepEqual(
      places,
      firstQueued.jobs.map((job) => expected.get(job.id) ?? null),
    );
    assert.ok(
      places.every((place) => place !== null && place > 2),
      `places from beyond the page: ${JSON.stringify(places)}`,
    );

    await assertEveryPage('sort=created');
    await assertEveryPage('sort=name&order=asc');
    await assertEveryPage('status=queued&sort=updated&order=asc');
    await assertEveryPage('status=running,queued,paused');
  });

  it('shows new positions as soon as the queue changes, through the API or another connection', async () => {
    const initial = await list('status=queued&limit=50');
    // Asked again and again (the service keeps the answer from the second time on).
    for (let again = 0; again < 3; again += 1) assert.deepEqual(await list('status=queued&limit=50'), initial, 'an unchanged queue lists the same');

    const last = queuedIds[QUEUED - 1] ?? '';
    const raised = await api(service.url, 'PATCH', `/api/v1/jobs/${last}`, { priority: 'high' });
    assert.equal(raised.status, 200, JSON.stringify(raised.body));
    const expectedAfterApi = await queue.positions();
    assert.equal(raised.body.queue_position, expectedAfterApi.get(last));
    const afterApi = await list('status=queued&limit=50');
    assert.notDeepEqual(afterApi, initial);
    for (const job of afterApi.jobs) assert.equal(job.queue_position, expectedAfterApi.get(job.id), `after PATCH: ${job.id}`);

    // Written and committed by the test's own connection: the service learns of it only from the database.
    const first = queuedIds[0] ?? '';
    await queue.setPriority(first, 'low');
    await queue.requestStop(queuedIds[1] ?? '', 'pause');
    const expectedAfterOther = await queue.positions();
    const afterOther = await list('status=queued&limit=50');
    assert.equal(afterOther.total, QUEUED - 1);
    for (const job of afterOther.jobs) assert.equal(job.queue_position, expectedAfterOther.get(job.id), `after another connection's change: ${job.id}`);
    assert.equal((await api(service.url, 'GET', `/api/v1/jobs/${first}`)).body.queue_position, expectedAfterOther.get(first));
    await assertEveryPage('sort=created');
  });
});
