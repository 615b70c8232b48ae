import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { api } from '../http/client.js';
import { type ClusterDisc, type ClusterNode, FAST_CLUSTER, driveOf, eventually, finishedBytes, tryGet, useCluster } from '../support/cluster-processes.js';
import { sha256File } from '../tools/iso.js';

/**
 * Issue 15, "a worker is killed mid-job": two nodes on one PostgreSQL database, each with a drive
 * of its own. Node A is killed (SIGKILL) while it images; node B shows it offline once its heartbeat
 * is older than cluster.offline_after_seconds, recovers the job's lease (its holder is dead) but
 * never runs it (the job reads node A's drive); node A, started again, continues the job from its
 * rescue map to an image identical to the disc.
 */
const cluster = useCluster();

const OFFLINE_AFTER_MS = Number(FAST_CLUSTER.DISK2ISO_CLUSTER_OFFLINE_AFTER_SECONDS) * 1000;
const LEASE_MS = Number(FAST_CLUSTER.DISK2ISO_JOBS_LEASE_SECONDS) * 1000;
/** Reads besides the copy: probes of the disc's volume descriptors by each start's drive watch and each run. */
const PROBE_ALLOWANCE_BYTES = 4 * 1024 * 1024;

interface JobRow {
  status: string;
  node_id: string | null;
  lease_owner: string | null;
  attempts: number;
}

describe('cluster: a worker killed mid-job', () => {
  let discA: ClusterDisc;
  let nodeA: ClusterNode;
  let nodeB: ClusterNode;
  /** Set by the test once it passed: a failed one leaves the nodes' output in the report. */
  let passed = false;

  before(async () => {
    const c = await cluster.ready();
    discA = await c.disc({ label: 'NODE_A_DISC', dataMiB: 40, seed: 21, delayMs: 60 });
    const discB = await c.disc({ label: 'NODE_B_DISC', dataMiB: 2, seed: 22 });
    nodeA = await c.node({ name: 'node-a', role: 'worker', drives: [discA.loop.path] });
    nodeB = await c.node({ name: 'node-b', role: 'all', drives: [discB.loop.path] });
    await Promise.all([nodeA.start(), nodeB.start()]);
  });

  after(async () => {
    if (passed) return;
    for (const node of [nodeA, nodeB]) {
      if (node !== undefined) process.stderr.write(`# ${node.name} output (tail):\n${node.output().slice(-4000)}\n`);
    }
  });

  it('shows the node offline, leaves its job alone on the other node, and continues it from the map when the node is back', async () => {
    const c = cluster();
    const jobRow = async (id: string): Promise<JobRow> => {
      const [row] = await c.query<JobRow>('select status, node_id, lease_owner, attempts from jobs where id = $1', [id]);
      assert.ok(row, `job ${id} is in the database`);
      return row;
    };
    const created = await api(nodeB.url(), 'POST', '/api/v1/jobs', { device: await driveOf(nodeB.url(), 'node-a', discA.loop.path) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.node, 'node-a', 'made on node B for the drive of node A');
    const jobId: string = created.body.id;
    const imagePath: string = created.body.output_file;
    const mapPath = `${imagePath}.map`;
    await eventually('a saved map with progress', async () => (await finishedBytes(mapPath)) > 0);
    const running = await jobRow(jobId);
    assert.equal(running.status, 'running');
    assert.equal(running.node_id, 'node-a', 'the job names the node whose drive it reads');
    const owner = running.lease_owner;
    assert.notEqual(owner, null, 'node A holds its lease');
    const before = (await tryGet(nodeB.url(), '/api/v1/system/nodes'))?.body.nodes.find((node: { id: string }) => node.id === 'node-a');
    assert.equal(before?.online, true, 'node A is online before the kill');

    const killedAt = Date.now();
    assert.equal((await nodeA.kill('SIGKILL')).signal, 'SIGKILL');
    const readAtKill = (await discA.fault.stats()).readBytes;
    const mapAtKill = await finishedBytes(mapPath);
    assert.ok(mapAtKill > 0 && mapAtKill < discA.iso.sizeBytes, `killed part way: ${mapAtKill} of ${discA.iso.sizeBytes}`);

    // Node B's view: node A goes offline once its last heartbeat is older than offline_after_seconds.
    const offline = await eventually('node A to show offline on node B', async () => {
      const nodes = await tryGet(nodeB.url(), '/api/v1/system/nodes');
      const nodeAView = nodes?.body.nodes.find((node: { id: string }) => node.id === 'node-a');
      return nodeAView?.online === false ? { view: nodeAView, all: nodes?.body.nodes } : null;
    });
    const offlineMs = Date.now() - killedAt;
    assert.ok(Date.parse(offline.view.heartbeat_at) <= killedAt, 'no heartbeat after the kill');
    assert.ok(offline.view.heartbeat_age_seconds * 1000 >= OFFLINE_AFTER_MS - 1000, JSON.stringify(offline.view));
    assert.equal(offline.all.find((node: { id: string }) => node.id === 'node-b')?.online, true, 'node B stays online');
    const shown = await api(nodeB.url(), 'GET', `/api/v1/jobs/${jobId}`);
    assert.equal(shown.body.node, 'node-a', 'the job names the node now shown offline');

    // Node B recovers the lease of the dead process, and the job waits for its own node.
    const released = await eventually('the job back in the queue', async () => {
      const row = await jobRow(jobId);
      return row.status === 'queued' ? row : null;
    });
    assert.deepEqual(released, { status: 'queued', node_id: 'node-a', lease_owner: null, attempts: 1 });
    const seen = new Set<string>();
    const watchUntil = Date.now() + 2 * LEASE_MS;
    while (Date.now() < watchUntil) {
      const row = await jobRow(jobId);
      seen.add(`${row.status} on ${row.node_id} by ${row.lease_owner}`);
      await sleep(200);
    }
    assert.deepEqual([...seen], ['queued on node-a by null'], 'no other node claims the job for two leases');
    assert.equal((await discA.fault.stats()).readBytes, readAtKill, "nothing read node A's disc while node A was down");

    const restartedAt = Date.now();
    await nodeA.start();
    await discA.fault.setDelay(5);
    const resumed = await eventually('node A to run the job again', async () => {
      const row = await jobRow(jobId);
      return row.status !== 'queued' ? row : null;
    });
    const resumeMs = Date.now() - restartedAt;
    assert.ok(resumed.lease_owner !== null && resumed.lease_owner !== owner, 'the new process of node A took it up');
    const done = await eventually(
      'the job to complete',
      async () => {
        const row = await jobRow(jobId);
        return row.status === 'completed' ? row : null;
      },
      120,
    );
    assert.equal(done.node_id, 'node-a');
    assert.equal(done.attempts, 2);
    assert.equal(await sha256File(imagePath), discA.iso.sha256, 'the image is byte-identical to the disc');

    const logs = await api(nodeB.url(), 'GET', `/api/v1/jobs/${jobId}/logs`);
    const messages: string[] = logs.body.logs.map((line: { message: string }) => line.message);
    const resuming = messages.map((message) => /^resuming from .*: (\d+) of (\d+) bytes already rescued$/.exec(message)).find((match) => match !== null);
    assert.ok(resuming, messages.join('\n'));
    assert.equal(Number(resuming[1]), mapAtKill, 'continued from exactly what the map held at the kill');
    const readBytes = (await discA.fault.stats()).readBytes;
    const retried = readAtKill - mapAtKill;
    assert.ok(
      readBytes <= discA.iso.sizeBytes + retried + PROBE_ALLOWANCE_BYTES,
      `read ${readBytes} bytes of a ${discA.iso.sizeBytes}-byte disc; ${retried} read before the kill were not in the map yet`,
    );
    process.stderr.write(
      `# worker killed: offline shown after ${offlineMs} ms (offline_after ${OFFLINE_AFTER_MS} ms), resumed ${resumeMs} ms after the start, ` +
        `read ${readBytes} bytes for ${discA.iso.sizeBytes} (re-read at most ${retried})\n`,
    );
    passed = true;
  });
});
