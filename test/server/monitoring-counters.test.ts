import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { createEventBus } from '../../src/events/bus.js';
import type { JobEvents } from '../../src/jobs/events.js';
import type { JobRecord } from '../../src/jobs/model.js';
import { type ServiceMetrics, createServiceMetrics } from '../../src/system/metrics.js';
import { createOutputProbe } from '../../src/system/output-probe.js';
import { RUNNER_STALL_MS, runnerCheck } from '../../src/system/readiness.js';

function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const SIZE = 10_000;

function job(id: string, patch: Partial<JobRecord>): JobRecord {
  return {
    id,
    name: id,
    status: 'running',
    priority: 'normal',
    deviceId: 'sr0',
    devicePath: '/dev/sr0',
    nodeId: null,
    outputFile: `/srv/${id}.iso`,
    options: {},
    phase: null,
    progress: 0,
    sizeBytes: null,
    bytesDone: 0,
    speedBps: null,
    etaSeconds: null,
    badBytes: 0,
    errorCount: 0,
    errorCode: null,
    errorMessage: null,
    archiveId: null,
    createdBy: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    startedAt: null,
    finishedAt: null,
    seq: 1,
    leaseOwner: null,
    leaseExpiresAt: null,
    leaseHolder: null,
    attempts: 1,
    requestedAction: null,
    ...patch,
  };
}

/**
 * The counters follow the job events as the runner sends them: a claim with the stored figures of
 * an earlier run, the engine's 'preparing' event with what the rescue map already holds, progress,
 * phases that count something else (hashing, verifying), pauses and shutdown requeues.
 */
describe('metrics counters from the job events', () => {
  let dir: string;
  let metrics: ServiceMetrics;
  const events = createEventBus<JobEvents>((error) => {
    throw error;
  });
  const updated = (record: JobRecord): void => events.emit('job.updated', { job: record });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'disk2iso-counters-'));
    const config = loadConfig({ env: { DISK2ISO_DATA_DIR: dir } });
    metrics = createServiceMetrics({
      config,
      version: 'test',
      events,
      drives: { list: () => [], peek: () => ({ state: 'probing', media: null, error: null, checkedAt: null }) },
      output: createOutputProbe(() => dir),
      countJobs: async () => ({ queued: 0, running: 0, paused: 0, verifying: 0, completed: 0, failed: 0, cancelled: 0 }),
      activeJobs: async () => [],
    });
  });

  after(async () => {
    metrics.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts what a resumed run reads, not what earlier runs read or what hashing counts', async () => {
    // The claim: the stored figures of an earlier run that was paused while hashing.
    updated(job('job_a', { phase: 'copying', bytesDone: 9_000, badBytes: 0, errorCount: 7, sizeBytes: SIZE }));
    // The engine's first event: the map already holds 6000 rescued bytes.
    updated(job('job_a', { phase: 'preparing', bytesDone: 6_000, errorCount: 0, sizeBytes: SIZE }));
    updated(job('job_a', { phase: 'copying', bytesDone: 7_000, sizeBytes: SIZE }));
    updated(job('job_a', { phase: 'scraping', bytesDone: 9_000, badBytes: 512, errorCount: 3 }));
    // The rescue ended between two events: hashing (a live event without the size) counts hashed bytes.
    updated(job('job_a', { phase: 'hashing', bytesDone: 100, badBytes: 512, errorCount: 3 }));
    updated(job('job_a', { phase: 'hashing', bytesDone: 5_000, badBytes: 512, errorCount: 3 }));
    updated(job('job_a', { status: 'verifying', phase: 'verifying', bytesDone: 8_000, badBytes: 512, errorCount: 3 }));
    events.emit('job.finished', { job: job('job_a', { status: 'completed', phase: null, bytesDone: SIZE, badBytes: 512 }) });

    const text = await metrics.render();
    assert.equal(sample(text, 'disk2iso_imaged_bytes_total{drive="sr0"}'), SIZE - 512 - 6_000);
    assert.equal(sample(text, 'disk2iso_unreadable_bytes_found_total{drive="sr0"}'), 512);
    assert.equal(sample(text, 'disk2iso_read_errors_total{drive="sr0"}'), 3);
    assert.equal(sample(text, 'disk2iso_jobs_finished_total{status="completed"}'), 1);
  });

  it('counts a paused run up to its last event, and no shutdown requeue as a finished run', async () => {
    const before = sample(await metrics.render(), 'disk2iso_imaged_bytes_total{drive="sr1"}') ?? 0;
    const on = { deviceId: 'sr1', sizeBytes: SIZE };
    updated(job('job_b', { ...on, phase: null }));
    updated(job('job_b', { ...on, phase: 'preparing' }));
    updated(job('job_b', { ...on, phase: 'copying', bytesDone: 5_000 }));
    updated(job('job_b', { ...on, phase: 'copying', bytesDone: 5_200 }));
    events.emit('job.finished', { job: job('job_b', { ...on, status: 'paused', phase: 'copying', bytesDone: 5_200 }) });
    // A service stop pauses the job and queues it again: that run is reported with the queued job.
    events.emit('job.finished', { job: job('job_c', { ...on, status: 'queued' }) });
    // Events after the end of a run count nothing until the next run's first event.
    updated(job('job_b', { ...on, phase: 'copying', bytesDone: 9_000 }));

    const text = await metrics.render();
    assert.equal(before, 0);
    assert.equal(sample(text, 'disk2iso_imaged_bytes_total{drive="sr1"}'), 5_200);
    assert.equal(sample(text, 'disk2iso_jobs_finished_total{status="paused"}'), 1);
    assert.ok(!text.includes('status="queued"} 1'), 'a requeue is no finished run');
  });

  it('counts a retry of bad areas by what it recovers, and never subtracts', async () => {
    const on = { deviceId: 'sr2', sizeBytes: SIZE };
    updated(job('job_d', { ...on, phase: 'preparing', bytesDone: SIZE - 2_048, badBytes: 2_048 }));
    updated(job('job_d', { ...on, phase: 'retrying', bytesDone: SIZE - 512, badBytes: 512 }));
    updated(job('job_d', { ...on, phase: 'hashing', bytesDone: 0, badBytes: 512 }));
    const text = await metrics.render();
    assert.equal(sample(text, 'disk2iso_imaged_bytes_total{drive="sr2"}'), 1_536);
    assert.equal(sample(text, 'disk2iso_unreadable_bytes_found_total{drive="sr2"}') ?? 0, 0);
  });
});

describe('the job runner readiness check', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');

  it('passes while the claim loop looked for work within the bound, fails when stopped or stuck', () => {
    assert.doesNotThrow(
      runnerCheck(
        () => new Date(now - 1_000),
        () => now,
      ),
    );
    assert.doesNotThrow(
      runnerCheck(
        () => new Date(now - RUNNER_STALL_MS),
        () => now,
      ),
    );
    assert.throws(
      runnerCheck(
        () => new Date(now - RUNNER_STALL_MS - 1_000),
        () => now,
      ),
      { code: 'job_runner_stopped', message: /31 s ago/ },
    );
    assert.throws(
      runnerCheck(() => null),
      { code: 'job_runner_stopped', message: /not running/ },
    );
  });
});
