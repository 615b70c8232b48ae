import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobRecord } from '../../src/jobs/model.js';
import { createJobEventMapper } from '../../src/notifications/job-events.js';

const AT = '2026-01-01T00:00:00.000Z';
const LATER = '2026-01-01T00:01:00.000Z';

function job(overrides: Partial<JobRecord>): JobRecord {
  return {
    id: 'job_1',
    name: 'DISC',
    status: 'queued',
    priority: 'normal',
    deviceId: 'sr0',
    devicePath: '/dev/sr0',
    nodeId: null,
    outputFile: '/out/DISC.iso',
    options: {},
    phase: null,
    progress: 0,
    sizeBytes: 1024,
    bytesDone: 0,
    speedBps: null,
    etaSeconds: null,
    badBytes: 0,
    errorCount: 0,
    errorCode: null,
    errorMessage: null,
    archiveId: null,
    createdBy: null,
    createdAt: AT,
    updatedAt: AT,
    startedAt: null,
    finishedAt: null,
    seq: 1,
    leaseOwner: null,
    leaseExpiresAt: null,
    leaseHolder: null,
    attempts: 0,
    requestedAction: null,
    ...overrides,
  };
}

describe('domain events from the job bus', () => {
  it("raises each event once, at the status change, with the pause's reason", () => {
    const map = createJobEventMapper();
    const steps: Array<[Parameters<typeof map>[0], Partial<JobRecord>, string | null, string?]> = [
      ['job.created', { status: 'queued' }, 'job.queued'],
      ['job.updated', { status: 'queued', priority: 'high' }, null],
      ['job.updated', { status: 'running' }, 'job.started'],
      ['job.updated', { status: 'running', progress: 40 }, null],
      ['job.finished', { status: 'paused', errorCode: 'storage_threshold' }, 'job.paused', 'disk_full'],
      ['job.updated', { status: 'queued', errorCode: null }, 'job.queued'],
      ['job.updated', { status: 'running' }, 'job.started'],
      ['job.finished', { status: 'paused' }, 'job.paused', 'user'],
      ['job.updated', { status: 'queued' }, 'job.queued'],
      ['job.updated', { status: 'running' }, 'job.started'],
      // A stop of the service puts the job back in the queue at once.
      ['job.finished', { status: 'queued' }, 'job.paused', 'shutdown'],
      ['job.updated', { status: 'running' }, 'job.started'],
      ['job.updated', { status: 'verifying' }, null],
      ['job.finished', { status: 'completed', badBytes: 4096, finishedAt: LATER, updatedAt: LATER }, 'job.completed_with_errors'],
      ['job.finished', { status: 'completed', badBytes: 4096, finishedAt: LATER, updatedAt: '2026-01-02T00:00:00.000Z' }, null],
    ];
    for (const [source, overrides, type, reason] of steps) {
      const event = map(source, job(overrides));
      assert.equal(event?.type ?? null, type, `${source} ${JSON.stringify(overrides)}`);
      if (reason !== undefined) assert.equal(event?.payload.reason, reason);
    }
  });

  it('tells a clean completion, a failure and a cancel apart, also for a job first seen finishing', () => {
    const map = createJobEventMapper();
    const finished = { finishedAt: LATER, updatedAt: LATER };
    assert.equal(map('job.finished', job({ id: 'job_a', status: 'completed', ...finished }))?.type, 'job.completed');
    assert.equal(map('job.finished', job({ id: 'job_b', status: 'failed', errorCode: 'read_error', ...finished }))?.type, 'job.failed');
    assert.equal(map('job.finished', job({ id: 'job_c', status: 'cancelled', ...finished }))?.type, 'job.cancelled');
    const summary = map('job.finished', job({ id: 'job_d', status: 'completed', archiveId: 'archive_1', ...finished }))?.payload.job;
    assert.deepEqual(summary, {
      id: 'job_d',
      name: 'DISC',
      status: 'completed',
      device_id: 'sr0',
      output_file: '/out/DISC.iso',
      size_bytes: 1024,
      bytes_done: 0,
      bad_bytes: 0,
      error_code: null,
      error_message: null,
      archive_id: 'archive_1',
      created_at: AT,
      started_at: null,
      finished_at: LATER,
    });
  });
});
