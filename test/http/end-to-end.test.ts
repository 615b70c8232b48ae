import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testDriveId } from '../support/database.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import {
  type LiveClient,
  type ReceivedLiveMessage,
  type TestServer,
  api,
  authHeadersFor,
  followEvents,
  followWebSocket,
  startTestServer,
  verifyArchive,
  waitFor,
} from './support.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function download(url: string, path: string, headers: Record<string, string> = {}, method = 'GET') {
  const response = await fetch(`${url}${path}`, { method, headers: { ...authHeadersFor(url), ...headers } });
  return { status: response.status, headers: response.headers, bytes: new Uint8Array(await response.arrayBuffer()) };
}

function finishedFor(client: LiveClient, jobId: string): ReceivedLiveMessage | undefined {
  return client.messages.find((message) => message.type === 'job_finished' && message.job_id === jobId);
}

describe('REST API end to end: a loop device imaged, watched live, downloaded, verified, edited, deleted', () => {
  let work: string;
  let iso: MadeIso;
  let source: Buffer;
  let loop: LoopDevice;
  let service: TestServer;
  let jobId: string;
  let archiveId: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-e2e-'));
    iso = await makeIso({ dir: work, label: 'E2E_DISC', dataMiB: 12, files: 5, seed: 11 });
    source = await readFile(iso.path);
    loop = await attachLoop(iso.path, { sectorSize: 2048 });
    service = await startTestServer({ devices: [loop.path] });
  });

  after(async () => {
    try {
      await service?.close();
    } finally {
      await loop?.detach();
      await rm(work, { recursive: true, force: true });
    }
  });

  it('lists the drive, creates a job and follows it over WebSocket and SSE until it completes', async () => {
    const devices = await api(service.url, 'GET', '/api/v1/devices');
    assert.equal(devices.status, 200);
    const drive = devices.body.devices.find((device: { id: string }) => device.id === testDriveId(loop.name));
    assert.ok(drive, `the loop device is listed: ${JSON.stringify(devices.body)}`);
    assert.equal(drive.path, loop.path);
    assert.equal(drive.has_media, true);
    assert.equal(drive.media_size_bytes, iso.sizeBytes);
    assert.equal(drive.label, 'E2E_DISC');
    assert.equal(drive.status, 'idle');

    const ws = await followWebSocket(service.url);
    const sse = await followEvents(service.url);
    try {
      const created = await api(service.url, 'POST', '/api/v1/jobs', {
        device: testDriveId(loop.name),
        options: { checksums: ['md5', 'sha1', 'sha256'], verify: true },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      jobId = created.body.id;
      assert.match(jobId, /^job_[0-9a-f]+$/);
      assert.equal(created.headers.get('location'), `/api/v1/jobs/${jobId}`);
      assert.equal(created.body.name, 'E2E_DISC');
      assert.equal(created.body.device, loop.path);
      assert.deepEqual(created.body.options.checksums, ['md5', 'sha1', 'sha256']);

      await waitFor('both live clients to see the job finish', () => finishedFor(ws, jobId) !== undefined && finishedFor(sse, jobId) !== undefined);
      for (const [name, client] of [
        ['WebSocket', ws],
        ['SSE', sse],
      ] as const) {
        const mine = client.messages.filter((message) => message.job_id === jobId);
        const types = mine.map((message) => message.type);
        assert.equal(types[0], 'job_created', `${name}: first message`);
        assert.ok(types.includes('job_update'), `${name}: progress updates`);
        assert.ok(types.includes('job_log'), `${name}: log lines`);
        assert.equal(finishedFor(client, jobId)?.data.status, 'completed', `${name}: finished as completed`);
        const copying = mine.filter((message) => message.type === 'job_update' && message.data.phase === 'copying');
        for (const update of copying) {
          assert.equal(typeof update.data.progress, 'number');
          assert.ok((update.data.bytes_done as number) <= iso.sizeBytes);
        }
        for (const message of mine) assert.deepEqual(Object.keys(message).sort(), ['data', 'job_id', 'type'], `${name}: envelope`);
      }
      assert.deepEqual(
        sse.eventNames,
        sse.messages.map((message) => message.type),
        'SSE event names are the message types',
      );
    } finally {
      ws.close();
      sse.close();
    }

    const job = await api(service.url, 'GET', `/api/v1/jobs/${jobId}`);
    assert.equal(job.status, 200);
    assert.equal(job.body.status, 'completed');
    assert.equal(job.body.progress, 100);
    assert.equal(job.body.bytes_done, iso.sizeBytes);
    assert.equal(job.body.queue_position, null);
    assert.match(job.body.archive_id, /^archive_/);
    archiveId = job.body.archive_id;

    const logs = await api(service.url, 'GET', `/api/v1/jobs/${jobId}/logs`);
    assert.equal(logs.status, 200);
    const messages = logs.body.logs.map((line: { message: string }) => line.message);
    assert.ok(messages.includes('started'), messages.join(' / '));
    assert.ok(
      messages.some((message: string) => message.startsWith('completed')),
      messages.join(' / '),
    );
    const lastId = logs.body.logs.at(-1).id;
    const following = await api(service.url, 'GET', `/api/v1/jobs/${jobId}/logs?after_id=${lastId}`);
    assert.deepEqual(following.body.logs, [], 'nothing after the last line');
    const middle = await api(service.url, 'GET', `/api/v1/jobs/${jobId}/logs?after_id=${logs.body.logs[0].id}`);
    assert.equal(middle.body.logs.length, logs.body.logs.length - 1);

    const appLog = await api(service.url, 'GET', `/api/v1/logs?job_id=${jobId}`);
    assert.ok(
      appLog.body.logs.some((line: { message: string }) => line.message === `job ${jobId} is completed`),
      'the application log mirrors the job',
    );
  });

  it('downloads the image whole, by ranges (suffix, open, clamped), with HEAD, ETag and 416', async () => {
    const path = `/api/v1/archives/${archiveId}/download`;
    const whole = await download(service.url, path);
    assert.equal(whole.status, 200);
    assert.equal(sha256(whole.bytes), iso.sha256, 'the download is the disc');
    assert.equal(whole.headers.get('content-length'), String(iso.sizeBytes));
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    assert.equal(whole.headers.get('content-type'), 'application/octet-stream');
    assert.equal(whole.headers.get('content-disposition'), `attachment; filename="E2E_DISC.iso"; filename*=UTF-8''E2E_DISC.iso`);
    const etag = whole.headers.get('etag');
    assert.match(etag ?? '', /^"[0-9a-f]+"$/);
    assert.ok(!Number.isNaN(Date.parse(whole.headers.get('last-modified') ?? '')));

    // Five-MiB ranges put back together give the whole image again.
    const chunk = 5 * 1024 * 1024;
    const parts: Uint8Array[] = [];
    for (let start = 0; start < iso.sizeBytes; start += chunk) {
      const end = Math.min(start + chunk, iso.sizeBytes) - 1;
      const part = await download(service.url, path, { range: `bytes=${start}-${end}` });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-range'), `bytes ${start}-${end}/${iso.sizeBytes}`);
      assert.equal(part.headers.get('content-length'), String(end - start + 1));
      parts.push(part.bytes);
    }
    assert.equal(sha256(Buffer.concat(parts)), iso.sha256, 'ranges reassemble the image');

    const suffix = await download(service.url, path, { range: 'bytes=-4096' });
    assert.equal(suffix.status, 206);
    assert.equal(suffix.headers.get('content-range'), `bytes ${iso.sizeBytes - 4096}-${iso.sizeBytes - 1}/${iso.sizeBytes}`);
    assert.ok(Buffer.from(suffix.bytes).equals(source.subarray(iso.sizeBytes - 4096)));

    const open = await download(service.url, path, { range: `bytes=${iso.sizeBytes - 5000}-` });
    assert.equal(open.status, 206);
    assert.ok(Buffer.from(open.bytes).equals(source.subarray(iso.sizeBytes - 5000)));

    const clamped = await download(service.url, path, { range: `bytes=${iso.sizeBytes - 10}-${iso.sizeBytes + 1000}` });
    assert.equal(clamped.status, 206);
    assert.equal(clamped.headers.get('content-range'), `bytes ${iso.sizeBytes - 10}-${iso.sizeBytes - 1}/${iso.sizeBytes}`);
    assert.ok(Buffer.from(clamped.bytes).equals(source.subarray(iso.sizeBytes - 10)));

    const odd = await download(service.url, path, { range: 'bytes=12345-12345' });
    assert.deepEqual([...odd.bytes], [source[12345]], 'a one-byte range');

    for (const range of [`bytes=${iso.sizeBytes}-`, `bytes=${iso.sizeBytes + 10}-${iso.sizeBytes + 20}`, 'bytes=-0']) {
      const refused = await api(service.url, 'GET', path, undefined, { range });
      assert.equal(refused.status, 416, range);
      assert.equal(refused.headers.get('content-range'), `bytes */${iso.sizeBytes}`);
      assert.equal(refused.body.error.code, 'range_not_satisfiable');
    }

    const several = await download(service.url, path, { range: 'bytes=0-1,10-20' });
    assert.equal(several.status, 200, 'several ranges are not supported: the whole image is sent');
    assert.equal(several.bytes.length, iso.sizeBytes);

    const head = await download(service.url, path, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.bytes.length, 0);
    assert.equal(head.headers.get('content-length'), String(iso.sizeBytes));
    assert.equal(head.headers.get('etag'), etag);

    const headRange = await download(service.url, path, { range: 'bytes=0-99' }, 'HEAD');
    assert.equal(headRange.status, 206);
    assert.equal(headRange.headers.get('content-length'), '100');

    const cached = await download(service.url, path, { 'if-none-match': etag ?? '' });
    assert.equal(cached.status, 304);
    assert.equal(cached.bytes.length, 0);
    const otherTag = await download(service.url, path, { 'if-none-match': '"something-else"', range: 'bytes=0-9' });
    assert.equal(otherTag.status, 206);
    const staleRange = await download(service.url, path, { 'if-range': '"an-older-version"', range: 'bytes=0-9' });
    assert.equal(staleRange.status, 200, 'If-Range with another ETag gets the whole current image');
    assert.equal(staleRange.bytes.length, iso.sizeBytes);
    const sinceModified = await download(service.url, path, { 'if-modified-since': new Date(Date.now() + 60_000).toUTCString() });
    assert.equal(sinceModified.status, 304);
  });

  it('verifies on request, records the history, and notices a damaged image', async () => {
    const before = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/verifications`);
    assert.equal(before.status, 200);
    assert.equal(before.body.total, 1, 'the verification made after imaging');

    const task = await verifyArchive(service.url, archiveId);
    assert.equal(task.status, 'completed', JSON.stringify(task));
    assert.equal(task.ok, true);
    assert.equal(task.progress, 100);
    const verified = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/verifications?limit=1`);
    const entry = verified.body.verifications[0];
    assert.equal(entry.id, task.verification_id, 'the task names the history entry it added');
    assert.equal(entry.ok, true);
    assert.equal(entry.archive_id, archiveId);
    const algorithms = (entry.results.algorithms as Array<{ algorithm: string; ok: boolean; actual: string }>).map((result) => result.algorithm).sort();
    assert.deepEqual(algorithms, ['md5', 'sha1', 'sha256']);
    assert.equal(
      (entry.results.algorithms as Array<{ algorithm: string; actual: string }>).find((result) => result.algorithm === 'sha256')?.actual,
      iso.sha256,
    );

    const image = join(service.outputDir, 'E2E_DISC.iso');
    const handle = await open(image, 'r+');
    try {
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, 40_000);
      byte[0] = (byte[0] ?? 0) ^ 0xff;
      await handle.write(byte, 0, 1, 40_000);
    } finally {
      await handle.close();
    }
    const damaged = await verifyArchive(service.url, archiveId);
    assert.equal(damaged.status, 'completed');
    assert.equal(damaged.ok, false);

    const history = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/verifications`);
    assert.equal(history.body.total, 3);
    assert.deepEqual(
      history.body.verifications.map((entry: { ok: boolean }) => entry.ok),
      [false, true, true],
      'newest first',
    );
    const archive = await api(service.url, 'GET', `/api/v1/archives/${archiveId}`);
    assert.equal(archive.body.status, 'damaged');
    assert.equal(archive.body.last_verified_ok, false);
  });

  it('edits metadata and finds the archive by its new label and tags, with filters', async () => {
    const edited = await api(service.url, 'PATCH', `/api/v1/archives/${archiveId}`, {
      metadata: { label: 'Family Photos 2019', tags: ['photos', 'backup', ' photos '], notes: 'shelf 3\nbox 2' },
    });
    assert.equal(edited.status, 200, JSON.stringify(edited.body));
    assert.deepEqual(edited.body.metadata, {
      label: 'Family Photos 2019',
      tags: ['photos', 'backup'],
      notes: 'shelf 3\nbox 2',
      category_id: null,
      rating: null,
      custom_fields: {},
    });
    const labelOnly = await api(service.url, 'PATCH', `/api/v1/archives/${archiveId}`, { metadata: { label: 'Family Photos 2019 (scan)' } });
    assert.deepEqual(labelOnly.body.metadata.tags, ['photos', 'backup'], 'fields left out stay');

    const total = async (query: string): Promise<number> => {
      const found = await api(service.url, 'GET', `/api/v1/archives?${query}`);
      assert.equal(found.status, 200, `${query}: ${JSON.stringify(found.body)}`);
      return found.body.total;
    };
    assert.equal(await total('q=family'), 1);
    assert.equal(await total('search=BACKUP'), 1, 'search ignores case');
    assert.equal(await total('q=photos%20scan'), 1, 'every word must match');
    assert.equal(await total('q=holiday'), 0);
    assert.equal(await total('type=data'), 1);
    assert.equal(await total('type=dvd-video,bd-video'), 0);
    assert.equal(await total('status=damaged'), 1);
    assert.equal(await total('status=ok'), 0);
    assert.equal(await total(`min_size=${iso.sizeBytes}&max_size=${iso.sizeBytes}`), 1);
    assert.equal(await total(`min_size=${iso.sizeBytes + 1}`), 0);
    const today = new Date().toISOString().slice(0, 10);
    assert.equal(await total(`from=${today}&to=${today}`), 1, 'a day range includes the whole day');
    assert.equal(await total('to=2000-01-01'), 0);
    assert.equal(await total(`from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`), 0);
    const listed = await api(service.url, 'GET', '/api/v1/archives?sort=size&order=asc&limit=1');
    assert.equal(listed.body.limit, 1);
    assert.equal(listed.body.archives[0].id, archiveId);
  });

  it('deletes the archive with every sidecar, then answers 404', async () => {
    const before = await readdir(service.outputDir);
    assert.deepEqual(before.filter((file) => file.startsWith('E2E_DISC')).sort(), [
      'E2E_DISC.iso',
      'E2E_DISC.iso.json',
      'E2E_DISC.iso.map',
      'E2E_DISC.iso.md5',
      'E2E_DISC.iso.sha1',
      'E2E_DISC.iso.sha256',
    ]);
    const removed = await api(service.url, 'DELETE', `/api/v1/archives/${archiveId}`);
    assert.equal(removed.status, 204);
    assert.deepEqual(
      (await readdir(service.outputDir)).filter((file) => file.startsWith('E2E_DISC')),
      [],
    );
    for (const path of [`/api/v1/archives/${archiveId}`, `/api/v1/archives/${archiveId}/download`, `/api/v1/archives/${archiveId}/verifications`]) {
      const gone = await api(service.url, 'GET', path);
      assert.equal(gone.status, 404, path);
      assert.equal(gone.body.error.code, 'archive_not_found');
    }
    const again = await api(service.url, 'DELETE', `/api/v1/archives/${archiveId}`);
    assert.equal(again.status, 404);
    const job = await api(service.url, 'GET', `/api/v1/jobs/${jobId}`);
    assert.equal(job.body.archive_id, null, 'the job stays, without its archive');
    const appLog = await api(service.url, 'GET', '/api/v1/logs?level=info&limit=1000');
    assert.ok(appLog.body.logs.some((line: { message: string }) => line.message.startsWith(`archive ${archiveId} deleted`)));

    const removedJob = await api(service.url, 'DELETE', `/api/v1/jobs/${jobId}`);
    assert.equal(removedJob.status, 204);
    assert.equal((await api(service.url, 'GET', `/api/v1/jobs/${jobId}`)).status, 404);
  });
});
