import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { ConflictError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { startServer } from '../../src/server.js';
import { api, createAdminKey, followEvents, testEnv, useApiKey, waitFor } from '../http/support.js';
import { attachTestDatabase, openDataDirDatabase, testDriveId } from '../support/database.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type MadeIso, makeIso, sha256File } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type ServeProcess, serve } from '../tools/serve.js';

/** Bytes marked finished ('+') in a GNU ddrescue map file; 0 while there is none. */
async function finishedBytes(mapPath: string): Promise<number> {
  const text = await readFile(mapPath, 'utf8').catch(() => '');
  let done = 0;
  for (const line of text.split('\n')) {
    const match = /^0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+\+/i.exec(line.trim());
    if (match?.[2]) done += parseInt(match[2], 16);
  }
  return done;
}

async function jobInDatabase(dataDir: string, jobId: string) {
  const database = await openDataDirDatabase(dataDir);
  try {
    const job = await createJobRepository(database).get(jobId);
    assert.ok(job, `${jobId} is in the database`);
    return job;
  } finally {
    await database.close();
  }
}

async function jobLog(url: string, jobId: string): Promise<string[]> {
  const logs = await api(url, 'GET', `/api/v1/jobs/${jobId}/logs`);
  return logs.body.logs.map((line: { message: string }) => line.message);
}

describe('the service as a process: kill -9, SIGTERM, a port in use, unix socket', () => {
  let work: string;
  let iso: MadeIso;
  let fault: FaultFs;
  let loop: LoopDevice;
  const running = new Set<ServeProcess>();

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-serve-'));
    iso = await makeIso({ dir: work, label: 'SERVE_DISC', dataMiB: 32, files: 4, seed: 5 });
    fault = await mountFaultFs({ backingFile: iso.path });
    loop = await attachLoop(fault.file, { sectorSize: 2048 });
  });

  after(async () => {
    try {
      for (const process of running) {
        process.child.kill('SIGKILL');
        await process.exited;
      }
    } finally {
      await loop?.detach();
      await fault?.unmount();
      await rm(work, { recursive: true, force: true });
    }
  });

  /** The test admin's API key of each data dir's environment. */
  const adminKeyOf = new WeakMap<Record<string, string>, string>();

  function start(args: string[], env: Record<string, string>): ServeProcess {
    const process = serve(args, env);
    const key = adminKeyOf.get(env);
    if (key !== undefined)
      void process.address.then(
        (url) => useApiKey(url, key),
        () => undefined,
      );
    running.add(process);
    void process.exited.then(() => running.delete(process));
    return process;
  }

  async function dataDir(name: string, leaseSeconds = 5): Promise<{ dir: string; env: Record<string, string> }> {
    const dir = await mkdtemp(join(work, `${name}-`));
    await attachTestDatabase(dir);
    const env = testEnv(dir, [loop.path], { DISK2ISO_JOBS_LEASE_SECONDS: String(leaseSeconds) });
    adminKeyOf.set(env, await createAdminKey(dir));
    return { dir, env };
  }

  it('prints a one-time setup link at start while no admin exists, and none once one does', async () => {
    const dir = await mkdtemp(join(work, 'fresh-'));
    await attachTestDatabase(dir);
    const env = testEnv(dir, [loop.path]);
    const first = start(['--port', '0'], env);
    const url = await first.address;
    const link = new RegExp(`^  (${url.replace(/[.]/g, '\\.')}/setup\\?token=[A-Za-z0-9_-]{43})$`, 'm').exec(first.output());
    assert.ok(link?.[1], first.output());
    assert.match(first.output(), /No admin exists yet[\s\S]*disk2iso user add NAME --role admin/);
    const token = new URL(link[1]).searchParams.get('token');
    const created = await api(url, 'POST', '/api/v1/auth/setup', { token, username: 'first-admin', password: 'Correct-Horse-42' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    first.child.kill('SIGTERM');
    await first.exited;

    const second = start(['--port', '0'], env);
    await second.address;
    assert.doesNotMatch(second.output(), /setup\?token=/, 'an admin exists: no link');
    second.child.kill('SIGTERM');
    await second.exited;
  });

  it('picks a job up again at once after kill -9, without waiting for its lease, and continues from its map', async () => {
    // An hour's lease: only recognising the dead process lets the next start continue the job.
    const data = await dataDir('killed', 3600);
    await fault.setDelay(100);
    const first = start(['--port', '0'], data.env);
    const firstUrl = await first.address;
    assert.match(firstUrl, /^http:\/\/127\.0\.0\.1:\d+$/, 'binds 127.0.0.1 by default');
    const created = await api(firstUrl, 'POST', '/api/v1/jobs', { device: testDriveId(loop.name) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const jobId = created.body.id;
    const mapPath = `${created.body.output_file}.map`;
    await waitFor('a saved map with progress', async () => (await finishedBytes(mapPath)) > 0);

    first.child.kill('SIGKILL');
    assert.equal((await first.exited).signal, 'SIGKILL');
    const doneAtKill = await finishedBytes(mapPath);
    assert.ok(doneAtKill > 0 && doneAtKill < iso.sizeBytes, `killed part way: ${doneAtKill} of ${iso.sizeBytes}`);
    const orphaned = await jobInDatabase(data.dir, jobId);
    assert.ok(['running', 'verifying'].includes(orphaned.status), `the dead process still holds the job: ${orphaned.status}`);
    assert.notEqual(orphaned.leaseOwner, null);
    assert.equal(orphaned.leaseHolder?.pid, first.child.pid, 'the lease names the killed process');
    await assert.rejects(stat(created.body.output_file), 'no finished image after a crash');

    // The new process takes the job up as it starts: the drive stays slow until the live stream is open.
    const second = start(['--port', '0'], data.env);
    const secondUrl = await second.address;
    const live = await followEvents(secondUrl);
    await fault.setDelay(20);
    try {
      await waitFor('the job to complete in the new process', async () => (await api(secondUrl, 'GET', `/api/v1/jobs/${jobId}`)).body.status === 'completed');
    } finally {
      live.close();
    }
    const job = (await api(secondUrl, 'GET', `/api/v1/jobs/${jobId}`)).body;
    assert.equal(job.attempts, 2);
    const messages = await jobLog(secondUrl, jobId);
    assert.ok(messages.includes('continuing from the rescue map'), messages.join('\n'));
    const resuming = messages.map((message) => /^resuming from .*: (\d+) of (\d+) bytes already rescued$/.exec(message)).find((match) => match !== null);
    assert.ok(resuming, messages.join('\n'));
    assert.equal(Number(resuming[1]), doneAtKill, 'the engine went on from exactly what the map held at the kill');
    // Hashing and verifying count their own bytes from 0; copy progress must go on from the map.
    const copying = live.messages.filter((message) => message.type === 'job_update' && message.job_id === jobId && message.data.phase === 'copying');
    assert.ok(copying.length > 0, 'copy progress arrived live');
    for (const update of copying) assert.ok((update.data.bytes_done as number) > 0, `copying never starts from 0 again: ${JSON.stringify(update.data)}`);
    assert.equal(await sha256File(job.output_file), iso.sha256, 'the image is byte-identical to the disc');

    second.child.kill('SIGTERM');
    assert.deepEqual(await second.exited, { code: 0, signal: null });
  });

  it('pauses and requeues a running job on SIGTERM, exits 0, and resumes it on the next start', async () => {
    const data = await dataDir('stopped');
    await fault.setDelay(100);
    const first = start(['--port', '0'], data.env);
    const url = await first.address;
    const created = await api(url, 'POST', '/api/v1/jobs', { device: testDriveId(loop.name) });
    const jobId = created.body.id;
    await waitFor('a saved map with progress', async () => (await finishedBytes(`${created.body.output_file}.map`)) > 0);

    first.child.kill('SIGTERM');
    assert.deepEqual(await first.exited, { code: 0, signal: null }, first.output());
    const stopped = await jobInDatabase(data.dir, jobId);
    assert.equal(stopped.status, 'queued', 'paused and put back in the queue');
    assert.equal(stopped.leaseOwner, null);
    assert.ok(stopped.bytesDone > 0);
    const savedMap = await finishedBytes(`${created.body.output_file}.map`);
    assert.ok(savedMap > 0 && savedMap < iso.sizeBytes);
    assert.ok((await stat(`${created.body.output_file}.part`)).isFile());

    await fault.setDelay(0);
    const second = start(['--port', '0'], data.env);
    const secondUrl = await second.address;
    await waitFor('the job to complete after the restart', async () => (await api(secondUrl, 'GET', `/api/v1/jobs/${jobId}`)).body.status === 'completed');
    const messages = await jobLog(secondUrl, jobId);
    assert.ok(
      messages.some((message) => message.startsWith('paused;')),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((message) => message.startsWith(`resuming from`) && message.includes(`: ${savedMap} of`)),
      messages.join('\n'),
    );
    assert.equal(await sha256File(created.body.output_file), iso.sha256);
    const serviceLog = await api(secondUrl, 'GET', '/api/v1/logs?limit=1000');
    const events = serviceLog.body.logs.map((line: { message: string }) => line.message);
    assert.ok(events.includes('stopping (SIGTERM)') && events.includes('stopped'), events.join('\n'));

    second.child.kill('SIGINT');
    assert.deepEqual(await second.exited, { code: 0, signal: null });
  });

  it('waits for a port another process still holds, and listens on it once it is free', async () => {
    const data = await dataDir('port-held');
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    let released = false;
    try {
      const server = start(['--port', String(port)], data.env);
      const gaveUp = server.exited.then(({ code }) => {
        throw new Error(`serve ended (code ${code}) while the port was held:\n${server.output()}`);
      });
      await Promise.race([
        waitFor('the start to find the port in use', () => server.output().includes(`127.0.0.1 port ${port} is in use; trying again`)),
        gaveUp,
      ]);
      gaveUp.catch(() => undefined);
      await new Promise<void>((resolve) => holder.close(() => resolve()));
      released = true;
      assert.equal(await server.address, `http://127.0.0.1:${port}`, server.output());
      assert.equal((await api(`http://127.0.0.1:${port}`, 'GET', '/api/v1/health')).status, 200);
      server.child.kill('SIGTERM');
      assert.deepEqual(await server.exited, { code: 0, signal: null });
    } finally {
      if (!released) holder.close();
    }
  });

  it('gives up on a port that stays in use after the retry time, with a clear error', async () => {
    const dir = await mkdtemp(join(work, 'port-taken-'));
    await attachTestDatabase(dir);
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    try {
      const config = loadConfig({ env: testEnv(dir, [], { DISK2ISO_SERVER_PORT: String(port) }) });
      await assert.rejects(startServer({ config, log: silentLogger(), version: 'test', listenRetryMs: 2000 }), (error: unknown) => {
        assert.ok(error instanceof ConflictError, String(error));
        assert.equal(error.code, 'address_in_use');
        assert.match(error.message, new RegExp(`127\\.0\\.0\\.1 port ${port} is still in use after 2 s`));
        return true;
      });
    } finally {
      holder.close();
    }
  });

  it('listens on a unix socket with mode 0660, replaces a stale one, and refuses a live one', async () => {
    const data = await dataDir('socket');
    const socket = join(data.dir, 'disk2iso.sock');
    const viaSocket = (path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const call = request({ socketPath: socket, path, method: options.method ?? 'GET', headers: options.headers ?? {} }, (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => {
            body += chunk.toString();
          });
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        });
        call.on('error', reject);
        call.end(options.body);
      });

    const first = start(['--socket', socket], data.env);
    assert.equal(await first.address, `unix:${socket}`);
    const info = await stat(socket);
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o660);
    assert.deepEqual(await viaSocket('/api/v1/health'), { status: 200, body: '{"status":"ok"}' });
    // Only the proxy can reach the socket, so the client address it forwards is the one that counts.
    const failedLogin = await viaSocket('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.77' },
      body: JSON.stringify({ username: 'nobody-here', password: 'wrong' }),
    });
    assert.equal(failedLogin.status, 401);
    const audit = await viaSocket('/api/v1/audit?action=login_failure', { headers: { 'x-api-key': adminKeyOf.get(data.env) ?? '' } });
    assert.equal(audit.status, 200, audit.body);
    assert.equal((JSON.parse(audit.body) as { entries: Array<{ ip_address: string }> }).entries[0]?.ip_address, '198.51.100.77');

    // A name of its own, as any second process on a shared database needs: what refuses it is the socket, not the name.
    const rival = start(['--socket', socket], { ...data.env, DISK2ISO_CLUSTER_NODE_NAME: 'rival' });
    const refused = await rival.exited;
    assert.notEqual(refused.code, 0);
    assert.match(rival.output(), /another server is listening on/);
    assert.equal((await viaSocket('/api/v1/health')).status, 200, 'the running server is undisturbed');

    first.child.kill('SIGKILL');
    await first.exited;
    assert.ok((await stat(socket)).isSocket(), 'a killed server leaves its socket file');
    const second = start(['--socket', socket], data.env);
    assert.equal(await second.address, `unix:${socket}`, 'the stale socket is replaced');
    assert.equal((await viaSocket('/api/v1/health')).status, 200);
    second.child.kill('SIGTERM');
    assert.deepEqual(await second.exited, { code: 0, signal: null });
    await assert.rejects(stat(socket), 'a clean stop removes the socket');

    const notASocket = join(data.dir, 'plain-file');
    await writeFile(notASocket, 'keep me');
    const wrong = start(['--socket', notASocket], data.env);
    assert.notEqual((await wrong.exited).code, 0);
    assert.match(wrong.output(), /is not a socket/);
    assert.equal(await readFile(notASocket, 'utf8'), 'keep me');
  });
});
