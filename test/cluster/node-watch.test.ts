import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createNodeWatch } from '../../src/cluster/node-watch.js';
import { createNodeRegistry } from '../../src/cluster/registry.js';
import { createClusterRepository } from '../../src/db/cluster-repository.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import type { JobRecord } from '../../src/jobs/model.js';
import { manualClock, withDatabase } from '../db/support.js';
import { recordingLogger, until } from './support.js';

describe('node watch', () => {
  it('shows the unfinished jobs of a node again when it goes offline and when it comes back, with its state', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const repository = createClusterRepository(database);
      const registryOf = (id: string) =>
        createNodeRegistry({
          repository,
          clock: clock.now,
          heartbeatMs: 5000,
          offlineAfterMs: 15_000,
          version: '2.0.0',
          node: { id, role: id === 'front' ? 'web' : 'worker', hostname: id, pid: 1, internalUrl: null },
          drives: () => [],
          exclusiveName: true,
          processAlive: () => false,
          onProblem: () => undefined,
          every: () => () => undefined,
        });
      const front = registryOf('front');
      const towerA = registryOf('tower-a');
      const towerB = registryOf('tower-b');
      await Promise.all([front.start(), towerA.start(), towerB.start()]);
      const queue = createSqliteQueue(database, { nodeId: 'tower-a' });
      const jobs = createJobRepository(database);
      const running = await queue.enqueue({
        name: 'running',
        deviceId: 'tower-a.sr0',
        devicePath: '/dev/sr0',
        outputFile: '/out/running.iso',
        claim: { workerId: 'w', leaseMs: 60_000 },
      });
      const waiting = await queue.enqueue({ name: 'waiting', deviceId: 'tower-a.sr1', devicePath: '/dev/sr1', outputFile: '/out/waiting.iso' });
      const elsewhere = await queue.enqueue({ name: 'b', deviceId: 'tower-b.sr0', devicePath: '/dev/sr0', outputFile: '/out/b.iso', nodeId: 'tower-b' });
      const done = await queue.finish(
        (
          await queue.enqueue({
            name: 'done',
            deviceId: 'tower-a.sr2',
            devicePath: '/dev/sr2',
            outputFile: '/out/done.iso',
            claim: { workerId: 'w', leaseMs: 60_000 },
          })
        ).id,
        'w',
        'completed',
      );

      const shown: string[] = [];
      const log = recordingLogger();
      const watch = createNodeWatch({
        read: () => front.online(),
        jobsOf: async (node) => (await jobs.list({ limit: 100 })).items.filter((job: JobRecord) => job.nodeId === node && job.finishedAt === null),
        show: (job) => shown.push(`${job.name} ${String(watch.online(job.nodeId))}`),
        everyMs: 10,
        log,
      });
      try {
        await watch.start();
        assert.equal(watch.online('tower-a'), true);
        assert.equal(watch.online(null), null, 'a job on no node (the embedded mode) has no node state');
        assert.deepEqual(shown, [], 'the first look changes nothing');

        // Only tower-a misses its heartbeats: the others beat while all are still fresh.
        clock.advance(10_000);
        await Promise.all([front.beat(), towerB.beat()]);
        clock.advance(6000);
        await until(() => shown.length === 2, 'the jobs of tower-a were shown again').catch((error: unknown) => {
          throw new Error(`${String(error)}; shown ${JSON.stringify(shown)}, logged ${JSON.stringify(log.lines)}, tower-a ${watch.online('tower-a')}`);
        });
        assert.deepEqual(shown.toSorted(), ['running false', 'waiting false'], 'the unfinished jobs of the node that went offline, with its state');
        assert.equal(watch.online('tower-b'), true);

        // The registry reads the nodes' state at most once a second (by its clock). The change comes first and the
        // clock moves after it: a look between the two would keep the old state for as long as the clock stands still.
        await towerA.beat();
        clock.advance(1000);
        await until(() => shown.length === 4, 'the jobs of tower-a were shown again when it came back');
        assert.deepEqual(shown.slice(2).toSorted(), ['running true', 'waiting true']);

        await towerB.stop();
        clock.advance(1000);
        await until(() => shown.length === 5, 'the job of tower-b was shown when the node left the list');
        assert.equal(shown[4], 'b false');
        assert.equal(watch.online('tower-b'), false, 'a node that left the list is offline');
        assert.ok(![running.id, waiting.id, elsewhere.id].includes(done.id));
      } finally {
        watch.stop();
      }
    });
  });
});
