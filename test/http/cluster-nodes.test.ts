import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClusterRepository } from '../../src/db/cluster-repository.js';
import { openDataDirDatabase } from '../support/database.js';
import { makeIso } from '../tools/iso.js';
import { type TestServer, startTestServer, waitFor } from './support.js';

describe('GET /api/v1/system/nodes', () => {
  let work: string;
  let service: TestServer;
  let discPath: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-nodes-'));
    const disc = await makeIso({ dir: work, label: 'NODE_DISC', dataMiB: 1, files: 1, seed: 31 });
    discPath = disc.path;
    service = await startTestServer({ devices: [disc.path], listen: false });
  });
  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
  });

  const nodes = async () => {
    const answer = await service.server.app.inject({ method: 'GET', url: '/api/v1/system/nodes', headers: service.authHeaders });
    assert.equal(answer.statusCode, 200, answer.body);
    return answer.json().nodes as Array<Record<string, unknown> & { drives: Array<Record<string, unknown> & { state: Record<string, unknown> }> }>;
  };

  it('the embedded mode shows its one node: this process, online, with the drive it watches', async () => {
    const [own, ...others] = await nodes();
    assert.deepEqual(others, []);
    assert.deepEqual(
      [own?.id, own?.role, own?.version, own?.version_mismatch, own?.online, own?.self, own?.pid],
      [service.server.config.cluster.node_name, 'all', '0.0.0-test', false, true, true, process.pid],
    );
    assert.equal(own?.drives.length, 1);
    await waitFor('the drive in a heartbeat with its disc', async () => (await nodes())[0]?.drives[0]?.state.label === 'NODE_DISC');
    const [drive] = (await nodes())[0]?.drives ?? [];
    assert.deepEqual([drive?.path, drive?.state.present, drive?.state.error], [discPath, true, null]);
  });

  it('lists another node too: its version flagged, offline once its heartbeat is old', async () => {
    const database = await openDataDirDatabase(service.dataDir);
    try {
      const repository = createClusterRepository(database);
      await repository.register({
        id: 'tower-old',
        role: 'worker',
        version: '1.9.0',
        hostname: 'tower-old.lan',
        pid: 77,
        startedAt: '2000-01-01T00:00:00.000Z',
        internalUrl: null,
      });
      const listed = await nodes();
      const old = listed.find((node) => node.id === 'tower-old');
      assert.deepEqual([old?.role, old?.version_mismatch, old?.online, old?.self, old?.drives], ['worker', true, false, false, []]);
      assert.ok(Number(old?.heartbeat_age_seconds) > 15);
      assert.deepEqual(
        listed.map((node) => node.id),
        [...listed.map((node) => String(node.id))].sort(),
        'by name',
      );
      await repository.remove('tower-old');
    } finally {
      await database.close();
    }
  });
});
