import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createNodeRegistry, driveReport, nodeJson } from '../../src/cluster/registry.js';
import { type ClusterRepository, type NodeDriveReport, createClusterRepository } from '../../src/db/cluster-repository.js';
import type { Database } from '../../src/db/database.js';
import type { Drive } from '../../src/drives/types.js';
import { DomainError } from '../../src/errors.js';
import { manualClock, withDatabase } from '../db/support.js';

const SR0: NodeDriveReport = {
  deviceId: 'sr0',
  path: '/dev/sr0',
  label: 'ASUS DRW-24B1ST',
  state: { media: 'probed', present: true, label: 'HOLIDAY_2003', error: null, checkedAt: '2026-01-15T10:00:00.000Z' },
};

interface Harness {
  repository: ClusterRepository;
  clock: ReturnType<typeof manualClock>;
  /** The heartbeat callbacks the registries asked to run, with their interval. */
  timers: Array<{ ms: number; beat: () => void; stopped: boolean }>;
  problems: string[];
  registry(options: {
    id: string;
    version?: string;
    hostname?: string;
    pid?: number;
    drives?: NodeDriveReport[];
    alive?: (pid: number) => boolean;
    exclusiveName?: boolean;
  }): ReturnType<typeof createNodeRegistry>;
}

function harness(database: Database, repository: ClusterRepository = createClusterRepository(database)): Harness {
  const clock = manualClock();
  const timers: Harness['timers'] = [];
  const problems: string[] = [];
  return {
    repository,
    clock,
    timers,
    problems,
    registry: (options) =>
      createNodeRegistry({
        repository,
        clock: clock.now,
        heartbeatMs: 5000,
        offlineAfterMs: 15_000,
        version: options.version ?? '2.0.0',
        node: { id: options.id, role: 'all', hostname: options.hostname ?? 'tower', pid: options.pid ?? 1000, internalUrl: null },
        drives: () => options.drives ?? [],
        exclusiveName: options.exclusiveName ?? true,
        processAlive: options.alive ?? (() => false),
        onProblem: (message) => problems.push(message),
        every: (ms, beat) => {
          const timer = { ms, beat, stopped: false };
          timers.push(timer);
          return () => {
            timer.stopped = true;
          };
        },
      }),
  };
}

describe('node registry', () => {
  it('registers with its drives, beats every heartbeat interval, and shows offline once the heartbeat is older than the limit', async () => {
    await withDatabase(async (database) => {
      const h = harness(database);
      const registry = h.registry({ id: 'tower-a', drives: [SR0] });
      await registry.start();
      assert.deepEqual(
        h.timers.map((timer) => timer.ms),
        [5000],
      );
      const [fresh] = await registry.nodes();
      assert.deepEqual(
        [fresh?.id, fresh?.online, fresh?.self, fresh?.heartbeatAgeSeconds, fresh?.drives.map((drive) => drive.label)],
        ['tower-a', true, true, 0, ['ASUS DRW-24B1ST']],
      );

      h.clock.advance(14_999);
      assert.equal((await registry.nodes())[0]?.online, true, 'just inside the limit');
      h.clock.advance(1);
      const [late] = await registry.nodes();
      assert.deepEqual([late?.online, late?.heartbeatAgeSeconds], [false, 15]);

      // The timer's beat renews the heartbeat at the clock's time.
      h.timers[0]?.beat();
      await registry.beat();
      const [renewed] = await registry.nodes();
      assert.deepEqual([renewed?.online, renewed?.heartbeatAt], [true, '2026-01-15T10:00:15.000Z']);
    });
  });

  it('flags a node on another version, and a graceful stop removes the entry and stops the heartbeat', async () => {
    await withDatabase(async (database) => {
      const h = harness(database);
      const older = h.registry({ id: 'tower-a', version: '1.9.0', hostname: 'tower-a' });
      const own = h.registry({ id: 'tower-b', hostname: 'tower-b' });
      await older.start();
      await own.start();
      const flags = (await own.nodes()).map((node) => [node.id, node.version, node.versionMismatch, node.self]);
      assert.deepEqual(flags, [
        ['tower-a', '1.9.0', true, false],
        ['tower-b', '2.0.0', false, true],
      ]);
      await older.stop();
      assert.equal(h.timers[0]?.stopped, true);
      assert.deepEqual(
        (await own.nodes()).map((node) => node.id),
        ['tower-b'],
      );
    });
  });

  it('refuses a name a live process holds, and takes over one of a process that died', async () => {
    await withDatabase(async (database) => {
      const h = harness(database);
      await h.registry({ id: 'tower', hostname: 'host-1', pid: 1000 }).start();
      // Another host, heartbeat fresh: refused.
      const elsewhere = await h
        .registry({ id: 'tower', hostname: 'host-2', pid: 1000 })
        .start()
        .then(
          () => null,
          (error: unknown) => error,
        );
      assert.ok(elsewhere instanceof DomainError && elsewhere.code === 'node_name_taken', String(elsewhere));
      assert.match(elsewhere.message, /pid 1000 on host-1/);
      // The same host, another process that still runs: refused.
      await assert.rejects(h.registry({ id: 'tower', hostname: 'host-1', pid: 2000, alive: (pid) => pid === 1000 }).start(), /node name tower is in use/);
      // The same host, the holder is dead (a restart after a crash): taken over at once.
      await h.registry({ id: 'tower', hostname: 'host-1', pid: 3000, alive: () => false }).start();
      assert.equal((await h.repository.get('tower'))?.pid, 3000);
      // Another host once the holder is offline: taken over.
      h.clock.advance(15_000);
      await h.registry({ id: 'tower', hostname: 'host-2', pid: 4000 }).start();
      assert.deepEqual([(await h.repository.get('tower'))?.hostname], ['host-2']);
    });
  });

  it('on the embedded database a second process takes the entry over: the file serves one service, its port decides which', async () => {
    await withDatabase(async (database) => {
      const h = harness(database);
      await h.registry({ id: 'tower', hostname: 'host-1', pid: 1000, exclusiveName: false }).start();
      await h.registry({ id: 'tower', hostname: 'host-1', pid: 2000, alive: () => true, exclusiveName: false }).start();
      assert.equal((await h.repository.get('tower'))?.pid, 2000);
    });
  });

  it('registers again when its entry was removed, and reports a heartbeat the database refused', async () => {
    await withDatabase(async (database) => {
      const repository = createClusterRepository(database);
      let failing = false;
      const flaky: ClusterRepository = {
        ...repository,
        heartbeat: (...args) => (failing ? Promise.reject(new Error('connection lost')) : repository.heartbeat(...args)),
      };
      const h = harness(database, flaky);
      const registry = h.registry({ id: 'tower-a', drives: [SR0] });
      await registry.start();
      await repository.remove('tower-a');
      await registry.beat();
      assert.deepEqual(
        (await registry.nodes()).map((node) => [node.id, node.drives.length]),
        [['tower-a', 1]],
      );
      failing = true;
      await registry.beat();
      assert.deepEqual(h.problems, ['the heartbeat of node tower-a was not recorded: connection lost']);
    });
  });

  it('reports a drive from what its watch knows, and shows a node as JSON', () => {
    const drive: Drive = {
      id: 'tower-a.sr0',
      node: 'tower-a',
      path: '/dev/sr0',
      kind: 'optical',
      vendor: 'ASUS',
      model: 'DRW',
      revision: null,
      capabilities: [],
      ejectable: true,
      description: 'ASUS DRW',
    };
    const report = driveReport(drive, {
      state: 'not_responding',
      media: null,
      error: { code: 'drive_not_responding', message: 'no answer' },
      checkedAt: null,
    });
    // The web instances list the drive and make jobs for it from this: the whole drive and what is known of its disc.
    assert.deepEqual(report.state, {
      media: 'not_responding',
      present: null,
      label: null,
      error: 'drive_not_responding',
      checkedAt: null,
      drive,
      disc: null,
      errorMessage: 'no answer',
    });
    const json = nodeJson({
      id: 'tower-a',
      role: 'worker',
      version: '2.0.0',
      hostname: 'tower-a',
      pid: 7,
      startedAt: '2026-01-15T10:00:00.000Z',
      heartbeatAt: '2026-01-15T10:00:05.000Z',
      internalUrl: null,
      drives: [{ ...report, updatedAt: '2026-01-15T10:00:05.000Z' }],
      online: true,
      heartbeatAgeSeconds: 1,
      versionMismatch: false,
      self: true,
    });
    assert.deepEqual(json.drives[0]?.state, { media: 'not_responding', present: null, label: null, error: 'drive_not_responding', checked_at: null });
    assert.equal(json.heartbeat_age_seconds, 1);
  });
});
