import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { api } from '../http/client.js';
import {
  type ClusterDisc,
  type ClusterNode,
  FAST_CLUSTER,
  driveOf,
  eventually,
  finishedBytes,
  readingStopped,
  tryGet,
  useCluster,
} from '../support/cluster-processes.js';
import type { NetworkHost } from '../support/netns.js';
import { sha256File } from '../tools/iso.js';

/**
 * Issue 15, "a worker is cut off from the database": node A runs in a network namespace of its
 * own and reaches PostgreSQL through its link; node B runs beside the database. The link is taken
 * down while node A images: node A pauses the run before its lease runs out (map saved, nothing
 * more read from the disc), node B recovers the expired lease but never runs the job (it reads node
 * A's drive), and once the link is back node A continues from the map to an identical image.
 */
const cluster = useCluster({ hosts: ['worker-a'] });

const LEASE_MS = Number(FAST_CLUSTER.DISK2ISO_JOBS_LEASE_SECONDS) * 1000;
/** Reads besides the copy: probes of the disc's volume descriptors by the drive watch and each run. */
const PROBE_ALLOWANCE_BYTES = 4 * 1024 * 1024;

interface JobRow {
  status: string;
  node_id: string | null;
  lease_owner: string | null;
  attempts: number;
}

describe('cluster: a worker cut off from the database', () => {
  let host: NetworkHost;
  let disc: ClusterDisc;
  let nodeA: ClusterNode;
  let nodeB: ClusterNode;
  let passed = false;

  before(async () => {
    const c = await cluster.ready();
    const workerHost = c.hosts.get('worker-a');
    assert.ok(workerHost);
    host = workerHost;
    disc = await c.disc({ label: 'CUT_OFF_DISC', dataMiB: 40, seed: 41, delayMs: 120 });
    const other = await c.disc({ label: 'OTHER_DISC', dataMiB: 2, seed: 42 });
    nodeA = await c.node({ name: 'node-a', role: 'worker', drives: [disc.loop.path], host });
    nodeB = await c.node({ name: 'node-b', role: 'all', drives: [other.loop.path] });
    await Promise.all([nodeA.start(), nodeB.start()]);
  });

  after(async () => {
    // The link back up, whatever happened: the namespace is removed with the cluster.
    host?.restore();
    if (passed) return;
    for (const node of [nodeA, nodeB]) if (node !== undefined) process.stderr.write(`# ${node.name} output (tail):\n${node.output().slice(-8000)}\n`);
  });

  it('pauses the run before its lease runs out, no other node runs the job, and it continues once the link is back', async () => {
    const c = cluster();
    const jobRow = async (id: string): Promise<JobRow> => {
      const [row] = await c.query<JobRow>('select status, node_id, lease_owner, attempts from jobs where id = $1', [id]);
      assert.ok(row, `job ${id} is in the database`);
      return row;
    };
    assert.match(nodeA.url(), new RegExp(`^http://${host.address.replace(/\./g, '\\.')}:\\d+$`), 'node A listens on its own address');
    const created = await api(nodeB.url(), 'POST', '/api/v1/jobs', { device: await driveOf(nodeB.url(), 'node-a', disc.loop.path) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.node, 'node-a', 'made on node B for the drive of node A');
    const jobId: string = created.body.id;
    const imagePath: string = created.body.output_file;
    const mapPath = `${imagePath}.map`;
    await eventually('a saved map with progress', async () => (await finishedBytes(mapPath)) > 0);
    const running = await jobRow(jobId);
    assert.equal(running.status, 'running');
    assert.equal(running.node_id, 'node-a');
    const owner = running.lease_owner;

    const outputBefore = nodeA.output().length;
    const cutAt = Date.now();
    host.cut();
    await eventually('node A to pause its run', () => nodeA.output().slice(outputBefore).includes('the job lease could not be renewed'));
    const pauseMs = Date.now() - cutAt;
    // The engine stops after the read in flight and saves the map; from then on nothing is read.
    const readAtPause = await readingStopped(disc.fault);
    const mapAtPause = await finishedBytes(mapPath);
    assert.ok(mapAtPause > 0 && mapAtPause < disc.iso.sizeBytes, `paused part way: ${mapAtPause} of ${disc.iso.sizeBytes}`);

    // Node B recovers the lease once it ran out; the job then waits for its own node.
    const seen = new Set<string>();
    const watchUntil = Date.now() + 2 * LEASE_MS;
    while (Date.now() < watchUntil) {
      const row = await jobRow(jobId);
      seen.add(`${row.status} on ${row.node_id} by ${row.lease_owner === owner ? 'node A' : row.lease_owner}`);
      await sleep(200);
    }
    assert.ok(seen.has('queued on node-a by null'), `the expired lease was recovered: ${[...seen].join('; ')}`);
    for (const state of seen) assert.ok(['running on node-a by node A', 'queued on node-a by null'].includes(state), `never another node's: ${state}`);
    assert.equal((await disc.fault.stats()).readBytes, readAtPause, 'nothing read from the disc while the link was down');
    assert.equal(await finishedBytes(mapPath), mapAtPause, 'the map stands still');
    const nodes = (await tryGet(nodeB.url(), '/api/v1/system/nodes'))?.body.nodes ?? [];
    assert.equal(nodes.find((node: { id: string }) => node.id === 'node-a')?.online, false, 'node B shows node A offline');

    const restoredAt = Date.now();
    host.restore();
    const resumed = await eventually('node A to run the job again', async () => {
      const row = await jobRow(jobId);
      return row.status === 'running' ? row : null;
    });
    const resumeMs = Date.now() - restoredAt;
    assert.equal(resumed.attempts, 2);
    assert.equal(resumed.lease_owner, owner, "node A's own runner took it up again");
    await disc.fault.setDelay(5);
    await eventually(
      'the job to complete',
      async () => {
        const row = await jobRow(jobId);
        assert.notEqual(row.status, 'failed');
        return row.status === 'completed';
      },
      120,
    );
    assert.equal(await sha256File(imagePath), disc.iso.sha256, 'the image is byte-identical to the disc');
    const logs = await api(nodeB.url(), 'GET', `/api/v1/jobs/${jobId}/logs`);
    const lines: Array<{ level: string; message: string }> = logs.body.logs;
    assert.deepEqual(
      lines.filter((line) => line.level === 'error'),
      [],
    );
    const resuming = lines.map((line) => /^resuming from .*: (\d+) of (\d+) bytes already rescued$/.exec(line.message)).filter((match) => match !== null);
    const resumedAt = resuming.map((match) => Number(match[1]));
    assert.equal(resumedAt[0], mapAtPause, 'continued from the map saved at the pause');
    // A claim sent while the link was down may reach the database only after it is back, with a lease
    // that ran out on the way: that run is stopped and continued again, each time from its map.
    for (let index = 1; index < resumedAt.length; index += 1) {
      assert.ok((resumedAt[index] ?? 0) >= (resumedAt[index - 1] ?? 0), `every later run continued from the map: ${resumedAt.join(', ')}`);
    }
    const readBytes = (await disc.fault.stats()).readBytes;
    const retried = readAtPause - mapAtPause;
    assert.ok(
      readBytes <= disc.iso.sizeBytes + retried + PROBE_ALLOWANCE_BYTES,
      `read ${readBytes} bytes of a ${disc.iso.sizeBytes}-byte disc; ${retried} read before the pause were not in the map`,
    );
    await eventually('node A online again', async () => {
      const view = (await tryGet(nodeB.url(), '/api/v1/system/nodes'))?.body.nodes.find((node: { id: string }) => node.id === 'node-a');
      return view?.online === true;
    });
    process.stderr.write(
      `# worker cut off: paused ${pauseMs} ms after the cut (lease ${LEASE_MS} ms), running again ${resumeMs} ms after the link came back; ` +
        `read ${readBytes} bytes for ${disc.iso.sizeBytes} (${retried} read but not yet in the map at the pause)\n`,
    );
    passed = true;
  });
});
