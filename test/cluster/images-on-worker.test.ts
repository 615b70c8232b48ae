import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { localActor } from '../../src/auth/principal.js';
import { createAuthService } from '../../src/auth/service.js';
import { SIGNATURE_TTL_SECONDS, signCall } from '../../src/cluster/node-calls.js';
import { openPostgres } from '../../src/db/postgres.js';
import { api, useApiKey, waitFor } from '../http/client.js';
import { usePostgres } from '../support/postgres.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type ServeProcess, serve } from '../tools/serve.js';

/**
 * Images that stay on the worker's own disk: the worker writes into an output folder the web
 * instance does not see (its own is another, empty one), and everything a user does with the image
 * goes through the web instance: the download, whole and by range, streamed from the worker over
 * its signed internal endpoint; browsing the image and downloading a file inside it; a
 * verification, run by the worker. The internal endpoint refuses calls without a valid signature,
 * and a worker that is gone is a 503 naming it.
 */
const postgres = usePostgres();

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('cluster: images on the worker’s own disk', () => {
  let work: string;
  let iso: MadeIso;
  let key: string;
  let worker: ServeProcess;
  let web: ServeProcess;
  let webUrl: string;
  let databaseUrl: string;
  const secret = randomBytes(32).toString('hex');
  let archiveId: string;
  let workerInternalUrl: string;

  async function queryDatabase(text: string, values: unknown[]): Promise<Array<Record<string, unknown>>> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return (await client.query(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  const download = (path: string, headers: Record<string, string> = {}) => fetch(`${webUrl}${path}`, { headers: { 'x-api-key': key, ...headers } });

  /** A call to the worker's internal endpoint, signed as another node would (or not, or wrongly). */
  const internal = (path: string, headers: Record<string, string> = {}) => fetch(`${workerInternalUrl}${path}`, { headers });
  const signed = (path: string, options: { node?: string; at?: Date; key?: string } = {}) =>
    signCall(options.key ?? secret, { method: 'GET', node: options.node ?? 'tower-a', path }, options.at ?? new Date());

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-cluster-own-disk-'));
    iso = await makeIso({ dir: work, label: 'OWN_DISK', dataMiB: 6, files: 3, seed: 19 });
    await postgres.ready();
    databaseUrl = await postgres().createDatabase();
    const database = await openPostgres(databaseUrl);
    try {
      const auth = createAuthService({ database, dataDir: join(work, 'setup') });
      await auth.users.add({ name: 'cluster-admin', role: 'admin', password: 'Correct-Horse-42' }, localActor('test'));
      key = (await auth.apiKeys.create({ user: 'cluster-admin', name: 'tests' }, localActor('test'))).key;
    } finally {
      await database.close();
    }
    const common = {
      DISK2ISO_DATABASE_URL: databaseUrl,
      DISK2ISO_DRIVES_DEMO: 'off',
      DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
      DISK2ISO_CLUSTER_HEARTBEAT_SECONDS: '1',
      DISK2ISO_CLUSTER_OFFLINE_AFTER_SECONDS: '5',
      DISK2ISO_CLUSTER_SECRET: secret,
    };
    const dirs = { worker: join(work, 'worker'), workerOutput: join(work, 'worker-output'), web: join(work, 'web'), webOutput: join(work, 'web-output') };
    await Promise.all(Object.values(dirs).map((dir) => mkdir(dir)));
    worker = serve(['--role', 'worker', '--host', '127.0.0.1', '--port', '0'], {
      ...common,
      DISK2ISO_DATA_DIR: dirs.worker,
      DISK2ISO_STORAGE_OUTPUT_DIR: dirs.workerOutput,
      DISK2ISO_CLUSTER_NODE_NAME: 'tower-a',
      DISK2ISO_EXTRA_DEVICES: iso.path,
    });
    web = serve(['--role', 'web', '--port', '0'], {
      ...common,
      DISK2ISO_DATA_DIR: dirs.web,
      DISK2ISO_STORAGE_OUTPUT_DIR: dirs.webOutput,
      DISK2ISO_CLUSTER_NODE_NAME: 'front',
    });
    webUrl = await web.address;
    await worker.address;
    useApiKey(webUrl, key);

    let device: { id: string; has_media: boolean } | undefined;
    await waitFor('the web instance to list the worker’s drive with its disc', async () => {
      const listed = await api(webUrl, 'GET', '/api/v1/devices');
      device = listed.body.devices.find((candidate: { path: string }) => candidate.path === iso.path);
      return device?.has_media === true;
    });
    assert.ok(device);
    const created = await api(webUrl, 'POST', '/api/v1/jobs', { device: device.id, name: 'own-disk' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    let job = created.body;
    await waitFor('the worker to finish the job', async () => {
      job = (await api(webUrl, 'GET', `/api/v1/jobs/${created.body.id}`)).body;
      return job.status === 'completed' || job.status === 'failed';
    });
    assert.equal(job.status, 'completed', JSON.stringify(job));
    assert.ok(job.output_file.startsWith(`${dirs.workerOutput}/`), job.output_file);
    archiveId = job.archive_id;
    const [node] = await queryDatabase('select internal_url from cluster_nodes where id = $1', ['tower-a']);
    assert.ok(typeof node?.internal_url === 'string', 'the worker tells where its internal endpoint is');
    workerInternalUrl = node.internal_url;
  });

  after(async () => {
    for (const process of [web, worker]) {
      if (process === undefined || process.child.exitCode !== null || process.child.signalCode !== null) continue;
      process.child.kill('SIGTERM');
      await process.exited;
    }
    await rm(work, { recursive: true, force: true });
  });

  it('records the worker as the image’s node', async () => {
    const rows = await queryDatabase('select node_id from archives where id = $1', [archiveId]);
    assert.deepEqual(rows, [{ node_id: 'tower-a' }]);
  });

  it('shows cluster.secret nowhere: settings, nodes, and what the processes print', async () => {
    const config = await api(webUrl, 'GET', '/api/v1/system/config');
    assert.equal(config.status, 200);
    assert.equal(config.body.settings.cluster.secret, '********', 'masked like every secret');
    const nodes = await api(webUrl, 'GET', '/api/v1/system/nodes');
    for (const answer of [config, nodes]) assert.ok(!JSON.stringify(answer.body).includes(secret));
    assert.ok(!worker.output().includes(secret) && !web.output().includes(secret));
  });

  it('serves the download through the web instance from the worker, whole, by range and conditionally', async () => {
    const original = await readFile(iso.path);
    const whole = await download(`/api/v1/archives/${archiveId}/download`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('content-length'), String(iso.sizeBytes));
    assert.equal(sha256(Buffer.from(await whole.arrayBuffer())), iso.sha256, 'the image, byte for byte');
    const etag = whole.headers.get('etag') ?? '';
    assert.ok(etag.startsWith('"'), 'the worker’s ETag comes through');

    const part = await download(`/api/v1/archives/${archiveId}/download`, { range: 'bytes=40000-1088575' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 40000-1088575/${iso.sizeBytes}`);
    assert.equal(part.headers.get('content-length'), '1048576');
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(original.subarray(40000, 1088576)), 'the range, byte for byte');

    const unchanged = await download(`/api/v1/archives/${archiveId}/download`, { 'if-none-match': etag });
    assert.equal(unchanged.status, 304);
    const pastTheEnd = await download(`/api/v1/archives/${archiveId}/download`, { range: `bytes=${iso.sizeBytes + 10}-` });
    assert.equal(pastTheEnd.status, 416);
  });

  it('browses the image through the web instance, on the API and the archive page, and serves a file inside it', async () => {
    const root = await api(webUrl, 'GET', `/api/v1/archives/${archiveId}/files?path=data`);
    assert.equal(root.status, 200, JSON.stringify(root.body));
    const file = root.body.entries.find((entry: { type: string }) => entry.type === 'file');
    assert.ok(file, JSON.stringify(root.body));
    const nested = await api(webUrl, 'GET', `/api/v1/archives/${archiveId}/files?path=data/nested`);
    assert.equal(nested.status, 200);

    const content = await download(`/api/v1/archives/${archiveId}/files/content?path=${encodeURIComponent(`data/${file.name}`)}`);
    assert.equal(content.status, 200);
    const bytes = Buffer.from(await content.arrayBuffer());
    assert.equal(bytes.length, file.size);
    assert.equal(content.headers.get('content-security-policy'), "default-src 'none'; sandbox", 'the worker’s sandbox comes through');
    const tail = await download(`/api/v1/archives/${archiveId}/files/content?path=${encodeURIComponent(`data/${file.name}`)}`, { range: 'bytes=-1000' });
    assert.equal(tail.status, 206);
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(bytes.length - 1000)));

    const tar = await download(`/api/v1/archives/${archiveId}/files/archive?path=data`);
    assert.equal(tar.status, 200);
    assert.equal(tar.headers.get('content-type'), 'application/x-tar');
    assert.ok((await tar.arrayBuffer()).byteLength > file.size);

    const page = await download(`/archive/${archiveId}?path=data`);
    assert.equal(page.status, 200);
    assert.ok((await page.text()).includes(file.name), 'the archive page lists the folder the worker read');
  });

  it('verifies on request on the worker, which holds the image', async () => {
    const asked = await api(webUrl, 'POST', `/api/v1/archives/${archiveId}/verify`);
    assert.equal(asked.status, 202, JSON.stringify(asked.body));
    const taskId: string = asked.body.task.id;
    let task = asked.body.task;
    await waitFor('the verification to finish', async () => {
      task = (await api(webUrl, 'GET', `/api/v1/archives/verification-tasks/${taskId}`)).body;
      return task.status === 'completed' || task.status === 'failed';
    });
    assert.equal(task.status, 'completed', JSON.stringify(task));
    assert.equal(task.ok, true, JSON.stringify(task));
    // The web instance runs no verification worker: only the worker, which holds the image, can have taken the task.
    assert.deepEqual(await queryDatabase('select attempts from archive_verification_tasks where id = $1', [taskId]), [{ attempts: 1 }]);
    const history = await api(webUrl, 'GET', `/api/v1/archives/${archiveId}/verifications`);
    const manual = history.body.verifications.filter((entry: { requested_by: string | null }) => entry.requested_by === 'cluster-admin');
    assert.equal(manual.length, 1, JSON.stringify(history.body));
    assert.equal(manual[0].ok, true);
    const archive = await api(webUrl, 'GET', `/api/v1/archives/${archiveId}`);
    assert.equal(archive.body.status, 'ok', 'the web instance did not take the image for missing');
  });

  it('the internal endpoint answers only calls signed for this node, for archives it holds, by id', async () => {
    const path = `/internal/v1/archives/${archiveId}/image`;
    const good = await internal(path, signed(path));
    assert.equal(good.status, 200);
    assert.equal(sha256(Buffer.from(await good.arrayBuffer())), iso.sha256);

    const refusals: Array<[string, Record<string, string>]> = [
      ['no signature', {}],
      ['another key', signed(path, { key: randomBytes(32).toString('hex') })],
      ['signed for another node', signed(path, { node: 'tower-b' })],
      ['expired', signed(path, { at: new Date(Date.now() - (SIGNATURE_TTL_SECONDS + 5) * 1000) })],
      ['too far ahead', signed(path, { at: new Date(Date.now() + 10 * 60_000) })],
      ['signed for another path', signed(`/internal/v1/archives/${archiveId}/files`)],
    ];
    for (const [what, headers] of refusals) {
      const refused = await internal(path, headers);
      assert.equal(refused.status, 401, what);
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'node_signature_invalid', what);
    }

    const traversal = '/internal/v1/archives/..%2F..%2F..%2Fetc%2Fpasswd/image';
    assert.equal((await internal(traversal, signed(traversal))).status, 400, 'an id is an id, never a path');
    const outside = `/internal/v1/archives/${archiveId}/files/content?path=${encodeURIComponent('../../../../etc/passwd')}`;
    const outsideAnswer = await internal(outside, signed(outside));
    assert.ok([400, 404].includes(outsideAnswer.status), `a path inside the image stays inside it (${outsideAnswer.status})`);
    assert.notEqual((await outsideAnswer.text()).includes('root:'), true);
    const unknown = '/internal/v1/archives/archive_00000000000000000000/image';
    assert.equal((await internal(unknown, signed(unknown))).status, 404);

    const onWeb = await fetch(`${webUrl}${path}`, { headers: signed(path, { node: 'front' }) });
    assert.equal(onWeb.status, 404, 'a web instance holds no images and has no internal endpoint');
  });

  it('answers 503 naming the node once the worker is gone', async () => {
    worker.child.kill('SIGTERM');
    assert.deepEqual(await worker.exited, { code: 0, signal: null }, worker.output());
    const gone = await download(`/api/v1/archives/${archiveId}/download`);
    assert.equal(gone.status, 503);
    const body = (await gone.json()) as { error: { code: string; details: { node: string } } };
    assert.equal(body.error.code, 'node_offline');
    assert.equal(body.error.details.node, 'tower-a');
    const listing = await api(webUrl, 'GET', `/api/v1/archives/${archiveId}/files`);
    assert.equal(listing.status, 503);
    assert.equal(listing.body.error.code, 'node_offline');
  });
});
