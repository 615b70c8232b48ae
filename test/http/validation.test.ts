import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { openDataDirDatabase } from '../support/database.js';
import { makeIso } from '../tools/iso.js';
import { type TestServer, startTestServer } from './support.js';

interface Case {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  url: string;
  /** A JSON value, or raw text sent as is. */
  body?: unknown;
  contentType?: string;
  status: number;
  code: string;
  /** Part of the message that must name what was wrong. */
  mentions?: string;
}

describe('bad input on every endpoint: the right 4xx, one error shape, nothing changed', () => {
  let work: string;
  let service: TestServer;
  let deviceId: string;
  let outsideFile: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-validation-'));
    const iso = await makeIso({ dir: work, label: 'VALIDATION', dataMiB: 1, files: 1 });
    service = await startTestServer({ devices: [iso.path], listen: false });
    const devices = await service.server.app.inject({ method: 'GET', url: '/api/v1/devices', headers: service.authHeaders });
    deviceId = devices.json().devices[0].id;
    outsideFile = join(work, 'precious.txt');
    await writeFile(outsideFile, 'not an image');
  });

  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function send(testCase: Omit<Case, 'status' | 'code'>) {
    const raw = typeof testCase.body === 'string' && testCase.contentType !== undefined;
    return service.server.app.inject({
      method: testCase.method,
      url: testCase.url,
      ...(testCase.body === undefined ? {} : { payload: raw ? (testCase.body as string) : JSON.stringify(testCase.body) }),
      headers: testCase.body === undefined ? service.authHeaders : { ...service.authHeaders, 'content-type': testCase.contentType ?? 'application/json' },
    });
  }

  async function expectRefused(cases: Case[]): Promise<void> {
    for (const testCase of cases) {
      const label = `${testCase.method} ${testCase.url} ${typeof testCase.body === 'string' ? testCase.body.slice(0, 60) : JSON.stringify(testCase.body)?.slice(0, 60)}`;
      const response = await send(testCase);
      assert.equal(response.statusCode, testCase.status, `${label}: ${response.body.slice(0, 300)}`);
      assert.match(String(response.headers['content-type']), /^application\/json/, label);
      const body = response.json();
      assert.deepEqual(Object.keys(body), ['error'], label);
      assert.equal(body.error.code, testCase.code, `${label}: ${response.body.slice(0, 300)}`);
      assert.equal(typeof body.error.message, 'string', label);
      assert.ok(!/\n\s+at /.test(response.body), `${label}: no stack trace`);
      if (testCase.mentions) assert.ok(response.body.includes(testCase.mentions), `${label} names ${testCase.mentions}: ${response.body}`);
    }
  }

  it('jobs: wrong types, unknown fields, bad names, unknown devices, bad ids', async () => {
    const create = (body: unknown, status: number, code: string, mentions?: string): Case => ({
      method: 'POST',
      url: '/api/v1/jobs',
      body,
      status,
      code,
      ...(mentions ? { mentions } : {}),
    });
    await expectRefused([
      create({ device: 5 }, 400, 'validation_failed', 'body.device'),
      create({ device: deviceId, extra: 1 }, 400, 'validation_failed', 'body.extra'),
      create({ device: deviceId, options: { read_attempts: '5' } }, 400, 'validation_failed', 'body.options.read_attempts'),
      create({ device: deviceId, options: { verify: 'yes' } }, 400, 'validation_failed', 'body.options.verify'),
      create({ device: deviceId, options: { eject: 'yes' } }, 400, 'validation_failed', 'body.options.eject'),
      create({ device: deviceId, options: { read_attempts: 101 } }, 400, 'validation_failed', 'read_attempts'),
      create({ device: deviceId, options: { checksums: ['crc32'] } }, 400, 'validation_failed', 'checksums'),
      create({ device: deviceId, options: { checksums: [] } }, 400, 'validation_failed', 'checksums'),
      create({ device: deviceId, options: { priority: 'urgent' } }, 400, 'validation_failed', 'priority'),
      create({ device: deviceId, options: { bogus: true } }, 400, 'validation_failed', 'body.options.bogus'),
      create({ name: 'x' }, 400, 'validation_failed', 'device'),
      create([], 400, 'validation_failed'),
      create({ device: 'sr9' }, 404, 'unknown_device', 'sr9'),
      create({ device: '/dev/sda' }, 404, 'unknown_device'),
      create({ device: '../../etc/passwd' }, 404, 'unknown_device'),
      create({ device: deviceId, name: '../../etc/cron.d/x' }, 400, 'invalid_name'),
      create({ device: deviceId, name: 'a/b' }, 400, 'invalid_name'),
      create({ device: deviceId, name: 'bad\u0001name' }, 400, 'invalid_name', 'control characters'),
      create({ device: deviceId, name: 'tab\there' }, 400, 'invalid_name'),
      create({ device: deviceId, name: '.hidden' }, 400, 'invalid_name'),
      create({ device: deviceId, name: 'x'.repeat(201) }, 400, 'validation_failed', 'body.name'),
      create({ device: deviceId, name: 'a'.repeat(70_000) }, 413, 'payload_too_large'),
      {
        method: 'POST',
        url: '/api/v1/jobs',
        body: `device=${deviceId}`,
        contentType: 'application/x-www-form-urlencoded',
        status: 415,
        code: 'unsupported_media_type',
      },
      {
        method: 'POST',
        url: '/api/v1/jobs',
        body: JSON.stringify({ device: deviceId }),
        contentType: 'text/plain',
        status: 415,
        code: 'unsupported_media_type',
      },
      { method: 'POST', url: '/api/v1/jobs', body: '{"device":', contentType: 'application/json', status: 400, code: 'invalid_body' },
      { method: 'POST', url: '/api/v1/jobs', body: '{"__proto__":{"x":1},"device":"a"}', contentType: 'application/json', status: 400, code: 'invalid_body' },
      { method: 'POST', url: '/api/v1/jobs', body: '', contentType: 'application/json', status: 400, code: 'validation_failed' },
      { method: 'GET', url: '/api/v1/jobs?limit=0', status: 400, code: 'validation_failed', mentions: 'limit' },
      { method: 'GET', url: '/api/v1/jobs?limit=501', status: 400, code: 'validation_failed', mentions: 'limit' },
      { method: 'GET', url: '/api/v1/jobs?limit=lots', status: 400, code: 'validation_failed', mentions: 'limit' },
      { method: 'GET', url: '/api/v1/jobs?offset=-1', status: 400, code: 'validation_failed', mentions: 'offset' },
      { method: 'GET', url: '/api/v1/jobs?status=running,exploded', status: 400, code: 'validation_failed', mentions: 'status' },
      { method: 'GET', url: '/api/v1/jobs?sort=size', status: 400, code: 'validation_failed', mentions: 'sort' },
      { method: 'GET', url: '/api/v1/jobs?order=sideways', status: 400, code: 'validation_failed', mentions: 'order' },
      { method: 'GET', url: '/api/v1/jobs?page=2', status: 400, code: 'validation_failed', mentions: 'page' },
      { method: 'GET', url: '/api/v1/jobs/job_0123456789abcdef', status: 404, code: 'job_not_found' },
      { method: 'GET', url: '/api/v1/jobs/..%2F..%2Fetc%2Fpasswd', status: 400, code: 'validation_failed', mentions: 'job_id' },
      { method: 'GET', url: '/api/v1/jobs/JOB_1', status: 400, code: 'validation_failed' },
      { method: 'GET', url: `/api/v1/jobs/job_${'a'.repeat(65)}`, status: 400, code: 'validation_failed' },
      { method: 'GET', url: '/api/v1/jobs/job_1/logs?after_id=-1', status: 400, code: 'validation_failed', mentions: 'after_id' },
      { method: 'GET', url: '/api/v1/jobs/job_1/logs?after_id=x', status: 400, code: 'validation_failed' },
      { method: 'PATCH', url: '/api/v1/jobs/job_1', body: { action: 'explode' }, status: 400, code: 'validation_failed', mentions: 'action' },
      { method: 'PATCH', url: '/api/v1/jobs/job_1', body: { action: 'pause', force: true }, status: 400, code: 'validation_failed', mentions: 'force' },
      { method: 'PATCH', url: '/api/v1/jobs/job_1', body: { priority: 7 }, status: 400, code: 'validation_failed', mentions: 'priority' },
      { method: 'PATCH', url: '/api/v1/jobs/job_1', body: {}, status: 400, code: 'validation_failed' },
      { method: 'PATCH', url: '/api/v1/jobs/job_1', body: { action: 'pause' }, status: 404, code: 'job_not_found' },
      { method: 'PATCH', url: '/api/v1/jobs/..%2Fjob_1', body: { action: 'pause' }, status: 400, code: 'validation_failed' },
      { method: 'DELETE', url: '/api/v1/jobs/job_1', status: 404, code: 'job_not_found' },
      { method: 'DELETE', url: '/api/v1/jobs/%2E%2E', status: 404, code: 'not_found' },
    ]);
  });

  it('archives: bad filters, bad metadata, bad ids', async () => {
    const patch = (metadata: unknown, status = 400, code = 'validation_failed', mentions?: string): Case => ({
      method: 'PATCH',
      url: '/api/v1/archives/archive_0123456789abcdef',
      body: { metadata },
      status,
      code,
      ...(mentions ? { mentions } : {}),
    });
    await expectRefused([
      { method: 'GET', url: '/api/v1/archives?min_size=-1', status: 400, code: 'validation_failed', mentions: 'min_size' },
      { method: 'GET', url: '/api/v1/archives?max_size=big', status: 400, code: 'validation_failed', mentions: 'max_size' },
      { method: 'GET', url: '/api/v1/archives?type=floppy', status: 400, code: 'validation_failed', mentions: 'type' },
      { method: 'GET', url: '/api/v1/archives?status=gone', status: 400, code: 'validation_failed', mentions: 'status' },
      { method: 'GET', url: '/api/v1/archives?from=yesterday', status: 400, code: 'validation_failed', mentions: 'from' },
      { method: 'GET', url: '/api/v1/archives?to=2025-13-45', status: 400, code: 'validation_failed', mentions: 'to' },
      { method: 'GET', url: '/api/v1/archives?sort=colour', status: 400, code: 'validation_failed', mentions: 'sort' },
      { method: 'GET', url: `/api/v1/archives?q=${'x'.repeat(201)}`, status: 400, code: 'validation_failed', mentions: 'q' },
      { method: 'GET', url: '/api/v1/archives?limit=501', status: 400, code: 'validation_failed', mentions: 'limit' },
      { method: 'GET', url: '/api/v1/archives/archive_0123456789abcdef', status: 404, code: 'archive_not_found' },
      { method: 'GET', url: '/api/v1/archives/..%2F..%2Fetc%2Fpasswd', status: 400, code: 'validation_failed', mentions: 'archive_id' },
      { method: 'GET', url: '/api/v1/archives/..%2F..%2Fetc%2Fpasswd/download', status: 400, code: 'validation_failed' },
      { method: 'GET', url: '/api/v1/archives/archive_0123456789abcdef/download', status: 404, code: 'archive_not_found' },
      { method: 'POST', url: '/api/v1/archives/archive_0123456789abcdef/verify', status: 404, code: 'archive_not_found' },
      { method: 'POST', url: '/api/v1/archives/archive_%00/verify', status: 400, code: 'validation_failed' },
      { method: 'DELETE', url: '/api/v1/archives/archive_0123456789abcdef', status: 404, code: 'archive_not_found' },
      { method: 'DELETE', url: '/api/v1/archives/job_0123', status: 400, code: 'validation_failed' },
      { method: 'GET', url: '/api/v1/archives/archive_0123456789abcdef/verifications?offset=x', status: 400, code: 'validation_failed' },
      patch({ label: 'bell\u0007' }, 400, 'validation_failed', 'label'),
      patch({ label: 'x'.repeat(201) }, 400, 'validation_failed', 'label'),
      patch({ tags: 'photos' }, 400, 'validation_failed', 'tags'),
      patch({ tags: ['a,b'] }, 400, 'validation_failed', 'tags'),
      patch({ tags: [''] }, 400, 'validation_failed', 'tags'),
      patch({ tags: Array.from({ length: 51 }, (_, index) => `t${index}`) }, 400, 'validation_failed', 'tags'),
      patch({ notes: 'nul\u0000' }, 400, 'validation_failed', 'notes'),
      patch({ colour: 'red' }, 400, 'validation_failed', 'colour'),
      patch({ label: 'fine' }, 404, 'archive_not_found'),
      { method: 'PATCH', url: '/api/v1/archives/archive_0123456789abcdef', body: { label: 'x' }, status: 400, code: 'validation_failed', mentions: 'metadata' },
    ]);
  });

  it('devices, system, logs and unknown routes', async () => {
    await expectRefused([
      // A drive is named by its id or the device path of a listed drive; anything else names no drive.
      { method: 'POST', url: '/api/v1/devices/SR0/eject', status: 404, code: 'unknown_device' },
      { method: 'POST', url: '/api/v1/devices/..%2Fsda/eject', status: 404, code: 'unknown_device' },
      { method: 'POST', url: '/api/v1/devices/%2Fdev%2Fsda/eject', status: 404, code: 'unknown_device' },
      { method: 'POST', url: '/api/v1/devices/sr9/eject', status: 404, code: 'unknown_device' },
      { method: 'POST', url: `/api/v1/devices/${deviceId}/eject`, status: 409, code: 'not_ejectable' },
      {
        method: 'PATCH',
        url: '/api/v1/system/config',
        body: { imaging: { read_attempts: '3' } },
        status: 400,
        code: 'validation_failed',
        mentions: 'imaging.read_attempts',
      },
      {
        method: 'PATCH',
        url: '/api/v1/system/config',
        body: { imaging: { read_attempts: 1000 } },
        status: 400,
        code: 'validation_failed',
        mentions: 'imaging.read_attempts',
      },
      { method: 'PATCH', url: '/api/v1/system/config', body: { imaging: { bogus: 1 } }, status: 400, code: 'validation_failed', mentions: 'imaging.bogus' },
      { method: 'PATCH', url: '/api/v1/system/config', body: { bogus: {} }, status: 400, code: 'validation_failed', mentions: 'bogus' },
      { method: 'PATCH', url: '/api/v1/system/config', body: { imaging: 3 }, status: 400, code: 'validation_failed', mentions: 'imaging' },
      {
        method: 'PATCH',
        url: '/api/v1/system/config',
        body: { imaging: { checksums: ['md5', 'md5'] } },
        status: 400,
        code: 'validation_failed',
        mentions: 'checksums',
      },
      { method: 'PATCH', url: '/api/v1/system/config', body: {}, status: 400, code: 'invalid_setting' },
      {
        method: 'PATCH',
        url: '/api/v1/system/config',
        body: { drives: { extra: ['/dev/sda'] } },
        status: 409,
        code: 'setting_server_only',
        mentions: 'DISK2ISO_EXTRA_DEVICES',
      },
      { method: 'GET', url: '/api/v1/logs?level=verbose', status: 400, code: 'validation_failed', mentions: 'level' },
      { method: 'GET', url: '/api/v1/logs?since=yesterday', status: 400, code: 'validation_failed', mentions: 'since' },
      { method: 'GET', url: '/api/v1/logs?limit=1001', status: 400, code: 'validation_failed', mentions: 'limit' },
      { method: 'GET', url: '/api/v1/logs?job_id=..%2F', status: 400, code: 'validation_failed', mentions: 'job_id' },
      { method: 'GET', url: '/api/v1/ws/jobs', status: 400, code: 'websocket_upgrade_required' },
      { method: 'GET', url: '/api/v1/nothing-here', status: 404, code: 'not_found' },
      { method: 'DELETE', url: '/api/v1/devices', status: 404, code: 'not_found' },
    ]);
  });

  it('archive files are only touched inside the output directory', async () => {
    // Catalogue entries written straight into the database: one pointing outside, one through a symlink.
    const database = await openDataDirDatabase(service.dataDir);
    const outputDir = service.outputDir;
    await mkdir(outputDir, { recursive: true });
    const link = join(outputDir, 'linked.iso');
    await symlink(outsideFile, link);
    let outside: string;
    let linked: string;
    try {
      const archives = createArchiveRepository(database);
      const source = { deviceId: null, devicePath: null, discKind: null, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] };
      outside = (await archives.create({ filename: 'precious.txt', path: outsideFile, sizeBytes: 12, checksums: {}, source })).id;
      linked = (await archives.create({ filename: 'linked.iso', path: link, sizeBytes: 12, checksums: {}, source })).id;
    } finally {
      await database.close();
    }
    await expectRefused([
      { method: 'GET', url: `/api/v1/archives/${outside}/download`, status: 409, code: 'archive_outside_output_dir' },
      { method: 'POST', url: `/api/v1/archives/${outside}/verify`, status: 409, code: 'archive_outside_output_dir' },
      { method: 'DELETE', url: `/api/v1/archives/${outside}`, status: 409, code: 'archive_outside_output_dir' },
      { method: 'GET', url: `/api/v1/archives/${linked}/download`, status: 409, code: 'archive_outside_output_dir' },
    ]);
    assert.ok((await stat(outsideFile)).isFile(), 'the file outside is untouched');
    const removed = await send({ method: 'DELETE', url: `/api/v1/archives/${linked}` });
    assert.equal(removed.statusCode, 204, removed.body);
    assert.ok((await stat(outsideFile)).isFile(), 'deleting removed the link, not its target');
    assert.deepEqual(await readdir(outputDir), []);
    assert.equal((await send({ method: 'DELETE', url: `/api/v1/archives/${outside}` })).statusCode, 409);
  });

  it('changed nothing: no jobs, no archives beyond the test entry, no files, no settings', async () => {
    const jobs = (await send({ method: 'GET', url: '/api/v1/jobs' })).json();
    assert.equal(jobs.total, 0);
    const archives = (await send({ method: 'GET', url: '/api/v1/archives' })).json();
    assert.deepEqual(
      archives.archives.map((archive: { filename: string }) => archive.filename),
      ['precious.txt'],
    );
    assert.deepEqual(await readdir(service.outputDir), []);
    const config = (await send({ method: 'GET', url: '/api/v1/system/config' })).json();
    assert.equal(config.settings.imaging.read_attempts, 5);
    assert.ok(!Object.values(config.sources).includes('stored settings'), 'nothing was stored');
  });
});
