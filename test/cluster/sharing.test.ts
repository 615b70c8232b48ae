import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { ArchiveEvents } from '../../src/archive/events.js';
import { type EventBridge, createEventBridge } from '../../src/cluster/event-bridge.js';
import type { NodeView } from '../../src/cluster/registry.js';
import { createRemoteDrives, followDriveCommands } from '../../src/cluster/remote-drives.js';
import { shareLiveEvents } from '../../src/cluster/share-events.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { openPostgres } from '../../src/db/postgres.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import type { Drive } from '../../src/drives/types.js';
import { createEventBus } from '../../src/events/bus.js';
import type { JobEvents } from '../../src/jobs/events.js';
import type { DomainEvent } from '../../src/notifications/model.js';
import { usePostgres } from '../support/postgres.js';
import { recordingLogger, until } from './support.js';

const postgres = usePostgres();
const closing: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closing) await close();
});

async function bridge(url: string, nodeId: string): Promise<EventBridge> {
  const created = createEventBridge({ url, nodeId, log: recordingLogger(), pingMs: 1000 });
  closing.push(() => created.close());
  await created.start();
  return created;
}

const failOnError = (error: unknown): never => {
  throw error;
};

/** An instance's buses as the service makes them: what happened here, and what its live streams show. */
function instanceBuses() {
  const recorded = new Set<(event: DomainEvent) => void>();
  return {
    jobs: createEventBus<JobEvents>(failOnError),
    archive: createEventBus<ArchiveEvents>(failOnError),
    liveJobs: createEventBus<JobEvents>(failOnError),
    liveArchive: createEventBus<ArchiveEvents>(failOnError),
    /** The notification service's `follow`: the domain events this instance records. */
    domain: {
      follow(listener: (event: DomainEvent) => void) {
        recorded.add(listener);
        return () => recorded.delete(listener);
      },
      record(event: DomainEvent) {
        for (const listener of recorded) listener(event);
      },
    },
  };
}

test('live streams show every instance’s events; the side effects of one happen only where it happened; a gap resends the job states', async () => {
  const url = await postgres().createDatabase();
  const database = await openPostgres(url);
  closing.push(() => database.close());
  const queue = createSqliteQueue(database, { nodeId: 'tower-a' });
  const jobs = createJobRepository(database);
  const [worker, web] = [instanceBuses(), instanceBuses()];
  const workerBridge = await bridge(url, 'tower-a');
  const webBridge = await bridge(url, 'front');
  const shownDomainEvents = [worker, web].map((buses, index) => {
    const shared = shareLiveEvents({
      bridge: index === 0 ? workerBridge : webBridge,
      local: { jobs: buses.jobs, archive: buses.archive, domain: buses.domain },
      live: { jobs: buses.liveJobs, archive: buses.liveArchive },
      onListenerError: failOnError,
      recentJobs: async () => (await jobs.list({ sort: 'updated', order: 'desc', limit: 200 })).items,
    });
    closing.push(async () => shared.stop());
    return shared.domainEvents;
  });
  const seen = (bus: ReturnType<typeof instanceBuses>['jobs']) => {
    const ids: string[] = [];
    bus.onAny((type, payload) => ids.push(`${String(type)} ${'job' in payload ? payload.job.id : ''}`));
    return ids;
  };
  const webLocal = seen(web.jobs);
  const webLive = seen(web.liveJobs);
  const workerLive = seen(worker.liveJobs);
  const webDomain: string[] = [];
  shownDomainEvents[1]?.follow((event) => webDomain.push(event.id));

  const job = await queue.enqueue({ name: 'a', deviceId: 'tower-a.sr0', devicePath: '/dev/sr0', outputFile: '/out/a.iso' });
  worker.jobs.emit('job.updated', { job });
  worker.domain.record({ id: 'evt_1', type: 'job.failed', at: job.createdAt, payload: { job_id: job.id } });
  await until(() => webLive.length === 1 && webDomain.length === 1, 'the web instance’s live streams got the worker’s events');
  assert.deepEqual(webLive, [`job.updated ${job.id}`]);
  assert.deepEqual(webLocal, [], 'the web instance’s own listeners (event log, notifications, metrics) never see the worker’s events');
  assert.deepEqual(workerLive, [`job.updated ${job.id}`], 'the worker’s live streams show its own events');

  await postgres().restart();
  await until(() => webLive.length >= 2, 'the web instance resent the job states after the gap');
  assert.deepEqual(webLive.slice(1), [`job.updated ${job.id}`], 'the state of the queued job, read from the database');
  assert.deepEqual(webLocal, []);
});

test('a web instance lists the other online nodes’ drives and asks their node to eject; only that node does', async () => {
  const url = await postgres().createDatabase();
  const [front, towerA, towerB] = [await bridge(url, 'front'), await bridge(url, 'tower-a'), await bridge(url, 'tower-b')];
  const drive = (node: string, id: string): Drive => ({
    id: `${node}.${id}`,
    path: `/dev/${id}`,
    kind: 'optical',
    vendor: null,
    model: null,
    revision: null,
    capabilities: ['cd'],
    ejectable: true,
    description: `Optical drive ${id}`,
  });
  const node = (id: string, online: boolean, self: boolean, drives: Drive[]): NodeView => ({
    id,
    role: 'worker',
    version: '1.0.0',
    hostname: id,
    pid: 1,
    startedAt: '2026-12-05T00:00:00.000Z',
    heartbeatAt: '2026-12-05T00:00:00.000Z',
    internalUrl: null,
    drives: drives.map((reported) => ({
      deviceId: reported.id,
      path: reported.path,
      label: '',
      state: { media: 'probed', present: true, label: 'DISC', error: null, checkedAt: '2026-12-05T00:00:00.000Z', drive: reported, disc: null },
      updatedAt: '2026-12-05T00:00:00.000Z',
    })),
    online,
    heartbeatAgeSeconds: online ? 1 : 600,
    versionMismatch: false,
    self,
  });
  let clock = 0;
  const remote = createRemoteDrives({
    nodes: async () => [
      node('front', true, true, []),
      node('tower-a', true, false, [drive('tower-a', 'sr0')]),
      node('tower-b', true, false, [drive('tower-b', 'sr0')]),
      node('tower-c', false, false, [drive('tower-c', 'sr0')]),
    ],
    bridge: front,
    log: recordingLogger(),
    now: () => clock,
  });
  const asked = { 'tower-a': [] as string[], 'tower-b': [] as string[] };
  const looked = { 'tower-a': 0, 'tower-b': 0 };
  for (const [name, through] of [
    ['tower-a', towerA],
    ['tower-b', towerB],
  ] as const) {
    const stop = followDriveCommands(through, {
      node: name,
      eject: async (deviceId) => asked[name].push(deviceId),
      looked: () => {
        looked[name] += 1;
      },
      log: recordingLogger(),
    });
    closing.push(async () => stop());
  }

  const listed = await remote.list();
  assert.deepEqual(
    listed.map((entry) => `${entry.drive.node} ${entry.drive.id} ${entry.known.state}`),
    ['tower-a tower-a.sr0 probed', 'tower-b tower-b.sr0 probed'],
    'the drives of online nodes other than this one, each with its node',
  );
  await remote.list();
  clock += 30_000;
  await remote.list();
  await until(() => looked['tower-a'] === 2 && looked['tower-b'] === 2, 'both nodes heard twice that their drives are looked at');

  await remote.eject(listed[1]?.drive as Drive);
  await until(() => asked['tower-b'].length === 1, 'tower-b was asked to eject');
  assert.deepEqual(asked, { 'tower-a': [], 'tower-b': ['tower-b.sr0'] });
  assert.equal(looked['tower-a'], 2, 'three lists within 30 s and one after: two messages, not four');
});
