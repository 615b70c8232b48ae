import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeDriveReport, NodeRegistration } from '../../src/db/cluster-repository.js';
import { createClusterRepository } from '../../src/db/cluster-repository.js';
import { withDatabase } from './support.js';

const START = '2026-01-15T10:00:00.000Z';

function registration(id: string, more: Partial<NodeRegistration> = {}): NodeRegistration {
  return { id, role: 'worker', version: '2.0.0', hostname: `${id}.example`, pid: 4242, startedAt: START, internalUrl: null, ...more };
}

function drive(deviceId: string, label: string | null = null): NodeDriveReport {
  return {
    deviceId,
    path: `/dev/${deviceId}`,
    label: `Drive ${deviceId}`,
    state: { media: 'probed', present: label !== null, label, error: null, checkedAt: START },
  };
}

describe('cluster repository', () => {
  it('registers nodes and lists them by name, each with its drives as the latest heartbeat reported them', async () => {
    await withDatabase(async (database) => {
      const repository = createClusterRepository(database);
      await repository.register(registration('tower-b', { role: 'web', internalUrl: 'http://10.0.0.2:8081' }));
      await repository.register(registration('tower-a'));
      assert.equal(await repository.heartbeat('tower-a', [drive('sr1', 'ARCHIVE_1999'), drive('sr0')], new Date('2026-01-15T10:00:05.000Z')), true);

      const nodes = await repository.list();
      assert.deepEqual(
        nodes.map((node) => [node.id, node.role, node.heartbeatAt, node.internalUrl, node.drives.map((entry) => entry.deviceId)]),
        [
          ['tower-a', 'worker', '2026-01-15T10:00:05.000Z', null, ['sr0', 'sr1']],
          ['tower-b', 'web', START, 'http://10.0.0.2:8081', []],
        ],
      );
      assert.deepEqual(nodes[0]?.drives[1], { ...drive('sr1', 'ARCHIVE_1999'), updatedAt: '2026-01-15T10:00:05.000Z' });
      assert.deepEqual(await repository.get('tower-a'), nodes[0]);
      assert.equal(await repository.get('tower-c'), null);
    });
  });

  it('replaces the drives at each heartbeat: a drive that went away leaves the list', async () => {
    await withDatabase(async (database) => {
      const repository = createClusterRepository(database);
      await repository.register(registration('tower-a'));
      await repository.heartbeat('tower-a', [drive('sr0'), drive('sr1')], new Date('2026-01-15T10:00:05.000Z'));
      await repository.heartbeat('tower-a', [drive('sr1', 'NEW_DISC')], new Date('2026-01-15T10:00:10.000Z'));
      const [node] = await repository.list();
      assert.deepEqual(node?.drives, [{ ...drive('sr1', 'NEW_DISC'), updatedAt: '2026-01-15T10:00:10.000Z' }]);
    });
  });

  it('a heartbeat of a node without a row writes nothing and says so', async () => {
    await withDatabase(async (database) => {
      const repository = createClusterRepository(database);
      assert.equal(await repository.heartbeat('ghost', [drive('sr0')], new Date(START)), false);
      assert.deepEqual(await repository.list(), []);
    });
  });

  it('a new process under the same name replaces the old entry and its drives; removing a node removes its drives', async () => {
    await withDatabase(async (database) => {
      const repository = createClusterRepository(database);
      await repository.register(registration('tower-a', { pid: 100 }));
      await repository.heartbeat('tower-a', [drive('sr0')], new Date('2026-01-15T10:00:05.000Z'));
      await repository.register(registration('tower-a', { pid: 200, version: '2.1.0', startedAt: '2026-01-15T11:00:00.000Z' }));
      const [again] = await repository.list();
      assert.deepEqual([again?.pid, again?.version, again?.heartbeatAt, again?.drives], [200, '2.1.0', '2026-01-15T11:00:00.000Z', []]);

      await repository.heartbeat('tower-a', [drive('sr0')], new Date('2026-01-15T11:00:05.000Z'));
      await repository.remove('tower-a');
      assert.deepEqual(await repository.list(), []);
      assert.deepEqual(await database.kysely.selectFrom('cluster_drives').selectAll().execute(), [], 'the drives went with the node');
    });
  });

  it('jobs and archives have a nullable node name', async () => {
    await withDatabase(async (database) => {
      const columns = async (table: 'jobs' | 'archives') =>
        (await database.kysely.introspection.getTables()).find((found) => found.name === table)?.columns.find((column) => column.name === 'node_id');
      for (const table of ['jobs', 'archives'] as const) {
        const column = await columns(table);
        assert.ok(column !== undefined, `${table}.node_id exists`);
        assert.equal(column.isNullable, true);
      }
    });
  });
});
