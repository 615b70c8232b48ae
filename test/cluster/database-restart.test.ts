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
import { sha256File } from '../tools/iso.js';

/**
 * Issue 15, "PostgreSQL restarts": two nodes image and serve while the database restarts at once,
 * and then stays away for longer than a job lease. Every process reconnects by itself (readiness
 * and node heartbeats come back), and the job in flight is never failed: it carries on through the
 * short restart, is paused (map saved, reading stopped) when its lease can no longer be renewed, and
 * continues from the map once the database is back, to an image identical to the disc.
 */
const cluster = useCluster();

const LEASE_MS = Number(FAST_CLUSTER.DISK2ISO_JOBS_LEASE_SECONDS) * 1000;
/** Reads besides the copy: probes of the disc's volume descriptors by the drive watch and each run. */
const PROBE_ALLOWANCE_BYTES = 4 * 1024 * 1024;

interface JobRow {
  status: string;
  node_id: string | null;
  attempts: number;
  bytes_done: number;
}

describe('cluster: PostgreSQL restarts', () => {
  let disc: ClusterDisc;
  let nodeA: ClusterNode;
  let nodeB: ClusterNode;
  let jobId: string;
  let imagePath: string;
  /** Every status the test saw the job in, polled in the background while the database answered. */
  const statuses = new Set<string>();
  let watching = true;
  let watcher: Promise<void> = Promise.resolve();
  let passed = 0;

  before(async () => {
    const c = await cluster.ready();
    disc = await c.disc({ label: 'RESTART_DISC', dataMiB: 40, seed: 31, delayMs: 120 });
    const other = await c.disc({ label: 'OTHER_DISC', dataMiB: 2, seed: 32 });
    nodeA = await c.node({ name: 'node-a', role: 'worker', drives: [disc.loop.path] });
    nodeB = await c.node({ name: 'node-b', role: 'all', drives: [other.loop.path] });
    await Promise.all([nodeA.start(), nodeB.start()]);
    const created = await api(nodeB.url(), 'POST', '/api/v1/jobs', { device: await driveOf(nodeB.url(), 'node-a', disc.loop.path) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.node, 'node-a', 'made on node B for the drive of node A');
    jobId = created.body.id;
    imagePath = created.body.output_file;
    watcher = (async () => {
      while (watching) {
        const rows = await c.query<JobRow>('select status from jobs where id = $1', [jobId]).catch(() => []);
        for (const row of rows) statuses.add(row.status);
        await sleep(100);
      }
    })();
    await eventually('a saved map with progress', async () => (await finishedBytes(`${imagePath}.map`)) > 0);
  });

  after(async () => {
    watching = false;
    await watcher;
    if (passed === 2) return;
    for (const node of [nodeA, nodeB]) if (node !== undefined) process.stderr.write(`# ${node.name} output (tail):\n${node.output().slice(-6000)}\n`);
  });

  const jobRow = async (): Promise<JobRow> => {
    const [row] = await cluster().query<JobRow>('select status, node_id, attempts, bytes_done from jobs where id = $1', [jobId]);
    assert.ok(row, `job ${jobId} is in the database`);
    return row;
  };

  /** Both nodes answer ready again and each one's heartbeat is newer than `since`, as node B lists them. */
  const reconnected = async (since: number): Promise<void> => {
    await eventually('both nodes to be ready again, with heartbeats after the restart', async () => {
      for (const node of [nodeA, nodeB]) if ((await tryGet(node.url(), '/api/v1/health/ready'))?.status !== 200) return false;
      const nodes = (await tryGet(nodeB.url(), '/api/v1/system/nodes'))?.body.nodes ?? [];
      return ['node-a', 'node-b'].every((name) => {
        const view = nodes.find((node: { id: string }) => node.id === name);
        return view?.online === true && Date.parse(view.heartbeat_at) > since;
      });
    });
  };

  it('a restart: every node reconnects by itself and the job goes on', async () => {
    const atRestart = await jobRow();
    assert.equal(atRestart.status, 'running');
    const restartedAt = Date.now();
    await cluster().postgres.restart();
    await reconnected(restartedAt);
    const reconnectMs = Date.now() - restartedAt;
    const onward = await eventually('the job to record progress after the restart', async () => {
      const row = await jobRow();
      return row.status === 'running' && row.bytes_done > atRestart.bytes_done ? row : null;
    });
    assert.equal(onward.node_id, 'node-a');
    assert.ok(!statuses.has('failed'), [...statuses].join(', '));
    process.stderr.write(
      `# database restart: both nodes ready with fresh heartbeats ${reconnectMs} ms after the restart began (attempts ${onward.attempts})\n`,
    );
    passed += 1;
  });

  it('away for longer than a lease: the run pauses with its map saved, and continues from it once the database is back', async () => {
    const c = cluster();
    const outputBefore = nodeA.output().length;
    const stoppedAt = Date.now();
    await c.postgres.stop({ keepData: true });
    assert.notEqual((await tryGet(nodeA.url(), '/api/v1/health/ready'))?.status, 200, 'not ready without its database');
    await eventually('node A to pause its run', () => nodeA.output().slice(outputBefore).includes('the job lease could not be renewed'));
    const pauseMs = Date.now() - stoppedAt;
    // The engine stops after the read in flight and saves the map; from then on nothing is read.
    const readAtPause = await readingStopped(disc.fault);
    const mapAtPause = await finishedBytes(`${imagePath}.map`);
    await sleep(Math.max(3000, stoppedAt + LEASE_MS + 3000 - Date.now()));
    assert.equal((await disc.fault.stats()).readBytes, readAtPause, 'reading stopped while the database was away');
    assert.equal(await finishedBytes(`${imagePath}.map`), mapAtPause, 'the map stands still');
    assert.ok(mapAtPause > 0 && mapAtPause < disc.iso.sizeBytes, `paused part way: ${mapAtPause} of ${disc.iso.sizeBytes}`);

    const startedAt = Date.now();
    await c.postgres.start();
    await reconnected(startedAt);
    const reconnectMs = Date.now() - startedAt;
    const resumed = await eventually('the job to run again', async () => {
      const row = await jobRow();
      return row.status === 'running' && row.attempts > 1 ? row : null;
    });
    const resumeMs = Date.now() - startedAt;
    await disc.fault.setDelay(5);
    await eventually(
      'the job to complete',
      async () => {
        const row = await jobRow();
        assert.notEqual(row.status, 'failed');
        return row.status === 'completed';
      },
      120,
    );
    assert.equal(await sha256File(imagePath), disc.iso.sha256, 'the image is byte-identical to the disc');
    assert.ok(!statuses.has('failed'), `never failed: ${[...statuses].join(', ')}`);
    const logs = await api(nodeB.url(), 'GET', `/api/v1/jobs/${jobId}/logs`);
    const lines: Array<{ level: string; message: string }> = logs.body.logs;
    assert.deepEqual(
      lines.filter((line) => line.level === 'error'),
      [],
    );
    const resuming = lines.map((line) => /^resuming from .*: (\d+) of (\d+) bytes already rescued$/.exec(line.message)).filter((match) => match !== null);
    assert.equal(Number(resuming.at(-1)?.[1]), mapAtPause, 'continued from the map saved at the pause');
    const readBytes = (await disc.fault.stats()).readBytes;
    const retried = readAtPause - mapAtPause;
    assert.ok(readBytes <= disc.iso.sizeBytes + retried + PROBE_ALLOWANCE_BYTES, `read ${readBytes} bytes of a ${disc.iso.sizeBytes}-byte disc`);
    process.stderr.write(
      `# database away ${startedAt - stoppedAt} ms: paused ${pauseMs} ms after the stop, nodes ready ${reconnectMs} ms and the job running again ` +
        `${resumeMs} ms after the start (attempt ${resumed.attempts}); read ${readBytes} bytes for ${disc.iso.sizeBytes}; statuses seen: ${[...statuses].join(', ')}\n`,
    );
    passed += 1;
  });
});
