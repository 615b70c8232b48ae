import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Browser, Locator, Page } from 'playwright-core';
import { localActor } from '../../src/auth/principal.js';
import { createAuthService } from '../../src/auth/service.js';
import { openPostgres } from '../../src/db/postgres.js';
import { TEST_PASSWORD, api, useApiKey, waitFor } from '../http/client.js';
import { type Certificates, NGINX_CLUSTER_UPSTREAM, NGINX_SITE, acceptsTls, makeCertificates, renderShipped } from '../support/nginx-site.js';
import { NGINX_HTTP_PART, type NginxProcess, freePorts, startNginx } from '../support/nginx-upstream.js';
import { usePostgres } from '../support/postgres.js';
import { sha256File } from '../tools/iso.js';
import { type ServeProcess, serve } from '../tools/serve.js';
import { type WatchedContext, launchBrowser, signInThroughForm, watchedContext } from '../web/support/browser.js';
import { type TestDisc, insertTestDisc } from '../web/support/discs.js';

/**
 * Issue 15's web-instance failure with real processes: one PostgreSQL, a worker whose drive is a
 * slow loop device, two web instances A and B behind nginx with the shipped site and the shipped
 * upstream block for several instances, and Chromium signed in through nginx watching a job on
 * the worker's drive. Web A is killed (SIGKILL), then restarted, then B is killed: the second kill
 * always hits the instance holding the page's event stream (with A dead, the stream can only be on
 * B), the first does when nginx had chosen A. Through both, the page stays signed in, its own
 * EventSource reconnects through nginx to the surviving instance, and the progress keeps moving
 * until the job completes with an image identical to the disc.
 */
const postgres = usePostgres();

const ADMIN = 'failover-admin';
const NODE = 'tower-a';
/** Slow enough that the job outlasts both kills (it is made fast once they are over), fast enough that progress moves every second. */
const SLOW_BYTES_PER_SECOND = 96 * 1024;

/**
 * Records in the page what its EventSource sees: each one created, each open and error, and the
 * progress of every job_update, with the time (the machine's clock, the same as the test's).
 */
const RECORD_STREAM = `
  window.__stream = [];
  const NativeEventSource = window.EventSource;
  window.EventSource = class extends NativeEventSource {
    constructor(url, init) {
      super(url, init);
      window.__stream.push({ kind: 'created', at: Date.now() });
      this.addEventListener('open', () => window.__stream.push({ kind: 'open', at: Date.now() }));
      this.addEventListener('error', () => window.__stream.push({ kind: 'error', at: Date.now(), closed: this.readyState === NativeEventSource.CLOSED }));
      this.addEventListener('job_update', (event) => {
        const progress = JSON.parse(event.data).data?.progress;
        if (typeof progress === 'number') window.__stream.push({ kind: 'progress', at: Date.now(), progress });
      });
    }
  };
`;

interface StreamRecord {
  kind: 'created' | 'open' | 'error' | 'progress';
  at: number;
  closed?: boolean;
  progress?: number;
}

describe('cluster: a web instance is killed under a signed-in browser', () => {
  let work: string;
  let disc: TestDisc | undefined;
  let browser: Browser | undefined;
  let watched: WatchedContext;
  let page: Page;
  let card: Locator;
  let jobId: string;
  let nginx: NginxProcess | undefined;
  let certificates: Certificates;
  let origin: string;
  let httpsPort: number;
  let accessLog: string;
  let key: string;
  let databaseUrl: string;
  const ports = { a: 0, b: 0 };
  let startWeb: (name: 'a' | 'b') => ServeProcess;
  const webs: Partial<Record<'a' | 'b', ServeProcess>> = {};
  let worker: ServeProcess | undefined;

  async function jobStatus(): Promise<string | undefined> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return (await client.query<{ status: string }>('select status from jobs where id = $1', [jobId])).rows[0]?.status;
    } finally {
      await client.end();
    }
  }

  async function streamRecords(): Promise<StreamRecord[]> {
    return (await page.evaluate('window.__stream')) as StreamRecord[];
  }

  async function progressShown(): Promise<number> {
    return Number(await card.locator('progress[data-field="progress"]').getAttribute('value'));
  }

  /** Lines of nginx's access log: `TIME "REQUEST" STATUS upstream=ADDRESSES`. */
  async function accessLines(): Promise<string[]> {
    return (await readFile(accessLog, 'utf8').catch(() => '')).split('\n').filter((line) => line !== '');
  }

  /** The event streams nginx has finished passing on, with the instances it tried for each. */
  async function endedStreams(): Promise<Array<{ endedAt: number; upstream: string }>> {
    return (await accessLines()).flatMap((line) => {
      const match = /^(\d+\.\d+) "GET \/api\/v1\/events [^"]*" 200 upstream=(.*)$/.exec(line);
      return match ? [{ endedAt: Number(match[1]) * 1000, upstream: match[2] ?? '' }] : [];
    });
  }

  function getThroughNginx(path: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const request = httpsRequest({ host: '127.0.0.1', port: httpsPort, path, ca: certificates.ca, agent: false }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      });
      request.on('error', reject);
      request.end();
    });
  }

  /** Kills web instance `name` outright and measures how the page's live stream and progress carry on. */
  async function killAndFollow(name: 'a' | 'b'): Promise<{ streamWasThere: boolean; reconnectMs: number | null; nextProgressMs: number }> {
    const instance = webs[name];
    assert.ok(instance);
    const progressBefore = await progressShown();
    const killedAt = Date.now();
    instance.child.kill('SIGKILL');
    assert.deepEqual(await instance.exited, { code: null, signal: 'SIGKILL' });
    delete webs[name];

    // nginx logs a stream when it ends: one through the killed instance ends now.
    const killedUpstream = `127.0.0.1:${ports[name]}`;
    let streamWasThere = false;
    await waitFor('the page’s live stream to deliver progress after the kill', async () => {
      const records = await streamRecords();
      streamWasThere = (await endedStreams()).some((stream) => stream.upstream.endsWith(killedUpstream));
      const opened = records.find((record) => record.kind === 'open' && record.at > killedAt);
      const from = streamWasThere ? opened?.at : killedAt;
      return from !== undefined && records.some((record) => record.kind === 'progress' && record.at > from);
    });
    const records = await streamRecords();
    const sinceKill = records.filter((record) => record.at > killedAt);
    const reopened = sinceKill.find((record) => record.kind === 'open');
    const progress = sinceKill.find((record) => record.kind === 'progress' && (!streamWasThere || record.at > (reopened?.at ?? 0)));
    assert.ok(progress);
    if (streamWasThere) {
      assert.ok(reopened, 'the stream on the killed instance was opened again');
      assert.equal(
        sinceKill.some((record) => record.kind === 'error' && record.closed),
        false,
        'the browser’s EventSource reconnected by itself, it never gave up',
      );
    } else {
      assert.equal(reopened, undefined, 'a stream on the other instance went on undisturbed');
    }
    assert.equal(records.filter((record) => record.kind === 'created').length, 1, 'the page’s one EventSource carried on');
    await waitFor('the progress shown to move on', async () => (await progressShown()) > progressBefore);

    assert.equal(new URL(page.url()).pathname, '/', 'still on the dashboard, not sent to sign in');
    assert.equal(await page.locator('.user-chip').textContent(), `Signed in as ${ADMIN}`);
    return { streamWasThere, reconnectMs: reopened === undefined ? null : reopened.at - killedAt, nextProgressMs: progress.at - killedAt };
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-web-failover-'));
    const outputDir = join(work, 'shared-output');
    await mkdir(outputDir);
    disc = await insertTestDisc({ dir: work, label: 'FAILOVER_DISC', dataMiB: 8, seed: 27, delayMs: 0 });
    await postgres.ready();
    databaseUrl = await postgres().createDatabase();
    const database = await openPostgres(databaseUrl);
    try {
      const auth = createAuthService({ database, dataDir: join(work, 'setup') });
      await auth.users.add({ name: ADMIN, role: 'admin', password: TEST_PASSWORD }, localActor('test'));
      key = (await auth.apiKeys.create({ user: ADMIN, name: 'tests' }, localActor('test'))).key;
    } finally {
      await database.close();
    }

    let httpPort: number;
    [ports.a = 0, ports.b = 0, httpsPort = 0, httpPort = 0] = await freePorts(4);
    origin = `https://127.0.0.1:${httpsPort}`;
    const common = {
      DISK2ISO_DATABASE_URL: databaseUrl,
      DISK2ISO_STORAGE_OUTPUT_DIR: outputDir,
      DISK2ISO_DRIVES_DEMO: 'off',
      DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
      DISK2ISO_CLUSTER_HEARTBEAT_SECONDS: '1',
      DISK2ISO_CLUSTER_OFFLINE_AFTER_SECONDS: '5',
    };
    for (const dir of ['worker', 'web-a', 'web-b']) await mkdir(join(work, dir));
    worker = serve(['--role', 'worker', '--port', '0'], {
      ...common,
      DISK2ISO_DATA_DIR: join(work, 'worker'),
      DISK2ISO_CLUSTER_NODE_NAME: NODE,
      DISK2ISO_EXTRA_DEVICES: disc.loop.path,
    });
    startWeb = (name) => {
      const started = serve(['--role', 'web', '--port', String(ports[name])], {
        ...common,
        DISK2ISO_DATA_DIR: join(work, `web-${name}`),
        DISK2ISO_CLUSTER_NODE_NAME: `web-${name}`,
        // As a deployment behind nginx over TCP must: believe its X-Forwarded-Proto (https, the Secure cookie).
        DISK2ISO_SECURITY_TRUSTED_PROXIES: '127.0.0.1',
      });
      webs[name] = started;
      return started;
    };
    startWeb('a');
    startWeb('b');
    await Promise.all([worker.address, webs.a?.address, webs.b?.address]);
    for (const port of Object.values(ports)) useApiKey(`http://127.0.0.1:${port}`, key);

    certificates = await makeCertificates(work);
    const upstream = renderShipped(NGINX_CLUSTER_UPSTREAM, await readFile(NGINX_CLUSTER_UPSTREAM, 'utf8'), [
      ['192.0.2.11:8080', `127.0.0.1:${ports.a}`, 1],
      ['192.0.2.12:8080', `127.0.0.1:${ports.b}`, 1],
    ]);
    const upstreamBlock = /^upstream disk2iso_service \{\n[^}]*\}\n/m.exec(upstream)?.[0];
    assert.ok(upstreamBlock, 'the shipped upstream block');
    const site = renderShipped(NGINX_SITE, await readFile(NGINX_SITE, 'utf8'), [
      ['upstream disk2iso_service {\n    server unix:/run/disk2iso/disk2iso.sock;\n}\n', upstreamBlock, 1],
      ['listen 443 ssl http2;', `listen 127.0.0.1:${httpsPort} ssl http2;`, 1],
      ['listen [::]:443 ssl http2;', `listen [::1]:${httpsPort} ssl http2;`, 1],
      ['listen 80;', `listen 127.0.0.1:${httpPort};`, 1],
      ['listen [::]:80;', `listen [::1]:${httpPort};`, 1],
      ['/etc/ssl/certs/disk2iso.crt', certificates.cert, 2],
      ['/etc/ssl/private/disk2iso.key', certificates.key, 2],
    ]);
    const nginxDir = join(work, 'nginx');
    await mkdir(nginxDir);
    await writeFile(join(nginxDir, 'disk2iso.conf'), site);
    accessLog = join(nginxDir, 'access.log');
    nginx = await startNginx({
      dir: nginxDir,
      includes: [NGINX_HTTP_PART, join(nginxDir, 'disk2iso.conf')],
      isListening: () => acceptsTls(httpsPort, certificates.ca),
    });

    // The browser accepts nginx's certificate by its public key, as if a CA it trusts had issued it
    // (ignoring certificate errors would not do: Chromium registers no service worker then).
    const spki = new X509Certificate(await readFile(certificates.cert)).publicKey.export({ type: 'spki', format: 'der' });
    browser = await launchBrowser([`--ignore-certificate-errors-spki-list=${createHash('sha256').update(spki).digest('base64')}`]);
    watched = await watchedContext(browser);
    await watched.context.addInitScript(RECORD_STREAM);
    page = await watched.newPage();
  });

  after(async () => {
    await browser?.close();
    await nginx?.stop();
    for (const instance of [webs.a, webs.b, worker]) {
      if (instance === undefined || instance.child.exitCode !== null || instance.child.signalCode !== null) continue;
      instance.child.kill('SIGKILL');
      await instance.exited;
    }
    await disc?.release();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('signs in through nginx, starts a job on the worker’s drive, and shows it running there', async () => {
    assert.ok(disc?.faults);
    await waitFor('the web instances to list the worker’s drive with its disc', async () => {
      for (const port of Object.values(ports)) {
        const listed = await api(`http://127.0.0.1:${port}`, 'GET', '/api/v1/devices');
        const device = listed.body.devices?.find((candidate: { path: string }) => candidate.path === disc?.loop.path);
        if (device?.has_media !== true) return false;
      }
      return true;
    });

    await page.goto(`${origin}/jobs/new`);
    await page.getByRole('heading', { name: 'Sign in to disk2iso' }).waitFor();
    await signInThroughForm(page, ADMIN, TEST_PASSWORD);
    await page.getByRole('heading', { name: 'New imaging job' }).waitFor();
    const choice = page.locator('.drive-choice', { hasText: 'FAILOVER_DISC' });
    assert.match((await choice.textContent()) ?? '', new RegExp(`${NODE}\\.${disc.loop.name}`), 'the drive is named by its node');

    await disc.faults.setRate(SLOW_BYTES_PER_SECOND);
    await choice.getByRole('radio').check();
    await page.getByRole('button', { name: 'Start imaging' }).click();
    card = page.locator('[data-job-id][data-name="FAILOVER_DISC"]');
    await card.waitFor();
    jobId = (await card.getAttribute('data-job-id')) ?? '';
    await waitFor('the job to run', async () => (await card.getAttribute('data-status')) === 'running');
    assert.equal(await card.locator('[data-field="node"]').textContent(), NODE, 'the card names the node the job runs on');
    const first = await progressShown();
    await waitFor('the progress to move', async () => (await progressShown()) > first);
    assert.equal((await streamRecords()).filter((record) => record.kind === 'open').length, 1);
  });

  it('keeps the page signed in and live when web instance A is killed, and when B is killed after A came back', async (t) => {
    const phaseA = await killAndFollow('a');
    t.diagnostic(
      `kill A: the stream was on A: ${phaseA.streamWasThere}; reconnected after ${phaseA.reconnectMs ?? '–'} ms; next progress after ${phaseA.nextProgressMs} ms`,
    );

    const restarted = startWeb('a');
    await restarted.address;
    // nginx left A out after its failed connects; it must take A again before B goes, or it has no instance.
    const answeredByA = new RegExp(`"GET /api/v1/health [^"]*" 200 upstream=127\\.0\\.0\\.1:${ports.a}$`);
    await waitFor('nginx to pass a request to the restarted A', async () => {
      assert.equal(await getThroughNginx('/api/v1/health'), 200);
      return (await accessLines()).some((line) => answeredByA.test(line));
    });

    const phaseB = await killAndFollow('b');
    t.diagnostic(`kill B: reconnected after ${phaseB.reconnectMs ?? '–'} ms; next progress after ${phaseB.nextProgressMs} ms`);
    assert.equal(phaseB.streamWasThere, true, 'with A dead before, the stream was on B when B was killed');
    assert.ok(phaseB.reconnectMs !== null);
    const streams = await endedStreams();
    assert.ok(
      streams.some((stream) => stream.upstream.endsWith(`127.0.0.1:${ports.b}`)),
      streams.map((stream) => stream.upstream).join('; '),
    );
  });

  it('opens a new event stream by itself once an instance is back, after nginx had none to pass it to', async (t) => {
    const instance = webs.a;
    assert.ok(instance);
    const killedAt = Date.now();
    instance.child.kill('SIGKILL');
    await instance.exited;
    delete webs.a;
    // With no instance up, nginx answers the stream's reconnect with 502, and the browser closes that EventSource for good.
    await waitFor('the browser to close the page’s EventSource', async () =>
      (await streamRecords()).some((record) => record.kind === 'error' && record.closed === true && record.at > killedAt),
    );

    const restarted = startWeb('a');
    await restarted.address;
    const restartedAt = Date.now();
    await waitFor('a new event stream to deliver progress', async () => {
      const records = await streamRecords();
      const opened = records.find((record) => record.kind === 'open' && record.at > restartedAt);
      return opened !== undefined && records.some((record) => record.kind === 'progress' && record.at > opened.at);
    });
    const records = await streamRecords();
    assert.ok(records.filter((record) => record.kind === 'created').length > 1, 'the page opened a new EventSource');
    const opened = records.find((record) => record.kind === 'open' && record.at > restartedAt);
    const progress = records.find((record) => record.kind === 'progress' && record.at > (opened?.at ?? 0));
    t.diagnostic(
      `no instance, then A back: stream open ${(opened?.at ?? 0) - restartedAt} ms and progress ${(progress?.at ?? 0) - restartedAt} ms after A listened`,
    );
    assert.equal(new URL(page.url()).pathname, '/', 'still on the dashboard, not sent to sign in');
    assert.equal(await page.locator('.user-chip').textContent(), `Signed in as ${ADMIN}`);
  });

  it('follows the job to its end on the restarted instance, with an image identical to the disc', async () => {
    assert.ok(disc?.faults);
    await disc.faults.setRate(0);
    await waitFor('the worker to complete the job', async () => (await jobStatus()) === 'completed');
    // Its end may reach the page while nginx still answers 502 to everything but the new stream (the
    // restarted instance counts as failed until a request to it ends): the refresh it asks for is retried.
    await waitFor('the page to show the job completed', async () => (await card.getAttribute('data-status')) === 'completed');
    const job = (await api(`http://127.0.0.1:${ports.a}`, 'GET', `/api/v1/jobs/${jobId}`)).body;
    assert.equal(job.status, 'completed', JSON.stringify(job));
    assert.equal(job.node, NODE);
    assert.equal(await sha256File(job.output_file), disc.iso.sha256, 'the image is the disc, byte for byte');

    await page.goto(`${origin}/jobs/${jobId}`);
    await page.locator('.page-head .badge', { hasText: /^Completed$/ }).waitFor();
    assert.equal(await page.locator('.user-chip').textContent(), `Signed in as ${ADMIN}`);
    assert.equal(await page.locator('.job-summary [data-field="node"]').textContent(), NODE, 'the job page names the node');
    // Each event stream cut by a kill, as Chromium reports it: nginx resets the HTTP/2 stream whose
    // instance died in the middle of its answer; and nginx's 502 to the stream and to the page's
    // refreshes while no instance was up.
    const expected =
      /^console error: Failed to load resource: (net::ERR_HTTP2_PROTOCOL_ERROR|the server responded with a status of 502 \(\)) \(https:\/\/127\.0\.0\.1:\d+\/\)$/;
    assert.deepEqual(
      (await watched.collectProblems(page)).filter((problem) => !expected.test(problem)),
      [],
    );
  });
});
