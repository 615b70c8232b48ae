import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Value from 'typebox/value';
import { localActor } from '../../src/auth/principal.js';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { createVerificationTaskRepository } from '../../src/db/verification-task-repository.js';
import { VerificationTask } from '../../src/http/schemas.js';
import { createTestDataDir, openDataDirDatabase, removeTestDataDir } from '../support/database.js';
import { requireTool, run } from '../tools/exec.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type LiveClient, TEST_ADMIN, type TestServer, api, followEvents, followWebSocket, startTestServer, waitFor } from './support.js';

const MiB = 1024 * 1024;
/** Large enough that a rate-limited re-hash takes several seconds, small enough to write quickly. */
const IMAGE_BYTES = 32 * MiB;
const TASKS = '/api/v1/archives/verification-tasks';

interface Image {
  bytes: Buffer;
  md5: string;
  sha256: string;
}

function image(size: number): Image {
  const bytes = randomBytes(size);
  return { bytes, md5: createHash('md5').update(bytes).digest('hex'), sha256: createHash('sha256').update(bytes).digest('hex') };
}

async function writeSidecars(path: string, name: string, made: Image): Promise<void> {
  await writeFile(`${path}.md5`, `${made.md5}  ${name}\n`);
  await writeFile(`${path}.sha256`, `${made.sha256}  ${name}\n`);
}

/** The verification messages a live client received for one task, each checked against the schema the API documents. */
function taskMessages(client: LiveClient, taskId: string): Array<Record<string, unknown>> {
  const mine = client.messages.filter((message) => message.type === 'archive_verification_update' && message.task_id === taskId);
  for (const message of mine) {
    assert.equal(message.job_id, undefined);
    assert.ok(Value.Check(VerificationTask, message.data), `an archive_verification_update as its schema describes it: ${JSON.stringify(message.data)}`);
    assert.equal(message.archive_id, message.data.archive_id);
  }
  return mine.map((message) => message.data);
}

/**
 * Verification in the background, against a real service: the slow image is served by faultfs
 * (held or rate-limited reads) and bind-mounted into the output directory with its sidecars next
 * to it, so the service reads it like any archived image.
 */
describe('archive verification runs in the background: at once, live, cancellable, across a restart', () => {
  let work: string;
  let dataDir: string;
  let fault: FaultFs;
  let service: TestServer;
  let slowPath: string;
  let bound = false;
  let slow: string;
  let quick: string;
  let slowImage: Image;
  let umount: string;

  const task = async (id: string) => (await api(service.url, 'GET', `${TASKS}/${id}`)).body;
  const history = async (archiveId: string) => (await api(service.url, 'GET', `/api/v1/archives/${archiveId}/verifications`)).body;
  const ended = (status: string) => ['completed', 'failed', 'cancelled'].includes(status);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-verify-'));
    dataDir = await createTestDataDir('disk2iso-verify-data-');
    slowImage = image(IMAGE_BYTES);
    const backing = join(work, 'slow-backing.iso');
    await writeFile(backing, slowImage.bytes);
    fault = await mountFaultFs({ backingFile: backing });
    service = await startTestServer({ dataDir, live: { heartbeatMs: 200 } });
    await mkdir(service.outputDir, { recursive: true });

    slowPath = join(service.outputDir, 'slow.iso');
    await writeFile(slowPath, '');
    const mount = await requireTool('mount', 'mount');
    umount = await requireTool('umount', 'mount');
    await run(mount, ['--bind', fault.file, slowPath]);
    bound = true;
    await writeSidecars(slowPath, 'slow.iso', slowImage);
    const quickImage = image(MiB);
    const quickPath = join(service.outputDir, 'quick.iso');
    await writeFile(quickPath, quickImage.bytes);
    await writeSidecars(quickPath, 'quick.iso', quickImage);

    const database = await openDataDirDatabase(dataDir);
    try {
      const archives = createArchiveRepository(database);
      const source = { deviceId: null, devicePath: null, discKind: 'data' as const, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] };
      slow = (await archives.create({ filename: 'slow.iso', path: slowPath, sizeBytes: IMAGE_BYTES, checksums: { md5: slowImage.md5 }, source })).id;
      quick = (await archives.create({ filename: 'quick.iso', path: quickPath, sizeBytes: MiB, checksums: { sha256: quickImage.sha256 }, source })).id;
    } finally {
      await database.close();
    }
  });

  after(async () => {
    try {
      await fault?.setHang(false);
      await service?.close();
    } finally {
      if (bound) await run(umount, [slowPath]);
      await fault?.unmount();
      await rm(work, { recursive: true, force: true });
      await removeTestDataDir(dataDir);
    }
  });

  it('answers 202 before the image is read, streams progress, refuses a second request, and cancels', async () => {
    const { key: jobsOnlyKey } = await service.server.auth.apiKeys.create({ user: TEST_ADMIN, name: 'jobs only', scopes: ['jobs:read'] }, localActor('test'));
    const ws = await followWebSocket(service.url);
    const sse = await followEvents(service.url);
    const jobsOnly = await followEvents(service.url, { 'x-api-key': jobsOnlyKey });
    try {
      // Every read of the image is held: whatever the machine's speed, nothing is hashed until released.
      await fault.setHang(true);
      const accepted = await api(service.url, 'POST', `/api/v1/archives/${slow}/verify`);
      assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
      const { task: queued, links } = accepted.body;
      assert.ok(Value.Check(VerificationTask, queued), JSON.stringify(queued));
      assert.deepEqual(
        [queued.status, queued.archive_id, queued.bytes_done, queued.bytes_total, queued.requested_by],
        ['queued', slow, 0, IMAGE_BYTES, TEST_ADMIN],
      );
      assert.equal(accepted.headers.get('location'), `${TASKS}/${queued.id}`);
      assert.deepEqual(links, { task: `${TASKS}/${queued.id}`, events: '/api/v1/events' });

      const second = await api(service.url, 'POST', `/api/v1/archives/${slow}/verify`);
      assert.equal(second.status, 409);
      assert.equal(second.body.error.code, 'verification_running');

      await waitFor('the worker to start reading the image', async () => (await task(queued.id)).status === 'running' && (await fault.stats()).holding);
      const held = await task(queued.id);
      assert.ok(held.bytes_done < IMAGE_BYTES, 'not done while its reads are held');
      assert.equal(held.attempts, 1);
      assert.equal((await history(slow)).total, 0);

      // Released at a limited rate: progress shows, live and in the task.
      await fault.setRate(4 * MiB);
      await fault.setHang(false);
      await waitFor('live progress', () => taskMessages(ws, queued.id).some((data) => data.status === 'running' && Number(data.bytes_done) > 0));
      await waitFor('stored progress', async () => (await task(queued.id)).bytes_done > 0);
      const listed = await api(service.url, 'GET', `${TASKS}?archive_id=${slow}&status=queued,running`);
      assert.deepEqual(
        listed.body.tasks.map((entry: { id: string }) => entry.id),
        [queued.id],
      );

      const cancelling = await api(service.url, 'DELETE', `${TASKS}/${queued.id}`);
      assert.equal(cancelling.status, 200, JSON.stringify(cancelling.body));
      assert.ok(cancelling.body.cancel_requested || cancelling.body.status === 'cancelled');
      await waitFor('the task to stop', async () => ended((await task(queued.id)).status));
      const cancelled = await task(queued.id);
      assert.equal(cancelled.status, 'cancelled');
      assert.ok(cancelled.bytes_done < IMAGE_BYTES, 'stopped before the end');
      assert.equal(cancelled.verification_id, null);
      assert.equal((await history(slow)).total, 0, 'a cancelled verification adds nothing to the history');
      const archive = (await api(service.url, 'GET', `/api/v1/archives/${slow}`)).body;
      assert.deepEqual([archive.status, archive.last_verified_at], ['ok', null]);
      assert.equal((await api(service.url, 'DELETE', `${TASKS}/${queued.id}`)).body.status, 'cancelled', 'cancelling again changes nothing');

      await waitFor('the end on both live streams', () =>
        [ws, sse].every((client) => taskMessages(client, queued.id).some((data) => data.status === 'cancelled')),
      );
      // Messages coalesce per task (a state replaces one still pending), so the queued one may have been overtaken.
      for (const client of [ws, sse]) {
        const statuses: unknown[] = taskMessages(client, queued.id).map((data) => data.status);
        assert.ok(statuses.includes('running'));
        assert.equal(statuses.at(-1), 'cancelled');
      }
      assert.ok(sse.eventNames.includes('archive_verification_update'), 'the SSE event name is the message type');
      // A heartbeat written after the end went out follows it on the same stream: by then the end would have arrived.
      const beats = jobsOnly.comments.length;
      await waitFor('two more heartbeats on the jobs-only stream', () => jobsOnly.comments.length >= beats + 2);
      assert.deepEqual(
        jobsOnly.messages.filter((message) => message.type === 'archive_verification_update'),
        [],
        'a client that may not read archives gets no verification messages',
      );
    } finally {
      ws.close();
      sse.close();
      jobsOnly.close();
      await fault.setRate(0);
    }
  });

  it('queues many at once, refusing those it cannot take with their reasons; validates the request', async () => {
    await fault.setHang(true);
    const bulk = await api(service.url, 'POST', '/api/v1/archives/verify', { ids: [slow, quick, 'archive_0000'] });
    assert.equal(bulk.status, 202, JSON.stringify(bulk.body));
    assert.deepEqual(
      bulk.body.tasks.map((entry: { archive_id: string; status: string }) => [entry.archive_id, entry.status]),
      [
        [slow, 'queued'],
        [quick, 'queued'],
      ],
    );
    assert.deepEqual(
      bulk.body.refused.map((entry: { archive_id: string; error: { code: string } }) => [entry.archive_id, entry.error.code]),
      [['archive_0000', 'archive_not_found']],
    );
    await waitFor('the slow one to hold the worker', async () => (await task(bulk.body.tasks[0].id)).status === 'running');
    assert.equal((await task(bulk.body.tasks[1].id)).status, 'queued', 'one at a time');

    const all = await api(service.url, 'POST', '/api/v1/archives/verify', { all: true });
    assert.equal(all.status, 202);
    assert.deepEqual(all.body.tasks, []);
    assert.deepEqual(
      all.body.refused.map((entry: { archive_id: string; error: { code: string } }) => [entry.archive_id, entry.error.code]).sort(),
      [
        [quick, 'verification_running'],
        [slow, 'verification_running'],
      ].sort(),
    );
    for (const body of [{}, { ids: [] }, { ids: [slow], all: true }, { all: false }, { ids: ['../etc'] }, { ids: [slow], extra: 1 }]) {
      const refused = await api(service.url, 'POST', '/api/v1/archives/verify', body);
      assert.equal(refused.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(refused.body)}`);
      assert.equal(refused.body.error.code, 'validation_failed');
    }
    assert.equal((await api(service.url, 'GET', `${TASKS}/verify_0000`)).body.error.code, 'verification_task_not_found');
    assert.equal((await api(service.url, 'GET', `${TASKS}/..%2Fetc`)).status, 400);

    const queuedCancel = await api(service.url, 'DELETE', `${TASKS}/${bulk.body.tasks[1].id}`);
    assert.equal(queuedCancel.body.status, 'cancelled', 'a queued task is cancelled at once');
    assert.equal((await api(service.url, 'DELETE', `${TASKS}/${bulk.body.tasks[0].id}`)).body.cancel_requested, true);
    await fault.setHang(false);
    await waitFor('the held one to stop', async () => (await task(bulk.body.tasks[0].id)).status === 'cancelled');
  });

  it('continues a running and a queued task after a restart, and records the outcome', async () => {
    await fault.setRate(2 * MiB);
    const running = (await api(service.url, 'POST', `/api/v1/archives/${slow}/verify`)).body.task;
    const waiting = (await api(service.url, 'POST', `/api/v1/archives/${quick}/verify`)).body.task;
    await waitFor('the slow task to have made stored progress', async () => (await task(running.id)).bytes_done > 0);
    assert.equal((await task(waiting.id)).status, 'queued');

    await service.close();
    const database = await openDataDirDatabase(dataDir);
    try {
      const tasks = createVerificationTaskRepository(database);
      const stopped = await tasks.get(running.id);
      assert.deepEqual([stopped?.status, stopped?.bytesDone], ['queued', 0], 'a stopping service gives its running task back');
      assert.equal((await tasks.get(waiting.id))?.status, 'queued');
    } finally {
      await database.close();
    }

    await fault.setRate(0);
    service = await startTestServer({ dataDir });
    await waitFor('both tasks to end', async () => ended((await task(running.id)).status) && ended((await task(waiting.id)).status));
    const slowDone = await task(running.id);
    assert.deepEqual([slowDone.status, slowDone.ok, slowDone.attempts, slowDone.progress], ['completed', true, 2, 100]);
    const quickDone = await task(waiting.id);
    assert.deepEqual([quickDone.status, quickDone.ok, quickDone.attempts], ['completed', true, 1]);

    const slowHistory = await history(slow);
    assert.equal(slowHistory.total, 1);
    const entry = slowHistory.verifications[0];
    assert.deepEqual([entry.id, entry.ok, entry.requested_by], [slowDone.verification_id, true, TEST_ADMIN]);
    assert.equal(entry.results.bytes, IMAGE_BYTES);
    const md5 = entry.results.algorithms.find((result: { algorithm: string }) => result.algorithm === 'md5');
    assert.deepEqual([md5.actual, md5.catalogue, md5.ok], [slowImage.md5, slowImage.md5, true]);
    const archive = (await api(service.url, 'GET', `/api/v1/archives/${slow}`)).body;
    assert.deepEqual([archive.status, archive.last_verified_ok, archive.last_verified_at], ['ok', true, entry.finished_at]);

    const status = (await api(service.url, 'GET', '/api/v1/system/status')).body;
    assert.deepEqual(status.verification_tasks, { queued: 0, running: 0, completed: 2, failed: 0, cancelled: 3 });
    assert.notEqual(status.housekeeping.last_run, null, 'a housekeeping round runs at start');
  });

  it('refuses to delete an archive while it is being verified', async () => {
    await fault.setHang(true);
    const held = (await api(service.url, 'POST', `/api/v1/archives/${slow}/verify`)).body.task;
    await waitFor('the task to run', async () => (await task(held.id)).status === 'running');
    const refused = await api(service.url, 'DELETE', `/api/v1/archives/${slow}`);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'archive_busy');
    await api(service.url, 'DELETE', `${TASKS}/${held.id}`);
    await fault.setHang(false);
    await waitFor('the task to stop', async () => ended((await task(held.id)).status));
    assert.equal((await api(service.url, 'GET', `/api/v1/archives/${slow}`)).status, 200, 'the archive is still there');
  });
});
