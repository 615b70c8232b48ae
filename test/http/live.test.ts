import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArchiveEvents } from '../../src/archive/events.js';
import type { VerificationTaskRecord } from '../../src/archive/verification-task.js';
import { createEventBus } from '../../src/events/bus.js';
import { type JobLiveMessage, type LiveMessage, type LiveSink, createLiveHub } from '../../src/http/live.js';
import type { JobEvents } from '../../src/jobs/events.js';
import type { JobRecord } from '../../src/jobs/model.js';
import { waitFor } from './support.js';

/**
 * The hub's clients are sockets; here a sink stands in for the network so a test can decide how
 * far behind a client is (real sockets on loopback would need megabytes of backlog to lag).
 */
function recordingSink(): LiveSink & { received: JobLiveMessage[]; backlog: number; closed: boolean; beats: number } {
  const sink = {
    received: [] as JobLiveMessage[],
    backlog: 0,
    closed: false,
    beats: 0,
    send(message: LiveMessage, json: string) {
      assert.deepEqual(JSON.parse(json), message);
      if (message.type === 'archive_verification_update' || message.type === 'domain_event') throw new Error('these hubs get no archive or domain events');
      sink.received.push(message);
    },
    bufferedBytes: () => sink.backlog,
    heartbeat() {
      sink.beats += 1;
    },
    close() {
      sink.closed = true;
    },
  };
  return sink;
}

function job(id: string, progress: number, status: JobRecord['status'] = 'running'): JobRecord {
  const at = new Date(0).toISOString();
  return {
    id,
    name: id,
    status,
    priority: 'normal',
    deviceId: 'loop1',
    devicePath: '/dev/loop1',
    nodeId: null,
    outputFile: `/out/${id}.iso`,
    options: {},
    phase: 'copying',
    progress,
    sizeBytes: 1000,
    bytesDone: progress * 10,
    speedBps: 100,
    etaSeconds: 5,
    badBytes: 0,
    errorCount: 0,
    errorCode: null,
    errorMessage: null,
    archiveId: null,
    createdBy: null,
    createdAt: at,
    updatedAt: at,
    startedAt: at,
    finishedAt: null,
    seq: 1,
    leaseOwner: null,
    leaseExpiresAt: null,
    leaseHolder: null,
    attempts: 1,
    requestedAction: null,
  };
}

const FLUSH_MS = 40;

describe('live hub', () => {
  it('never calls a client while an event is emitted, and coalesces updates per job', async () => {
    const events = createEventBus<JobEvents>((error) => {
      throw error;
    });
    const hub = createLiveHub({ events, flushIntervalMs: FLUSH_MS, heartbeatMs: 60_000 });
    const sink = recordingSink();
    hub.connect(sink);
    try {
      events.emit('job.created', { job: job('job_a', 0, 'queued') });
      for (let progress = 1; progress <= 50; progress += 1) events.emit('job.updated', { job: job('job_a', progress) });
      events.emit('job.updated', { job: job('job_b', 7) });
      assert.equal(sink.received.length, 0, 'emitting only records; delivery comes later');

      await waitFor('a flush', () => sink.received.length >= 3);
      await sleep(FLUSH_MS * 2);
      assert.deepEqual(
        sink.received.map((message) => [message.type, message.job_id, message.data.progress]),
        [
          ['job_created', 'job_a', 0],
          ['job_update', 'job_a', 50],
          ['job_update', 'job_b', 7],
        ],
        'one update per job, the latest',
      );
      assert.deepEqual(Object.keys(sink.received[1]?.data ?? {}).sort(), [
        'bad_bytes',
        'bytes_done',
        'error_count',
        'eta_seconds',
        'node_online',
        'phase',
        'progress',
        'size_bytes',
        'speed_bps',
        'status',
        'updated_at',
      ]);
      assert.equal('queue_position' in (sink.received[0]?.data ?? {}), false);
    } finally {
      hub.close();
    }
  });

  it('sends an event after a quiet interval on the next turn, and holds back only those that follow closer', () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const events = createEventBus<JobEvents>((error) => {
      throw error;
    });
    const interval = 250;
    const hub = createLiveHub({ events, flushIntervalMs: interval, heartbeatMs: 60_000 });
    const sink = recordingSink();
    hub.connect(sink);
    const progressSent = () => sink.received.map((message) => message.data.progress);
    try {
      events.emit('job.updated', { job: job('job_a', 1) });
      assert.deepEqual(progressSent(), [], 'nothing is written while the event is emitted');
      mock.timers.tick(0);
      assert.deepEqual(progressSent(), [1], 'the first event goes out at once');

      mock.timers.tick(100);
      events.emit('job.updated', { job: job('job_a', 2) });
      events.emit('job.updated', { job: job('job_a', 3) });
      mock.timers.tick(interval - 100 - 1);
      assert.deepEqual(progressSent(), [1], 'held back until an interval has passed since the last batch');
      mock.timers.tick(1);
      assert.deepEqual(progressSent(), [1, 3], 'then sent as one batch holding the latest state');

      mock.timers.tick(interval * 2);
      events.emit('job.updated', { job: job('job_a', 4) });
      mock.timers.tick(0);
      assert.deepEqual(progressSent(), [1, 3, 4], 'after a quiet interval, at once again');
    } finally {
      hub.close();
      mock.timers.reset();
    }
  });

  it('keeps only the latest state for a lagging client, with a bounded log backlog, and catches it up later', async () => {
    const events = createEventBus<JobEvents>((error) => {
      throw error;
    });
    const hub = createLiveHub({ events, flushIntervalMs: FLUSH_MS, heartbeatMs: 60_000, maxBufferedBytes: 1000, maxPendingLogLines: 5 });
    const slow = recordingSink();
    const fast = recordingSink();
    hub.connect(slow);
    hub.connect(fast);
    try {
      slow.backlog = 1_000_000;
      for (let round = 1; round <= 200; round += 1) {
        events.emit('job.updated', { job: job('job_a', round % 100) });
        events.emit('job.log', { jobId: 'job_a', level: 'info', message: `line ${round}`, at: new Date(0).toISOString() });
        if (round % 20 === 0) await sleep(FLUSH_MS);
      }
      events.emit('job.finished', { job: job('job_a', 100, 'completed') });
      await sleep(FLUSH_MS * 3);
      assert.equal(slow.received.length, 0, 'nothing is written to a client that is behind');
      assert.ok(fast.received.length > 20, 'the other client is not held up');

      slow.backlog = 0;
      await waitFor('the lagging client to catch up', () => slow.received.some((message) => message.type === 'job_finished'));
      const types = slow.received.map((message) => message.type);
      assert.deepEqual(types.filter((type) => type === 'job_log').length, 5, 'only the newest log lines were kept');
      assert.deepEqual(
        slow.received.filter((message) => message.type === 'job_log').map((message) => message.data.message),
        ['line 196', 'line 197', 'line 198', 'line 199', 'line 200'],
      );
      assert.equal(types.includes('job_update'), false, 'the finished state replaced the pending update');
      assert.equal(slow.received.at(-1)?.type, 'job_finished');
      assert.equal(slow.received.at(-1)?.data.status, 'completed');
    } finally {
      hub.close();
    }
  });

  it('sends heartbeats, forgets disconnected clients and closes everyone on shutdown', async () => {
    const events = createEventBus<JobEvents>((error) => {
      throw error;
    });
    const hub = createLiveHub({ events, flushIntervalMs: FLUSH_MS, heartbeatMs: FLUSH_MS });
    const staying = recordingSink();
    const leaving = recordingSink();
    hub.connect(staying);
    const disconnect = hub.connect(leaving);
    assert.equal(hub.clientCount(), 2);
    disconnect();
    assert.equal(hub.clientCount(), 1);
    events.emit('job.removed', { jobId: 'job_gone' });
    await waitFor('a heartbeat and a flush', () => staying.beats >= 1 && staying.received.length === 1);
    assert.equal(leaving.beats, 0);
    assert.equal(leaving.received.length, 0);
    assert.deepEqual(staying.received, [{ type: 'job_removed', job_id: 'job_gone', data: {} }]);

    hub.close();
    assert.equal(staying.closed, true);
    assert.equal(hub.clientCount(), 0);
    events.emit('job.removed', { jobId: 'job_after' });
    await sleep(FLUSH_MS * 2);
    assert.equal(staying.received.length, 1, 'no delivery after close');
  });

  it('drops a client whose socket fails instead of failing the others', async () => {
    const events = createEventBus<JobEvents>((error) => {
      throw error;
    });
    const hub = createLiveHub({ events, flushIntervalMs: FLUSH_MS, heartbeatMs: 60_000 });
    const broken = recordingSink();
    broken.send = () => {
      throw new Error('EPIPE');
    };
    const healthy = recordingSink();
    hub.connect(broken);
    hub.connect(healthy);
    try {
      events.emit('job.removed', { jobId: 'job_x' });
      await waitFor('a flush', () => healthy.received.length === 1);
      assert.equal(hub.clientCount(), 1);
      assert.equal(healthy.received.length, 1);
    } finally {
      hub.close();
    }
  });

  it('sends verification tasks, the latest state of each, only to clients that accept them', async () => {
    const events = createEventBus<JobEvents>((error) => {
      throw error;
    });
    const archiveEvents = createEventBus<ArchiveEvents>((error) => {
      throw error;
    });
    const hub = createLiveHub({ events, archiveEvents, flushIntervalMs: FLUSH_MS, heartbeatMs: 60_000 });
    const everything: LiveMessage[] = [];
    const jobsOnly: LiveMessage[] = [];
    const sink = (into: LiveMessage[]): LiveSink => ({
      send: (message) => into.push(message),
      bufferedBytes: () => 0,
      heartbeat: () => undefined,
      close: () => undefined,
    });
    hub.connect(sink(everything));
    hub.connect(sink(jobsOnly), (message) => message.type !== 'archive_verification_update');
    try {
      const task = (status: VerificationTaskRecord['status'], bytesDone: number): VerificationTaskRecord => ({
        id: 'verify_a',
        archiveId: 'archive_a',
        status,
        bytesDone,
        bytesTotal: 1000,
        origin: 'manual',
        speedBps: null,
        etaSeconds: null,
        requestedBy: 'alice',
        cancelRequested: false,
        attempts: 1,
        errorCode: null,
        errorMessage: null,
        verificationId: null,
        ok: null,
        createdAt: new Date(0).toISOString(),
        updatedAt: new Date(0).toISOString(),
        startedAt: null,
        finishedAt: null,
      });
      archiveEvents.emit('archive.verification', { task: task('queued', 0) });
      archiveEvents.emit('archive.verification', { task: task('running', 250) });
      events.emit('job.removed', { jobId: 'job_x' });
      await waitFor('a flush to both', () => everything.length === 2 && jobsOnly.length === 1);
      const [update] = everything;
      assert.equal(update?.type, 'archive_verification_update');
      if (update?.type === 'archive_verification_update') {
        assert.deepEqual([update.task_id, update.archive_id, update.data.status, update.data.progress], ['verify_a', 'archive_a', 'running', 25]);
      }
      assert.deepEqual(
        jobsOnly.map((message) => message.type),
        ['job_removed'],
      );
    } finally {
      hub.close();
    }
  });
});
