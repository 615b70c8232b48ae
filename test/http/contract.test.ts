import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Value from 'typebox/value';
import { JobUpdate } from '../../src/http/schemas.js';
import { testDriveId } from '../support/database.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type TestServer, api, assertMatchesExample, followWebSocket, startTestServer, waitFor } from './support.js';

/** The response examples of the specification (web-first-architecture.de.md, "API-Endpunkte"), verbatim. */
const SPEC = {
  jobList: {
    jobs: [
      {
        id: 'job_123456',
        name: 'movie_collection_disc1',
        status: 'running',
        progress: 45,
        created_at: '2025-12-31T14:00:00Z',
        updated_at: '2025-12-31T14:15:00Z',
        device: '/dev/sr0',
        output_file: '/opt/disk2iso/output/movie_collection_disc1.iso',
        size_bytes: 4700000000,
        speed_bps: 2400000,
        eta_seconds: 263,
      },
    ],
    total: 156,
    limit: 50,
    offset: 0,
  },
  jobCreated: { id: 'job_123457', status: 'queued', created_at: '2025-12-31T14:20:00Z' },
  archiveList: {
    archives: [
      {
        id: 'archive_789',
        filename: 'movie_collection_disc1.iso',
        path: '/opt/disk2iso/output/movie_collection_disc1.iso',
        size_bytes: 4700000000,
        created_at: '2025-12-30T20:00:00Z',
        checksums: { md5: 'a3b4c5d6e7f8g9h0', sha256: 'f7e8d9a0b1c2d3e4f5g6h7i8j9k0l1m2' },
        metadata: { label: 'Movie Collection Vol 1', tags: ['movies', 'backup'], notes: 'Personal movie collection' },
      },
    ],
  },
  devices: {
    devices: [
      { path: '/dev/sr0', vendor: 'ASUS', model: 'DVD-RW DRW-24B1ST', status: 'idle', has_media: true, media_type: 'dvd', media_size_bytes: 4700000000 },
    ],
  },
  systemStatus: {
    status: 'healthy',
    version: '2.0.0',
    uptime_seconds: 86400,
    resources: {
      cpu_percent: 12.5,
      memory_used_bytes: 478150656,
      memory_total_bytes: 2147483648,
      storage_used_bytes: 102400000000,
      storage_total_bytes: 1000000000000,
    },
    services: { redis: 'running', nginx: 'running' },
  },
  wsMessage: { type: 'job_update', job_id: 'job_123456', data: { status: 'running', progress: 46, speed_bps: 2450000, eta_seconds: 258 } },
};

describe('responses match the specification’s examples (field names and JSON types)', () => {
  let work: string;
  let fault: FaultFs;
  let loop: LoopDevice;
  let service: TestServer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-contract-'));
    const iso = await makeIso({ dir: work, label: 'CONTRACT', dataMiB: 64, files: 2, seed: 3 });
    // Slow enough (the loop driver passes a few hundred KiB per read, the engine keeps three in
    // flight) that the job is still running while it is inspected.
    fault = await mountFaultFs({ backingFile: iso.path, delayMs: 300 });
    loop = await attachLoop(fault.file, { sectorSize: 2048 });
    service = await startTestServer({ devices: [loop.path] });
  });

  after(async () => {
    try {
      await service?.close();
    } finally {
      await loop?.detach();
      await fault?.unmount();
      await rm(work, { recursive: true, force: true });
    }
  });

  it('job list, job creation, devices and live messages while a job runs; archives and status after', async () => {
    const idle = await api(service.url, 'GET', '/api/v1/devices');
    assertMatchesExample(idle.body, SPEC.devices, new Set(['vendor', 'model', 'media_type']));
    assert.equal(idle.body.devices[0].status, 'idle');

    const ws = await followWebSocket(service.url);
    try {
      const created = await api(service.url, 'POST', '/api/v1/jobs', {
        name: 'movie_collection_disc1',
        device: testDriveId(loop.name),
        options: { read_attempts: 5, verify: true, checksums: ['md5', 'sha256'], priority: 'normal' },
      });
      assert.equal(created.status, 201);
      assertMatchesExample(created.body, SPEC.jobCreated);
      assert.ok(['queued', 'running'].includes(created.body.status));
      const jobId = created.body.id;

      let running: { body: { jobs: Array<{ status: string; speed_bps: number | null; eta_seconds: number | null }> } } | undefined;
      await waitFor('the job to run with a measured rate', async () => {
        running = await api(service.url, 'GET', '/api/v1/jobs?status=running');
        const first = running?.body.jobs[0];
        return first !== undefined && first.speed_bps !== null && first.eta_seconds !== null;
      });
      assertMatchesExample(running?.body, SPEC.jobList);

      const busy = await api(service.url, 'GET', '/api/v1/devices');
      assertMatchesExample(busy.body, SPEC.devices, new Set(['vendor', 'model', 'media_type']));
      assert.equal(busy.body.devices[0].status, 'busy', 'a drive with a running job is busy');
      const eject = await api(service.url, 'POST', `/api/v1/devices/${testDriveId(loop.name)}/eject`);
      assert.equal(eject.status, 409);
      assert.equal(eject.body.error.code, 'device_busy');

      // The client keeps every message, so this finds the update even if the job has finished since.
      const withRate = () =>
        ws.messages.find(
          (message) => message.type === 'job_update' && message.job_id === jobId && message.data.speed_bps !== null && message.data.eta_seconds !== null,
        );
      await waitFor('a job_update with a rate and ETA', () => withRate() !== undefined);
      assertMatchesExample(withRate(), SPEC.wsMessage);
      const updates = ws.messages.filter((message) => message.type === 'job_update' && message.job_id === jobId);
      for (const update of updates) assert.ok(Value.Check(JobUpdate, update.data), `a job_update as its schema describes it: ${JSON.stringify(update.data)}`);
      assert.ok(
        updates.every((update) => Date.parse(String(update.data.updated_at)) >= Date.parse(created.body.created_at)),
        'each update says when the job was in that state',
      );

      await fault.setDelay(0);
      await waitFor('the job to complete', async () => (await api(service.url, 'GET', `/api/v1/jobs/${jobId}`)).body.status === 'completed');
      const job = await api(service.url, 'GET', `/api/v1/jobs/${jobId}`);
      const edited = await api(service.url, 'PATCH', `/api/v1/archives/${job.body.archive_id}`, {
        metadata: { label: 'Movie Collection Vol 1', tags: ['movies', 'backup'], notes: 'Personal movie collection' },
      });
      assert.equal(edited.status, 200);
    } finally {
      ws.close();
    }

    const archives = await api(service.url, 'GET', '/api/v1/archives');
    assertMatchesExample(archives.body, SPEC.archiveList);
    assert.match(archives.body.archives[0].checksums.md5, /^[0-9a-f]{32}$/);
    assert.match(archives.body.archives[0].checksums.sha256, /^[0-9a-f]{64}$/);

    const status = await api(service.url, 'GET', '/api/v1/system/status');
    // The specification's example names services of its Python design (redis, nginx); ours are these.
    assertMatchesExample(status.body, { ...SPEC.systemStatus, services: { database: 'running', queue: 'running', workers: 'running' } });
    assert.ok(['healthy', 'degraded'].includes(status.body.status));
    assert.deepEqual(status.body.services, { database: 'running', queue: 'running', workers: 'running' });
    assert.equal(status.body.drives.count, 1);
    assert.equal(status.body.jobs.completed, 1);
    const { resources } = status.body;
    assert.ok(resources.cpu_percent >= 0 && resources.cpu_percent <= 100);
    assert.ok(resources.memory_used_bytes > 0 && resources.memory_used_bytes <= resources.memory_total_bytes);
    assert.ok(resources.storage_used_bytes > 0 && resources.storage_used_bytes <= resources.storage_total_bytes);
  });
});
