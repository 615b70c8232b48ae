import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { localActor } from '../../src/auth/principal.js';
import { createAuthService } from '../../src/auth/service.js';
import { openPostgres } from '../../src/db/postgres.js';
import { api, useApiKey, waitFor } from '../http/client.js';
import { type LiveClient, followEvents } from '../http/live-client.js';
import { usePostgres } from '../support/postgres.js';
import { type MadeIso, makeIso, sha256File } from '../tools/iso.js';
import { type ServeProcess, serve } from '../tools/serve.js';

/**
 * The cluster's split roles as real processes on one PostgreSQL database: a worker that owns a
 * drive and serves no pages, and a web instance that owns none. Everything a user does goes through
 * the web instance: it lists the worker's drive under the node's name, makes a job for it, which
 * the worker's dispatch takes and runs, shows the run live, and serves the image from the shared
 * output folder.
 */
const postgres = usePostgres();

describe('cluster: a web instance and a worker', () => {
  let work: string;
  let iso: MadeIso;
  let outputDir: string;
  let key: string;
  let worker: ServeProcess;
  let web: ServeProcess;
  let webUrl: string;
  let workerUrl: string;
  let live: LiveClient | undefined;
  let databaseUrl: string;

  async function queryDatabase(text: string, values: unknown[]): Promise<unknown[]> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return (await client.query(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-cluster-roles-'));
    outputDir = join(work, 'shared-output');
    await mkdir(outputDir);
    iso = await makeIso({ dir: work, label: 'CLUSTER_ROLES', dataMiB: 8, files: 3, seed: 15 });
    await postgres.ready();
    const url = await postgres().createDatabase();
    databaseUrl = url;
    const database = await openPostgres(url);
    try {
      const auth = createAuthService({ database, dataDir: join(work, 'setup') });
      await auth.users.add({ name: 'cluster-admin', role: 'admin', password: 'Correct-Horse-42' }, localActor('test'));
      key = (await auth.apiKeys.create({ user: 'cluster-admin', name: 'tests' }, localActor('test'))).key;
    } finally {
      await database.close();
    }
    const common = {
      DISK2ISO_DATABASE_URL: url,
      DISK2ISO_STORAGE_OUTPUT_DIR: outputDir,
      DISK2ISO_DRIVES_DEMO: 'off',
      DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
      DISK2ISO_CLUSTER_HEARTBEAT_SECONDS: '1',
      DISK2ISO_CLUSTER_OFFLINE_AFTER_SECONDS: '5',
      // One folder for both: the web instance reads the worker's images itself (no cluster.secret, so nothing could be streamed).
      DISK2ISO_CLUSTER_SHARED_OUTPUT: 'true',
    };
    const dataDirs = { worker: join(work, 'worker'), web: join(work, 'web') };
    await Promise.all(Object.values(dataDirs).map((dir) => mkdir(dir)));
    worker = serve(['--role', 'worker', '--port', '0'], {
      ...common,
      DISK2ISO_DATA_DIR: dataDirs.worker,
      DISK2ISO_CLUSTER_NODE_NAME: 'tower-a',
      DISK2ISO_EXTRA_DEVICES: iso.path,
    });
    web = serve(['--role', 'web', '--port', '0'], { ...common, DISK2ISO_DATA_DIR: dataDirs.web, DISK2ISO_CLUSTER_NODE_NAME: 'front' });
    [workerUrl, webUrl] = await Promise.all([worker.address, web.address]);
    useApiKey(webUrl, key);
    useApiKey(workerUrl, key);
  });

  after(async () => {
    live?.close();
    for (const process of [web, worker]) {
      if (process === undefined) continue;
      process.child.kill('SIGTERM');
      await process.exited;
    }
    await rm(work, { recursive: true, force: true });
  });

  it('lists the worker’s drive under its node, runs a job made on the web instance there, shows it live, and serves the image', async () => {
    let device: { id: string; node: string | null; has_media: boolean } | undefined;
    await waitFor('the web instance to list the worker’s drive with its disc', async () => {
      const listed = await api(webUrl, 'GET', '/api/v1/devices');
      device = listed.body.devices.find((candidate: { path: string }) => candidate.path === iso.path);
      return device?.has_media === true;
    });
    assert.ok(device);
    assert.match(device.id, /^tower-a\.file-[0-9a-f]{10}$/, 'the drive’s id names its node');

    live = await followEvents(webUrl, { 'x-api-key': key });
    const created = await api(webUrl, 'POST', '/api/v1/jobs', { device: device.id, name: 'cluster-roles' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.node, 'tower-a');
    assert.equal(created.body.node_online, true, 'the job’s node is online');
    assert.equal(created.body.device_id, device.id);
    const jobId: string = created.body.id;

    let job = created.body;
    await waitFor('the worker to finish the job', async () => {
      job = (await api(webUrl, 'GET', `/api/v1/jobs/${jobId}`)).body;
      return job.status === 'completed' || job.status === 'failed';
    });
    assert.equal(job.status, 'completed', JSON.stringify(job));
    assert.equal(await sha256File(job.output_file), iso.sha256, 'the image is the disc, byte for byte');
    const messages = await queryDatabase("select name, state from pgboss.job where data->>'jobId' = $1", [jobId]);
    assert.deepEqual(messages, [{ name: 'disk2iso-node-tower-a', state: 'completed' }], 'the job went to its node through the dispatch');

    const client = live;
    await waitFor('the web instance’s live stream to show the worker’s run', () =>
      client.messages.some((message) => message.job_id === jobId && message.type === 'job_finished'),
    );
    const types = new Set(client.messages.filter((message) => message.job_id === jobId).map((message) => message.type));
    assert.ok(types.has('job_created') && types.has('job_update') && types.has('job_finished'), [...types].join(', '));

    const download = await fetch(`${webUrl}/api/v1/archives/${job.archive_id}/download`, { headers: { 'x-api-key': key } });
    assert.equal(download.status, 200);
    const served = createHash('sha256')
      .update(Buffer.from(await download.arrayBuffer()))
      .digest('hex');
    assert.equal(served, iso.sha256, 'the web instance serves the worker’s image from the shared folder');
  });

  it('the worker serves no pages and no API; the nodes list shows both with their roles', async () => {
    const refused = await api(workerUrl, 'GET', '/api/v1/jobs');
    assert.equal(refused.status, 404);
    const nodes = await api(webUrl, 'GET', '/api/v1/system/nodes');
    const roles = Object.fromEntries(nodes.body.nodes.map((node: { id: string; role: string }) => [node.id, node.role]));
    assert.deepEqual(roles, { front: 'web', 'tower-a': 'worker' });
  });

  it('both stop cleanly; a worker that stopped leaves the list, and its drive leaves the web instance’s', async () => {
    worker.child.kill('SIGTERM');
    assert.deepEqual(await worker.exited, { code: 0, signal: null }, worker.output());
    const nodes = await api(webUrl, 'GET', '/api/v1/system/nodes');
    assert.deepEqual(
      nodes.body.nodes.map((node: { id: string }) => node.id),
      ['front'],
    );
    const devices = await api(webUrl, 'GET', '/api/v1/devices');
    assert.deepEqual(devices.body.devices, []);
    // Within a second (the web instance reads the nodes' state at most once a second for its job lists).
    let shown: unknown[] = [];
    await waitFor('the job to show that its node is gone', async () => {
      shown = (await api(webUrl, 'GET', '/api/v1/jobs')).body.jobs.map((job: { node: string; node_online: boolean }) => [job.node, job.node_online]);
      return JSON.stringify(shown) === JSON.stringify([['tower-a', false]]);
    });
    assert.deepEqual(shown, [['tower-a', false]]);
    web.child.kill('SIGTERM');
    assert.deepEqual(await web.exited, { code: 0, signal: null }, web.output());
  });
});
