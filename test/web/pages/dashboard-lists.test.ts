import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JOB_STATUSES, type JobRecord, type JobStatus, isActive, isFinished, isUnfinished } from '../../../src/jobs/model.js';
import { type WebTestServer, addTestJob, startWebTestServer } from '../support/server.js';

const WORKER = 'dashboard-lists-worker';

/** The ids of the jobs inside the section headed `headingId`: big cards, compact rows, or both. */
function cardsIn(body: string, headingId: string, kind: 'card' | 'row' | 'any' = 'any'): string[] {
  const start = body.indexOf(`aria-labelledby="${headingId}"`);
  assert.ok(start >= 0, `no section ${headingId}`);
  const section = body.slice(start, body.indexOf('</section>', start));
  const element = { card: '<article class="job-card', row: '<li class="job-row', any: '<(?:article class="job-card|li class="job-row)' }[kind];
  return [...section.matchAll(new RegExp(`${element}[^"]*" id="job-(job_[a-z0-9]+)"`, 'g'))].map((match) => match[1] ?? '');
}

describe('the dashboard lists jobs by the job model', () => {
  let server: WebTestServer;
  const byStatus = new Map<JobStatus, JobRecord>();

  before(async () => {
    server = await startWebTestServer({ listen: false });
    const enqueue = (name: string, device: string, claimed: boolean) =>
      addTestJob(server, { name, device, sizeBytes: 2048, ...(claimed ? { worker: WORKER } : {}) });

    // The service's own runner claims queued jobs too: each job runs under the test's worker from the moment it is
    // added, and the one left queued waits behind the running job on its drive, where nothing claims it.
    const running = await enqueue('running', 'loop971', true);
    byStatus.set('running', running);
    byStatus.set('queued', await enqueue('queued', 'loop971', false));
    const verifying = await enqueue('verifying', 'loop972', true);
    byStatus.set('verifying', (await server.queue.update(verifying.id, WORKER, { status: 'verifying', phase: 'verifying' })) ?? verifying);
    const ends = ['paused', 'completed', 'failed', 'cancelled'] as const;
    for (const [index, end] of ends.entries()) {
      const job = await enqueue(end, `loop97${3 + index}`, true);
      byStatus.set(end, await server.queue.finish(job.id, WORKER, end));
    }
    assert.deepEqual([...byStatus.keys()].sort(), [...JOB_STATUSES].sort(), 'one job in every status');
    for (const [status, job] of byStatus) assert.equal((await server.jobs.get(job.id)).status, status);
  });

  after(async () => {
    await server.close();
  });

  const idsWhere = (predicate: (status: JobStatus) => boolean): string[] =>
    [...byStatus].flatMap(([status, job]) => (predicate(status) ? [job.id] : [])).sort();

  it('shows every unfinished job under active jobs (verifying included) and no other', async () => {
    const body = (await server.send('GET', '/')).body;
    assert.deepEqual(cardsIn(body, 'active-heading').sort(), idsWhere(isUnfinished));
    assert.ok(cardsIn(body, 'active-heading').includes(byStatus.get('verifying')?.id ?? ''), 'the verifying job is on the active tab');
    assert.deepEqual(cardsIn(body, 'recent-heading').sort(), idsWhere(isFinished));
  });

  it('gives only the running and verifying jobs a big card; queued, paused and finished ones are compact rows', async () => {
    const body = (await server.send('GET', '/')).body;
    assert.deepEqual(cardsIn(body, 'active-heading', 'card').sort(), idsWhere(isActive));
    assert.deepEqual(
      cardsIn(body, 'active-heading', 'row').sort(),
      idsWhere((status) => isUnfinished(status) && !isActive(status)),
    );
    assert.deepEqual(cardsIn(body, 'recent-heading', 'row').sort(), idsWhere(isFinished));
    // The fragment the live stream fetches is the same content.
    const fragment = (await server.send('GET', '/fragments/dashboard')).body;
    assert.deepEqual(cardsIn(fragment, 'active-heading', 'card').sort(), idsWhere(isActive));
    assert.deepEqual(
      cardsIn(fragment, 'active-heading', 'row').sort(),
      idsWhere((status) => isUnfinished(status) && !isActive(status)),
    );
  });

  it('shows every finished job, and only those, on the finished tab', async () => {
    const body = (await server.send('GET', '/?tab=finished')).body;
    assert.deepEqual(cardsIn(body, 'finished-heading').sort(), idsWhere(isFinished));
  });
});
