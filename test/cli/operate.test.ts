import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { lstat, mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, packageRoot } from '../../src/config/load.js';
import { type TestServer, api, startTestServer, testEnv, waitFor } from '../http/support.js';
import { attachTestDatabase, detachTestDatabase, shownDatabaseOf, testDriveId } from '../support/database.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { makeIso, sha256File } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { runCli } from './run-cli.js';

const SECTOR = 2048;
/** The folders of the specification's lines, made for the test and removed afterwards. */
const NEW_OUTPUT_ROOT = '/neuer';
const NEW_OUTPUT_DIR = '/neuer/pfad';
const SYSLOG_SOCKET = '/dev/log';

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Runs one of the specification's shell lines as written, with `disk2iso` on the PATH. */
function shellLine(line: string, env: Record<string, string>): ChildProcess {
  return spawn('bash', ['-c', line], {
    env: { PATH: `${join(packageRoot(), 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so the whole pipeline can be stopped at once.
    detached: true,
  });
}

function collect(child: ChildProcess): { text: () => string; done: Promise<number | null> } {
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  return { text: () => text, done: new Promise((resolve) => child.on('close', (code) => resolve(code))) };
}

describe('the operator’s CLI lines of the specification, against a running service', () => {
  let work: string;
  let dataDir: string;
  let fault: FaultFs;
  let slow: LoopDevice;
  let other: LoopDevice;
  let blank: LoopDevice;
  let service: TestServer;
  const madeForTest: string[] = [];
  const env = (more: Record<string, string> = {}) =>
    testEnv(dataDir, [slow.path, other.path, blank.path], { DISK2ISO_STORAGE_OUTPUT_ROOTS: NEW_OUTPUT_ROOT, ...more });

  before(async () => {
    for (const path of [NEW_OUTPUT_ROOT, SYSLOG_SOCKET, '/dev/sr0', '/dev/sr1']) {
      assert.equal(await exists(path), false, `${path} must not exist on the test machine`);
    }
    work = await mkdtemp(join(tmpdir(), 'disk2iso-operate-'));
    dataDir = join(work, 'data');
    await attachTestDatabase(dataDir);
    await mkdir(dataDir);
    const iso = await makeIso({ dir: work, label: 'OPERATE_DISC', dataMiB: 16, files: 4, seed: 21 });
    await mkdir(join(work, 'other'));
    const otherIso = await makeIso({ dir: join(work, 'other'), label: 'OTHER_DISC', dataMiB: 4, files: 2, seed: 22 });
    fault = await mountFaultFs({ backingFile: iso.path });
    slow = await attachLoop(fault.file, { sectorSize: SECTOR });
    other = await attachLoop(otherIso.path, { sectorSize: SECTOR });
    const blankFile = join(work, 'blank.img');
    await writeFile(blankFile, '');
    await truncate(blankFile, 4 * 1024 * 1024);
    blank = await attachLoop(blankFile);
    service = await startTestServer({ dataDir, devices: [slow.path, other.path, blank.path], env: { DISK2ISO_STORAGE_OUTPUT_ROOTS: NEW_OUTPUT_ROOT } });
  });

  after(async () => {
    await service?.close();
    for (const device of [slow, other, blank]) await device?.detach();
    await fault?.unmount();
    for (const path of madeForTest.reverse()) await rm(path, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
    await detachTestDatabase(dataDir);
  });

  it('disk2iso status: says the service runs, with its jobs and the output folder', async () => {
    const result = await runCli(['status'], env());
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^Service: running \\(pid ${process.pid} on `, 'm'));
    assert.match(result.stdout, /^Jobs: 0 queued, 0 running/m);
    assert.match(result.stdout, /^Output: .*free of .*imaging pauses at 95%/m);
    // The embedded mode's one node: the service itself, with the drives it watches.
    const node = loadConfig({ env: env() }).cluster.node_name;
    assert.match(result.stdout, /^Nodes: 1 \(1 online\)$/m);
    assert.match(
      result.stdout,
      new RegExp(
        `^  "${node}" all, version "0\\.0\\.0-test" \\[VERSION MISMATCH: this disk2iso is \\d[^\\]]*\\]: online, heartbeat \\d+:\\d\\d ago, pid ${process.pid} on ".+", 3 drive\\(s\\)$`,
        'm',
      ),
    );
    assert.match(result.stdout, /^ {4}"(?:[a-z0-9-]+\.)?loop\d+" "\/dev\/loop\d+": (probed|probing), disc "OPERATE_DISC"$/m);
    const json = JSON.parse((await runCli(['status', '--json'], env())).stdout);
    assert.equal(json.service.running, true);
    assert.equal(json.service.process.pid, process.pid);
    assert.deepEqual(
      json.nodes.map((entry: { id: string; role: string; online: boolean; version_mismatch: boolean; pid: number }) => [
        entry.id,
        entry.role,
        entry.online,
        entry.version_mismatch,
        entry.pid,
      ]),
      [[node, 'all', true, true, process.pid]],
    );
  });

  it('disk2iso stop --all: pauses a running job of the service, keeping what it read', async () => {
    await fault.setDelay(200);
    const created = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(slow.name), name: 'to-stop' });
    assert.equal(created.status, 201);
    await waitFor('the job to read', async () => (await api(service.url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.bytes_done > 0);
    const stopped = await runCli(['stop', '--all'], env());
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /1 running job\(s\) stop at their next read/);
    await waitFor('the job to pause', async () => (await api(service.url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.status === 'paused');
    const paused = (await api(service.url, 'GET', `/api/v1/jobs/${created.body.id}`)).body;
    assert.ok(paused.bytes_done > 0, 'progress kept');
    assert.equal((await runCli(['stop'], env())).code, 2, 'neither ids nor --all');
  });

  it('disk2iso logs --follow --level error | logger -t disk2iso: error lines reach syslog', async () => {
    const syslog = spawn('socat', ['-u', `UNIX-RECV:${SYSLOG_SOCKET}`, '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    madeForTest.push(SYSLOG_SOCKET);
    const received = collect(syslog);
    await waitFor('the syslog socket', () => exists(SYSLOG_SOCKET));
    const pipeline = shellLine('disk2iso logs --follow --level error | logger -t disk2iso', env());
    const piped = collect(pipeline);
    try {
      // An error: the paused job continues on a drive that holds another disc, which it refuses.
      const [job] = (await api(service.url, 'GET', '/api/v1/jobs?status=paused')).body.jobs;
      const moved = await api(service.url, 'PATCH', `/api/v1/jobs/${job.id}`, { action: 'resume', device: other.path });
      assert.equal(moved.status, 200, JSON.stringify(moved.body));
      await waitFor('the error line in syslog', () =>
        /disk2iso(\[\d+\])?: \S+ error job \[job_\w+\]: .*not the one this job was created for/.test(received.text()),
      );
      assert.doesNotMatch(received.text(), / info /, 'only errors');
    } finally {
      if (pipeline.pid !== undefined) process.kill(-pipeline.pid, 'SIGTERM');
      syslog.kill();
      await piped.done;
      await received.done;
      await rm(SYSLOG_SOCKET, { force: true });
    }
    const plain = await runCli(['logs', '--level', 'error', '--lines', '5'], env());
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /error jobs \[job_\w+\]: job job_\w+ is failed/);
  });

  it('disk2iso config get / set: validates like the web interface, and the running service takes it over', async () => {
    const all = await runCli(['config', 'get'], env());
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^imaging\.read_attempts = 5 {2}\(default\)$/m);
    assert.match(all.stdout, /^storage\.output_roots = \["\/neuer"\] {2}\(environment DISK2ISO_STORAGE_OUTPUT_ROOTS\)$/m);
    assert.equal((await runCli(['config', 'get', 'imaging.read_attempts'], env())).stdout, '5\n');

    const refused = await runCli(['config', 'set', 'imaging.read_attempts', '500'], env());
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /imaging\.read_attempts/);
    const serverOnly = await runCli(['config', 'set', 'server.port', '1'], env());
    assert.equal(serverOnly.code, 2);
    assert.match(serverOnly.stderr, /server/);
    const unknown = await runCli(['config', 'set', 'no.such', '1'], env());
    assert.equal(unknown.code, 2);
    assert.equal((await api(service.url, 'GET', '/api/v1/system/config')).body.settings.imaging.read_attempts, 5, 'nothing changed');

    await mkdir(NEW_OUTPUT_DIR, { recursive: true });
    madeForTest.push(NEW_OUTPUT_ROOT);
    const set = await runCli(['config', 'set', 'storage.output_dir', NEW_OUTPUT_DIR], env());
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, new RegExp(`storage.output_dir: .* -> ${NEW_OUTPUT_DIR}; the running service \\(pid ${process.pid}\\) applies it within seconds`));
    await waitFor(
      'the service to take the setting over',
      async () => (await api(service.url, 'GET', '/api/v1/system/config')).body.settings.storage.output_dir === NEW_OUTPUT_DIR,
    );
    const audit = await api(service.url, 'GET', '/api/v1/audit?event_type=config');
    assert.ok(
      audit.body.entries.some((entry: { user: string; ip_address: string }) => entry.user === 'cli:root' && entry.ip_address === 'local'),
      JSON.stringify(audit.body),
    );
  });

  it('the specification’s batch loop over /dev/sr* images each drive with a disc, skipping the blank one', async () => {
    // This machine has no optical drive: /dev/sr0 and /dev/sr1 are links to loop devices disk2iso lists.
    await fault.setDelay(0);
    await symlink(other.path, '/dev/sr0');
    madeForTest.push('/dev/sr0');
    await symlink(blank.path, '/dev/sr1');
    madeForTest.push('/dev/sr1');
    const loop = collect(
      shellLine(
        `for device in /dev/sr*; do
  if disk2iso device has-media $device; then
    disk2iso create --device $device --auto-name
  fi
done`,
        env(),
      ),
    );
    assert.equal(await loop.done, 0, loop.text());
    const jobs = (await api(service.url, 'GET', '/api/v1/jobs?limit=100')).body.jobs as Array<{
      name: string;
      status: string;
      output_file: string;
      device_id: string;
    }>;
    const imaged = jobs.filter((job) => job.name === 'OTHER_DISC');
    assert.equal(imaged.length, 1, loop.text());
    assert.equal(imaged[0]?.status, 'completed');
    assert.equal(imaged[0]?.device_id, testDriveId(other.name));
    assert.equal(imaged[0]?.output_file, join(NEW_OUTPUT_DIR, 'OTHER_DISC.iso'), 'into the folder config set chose');
    assert.ok(!jobs.some((job) => job.device_id === testDriveId(blank.name)), 'the blank disc was skipped');
    assert.match(await sha256File(join(NEW_OUTPUT_DIR, 'OTHER_DISC.iso')), /^[0-9a-f]{64}$/);
  });

  it('disk2iso status without a service: says so and reads the data directory', async () => {
    await service.close();
    const result = await runCli(['status'], env());
    assert.equal(result.code, 1);
    assert.ok(result.stdout.split('\n').includes(`Service: not running (read from ${shownDatabaseOf(dataDir)})`), result.stdout);
    assert.match(result.stdout, /^Jobs: .*1 completed, 1 failed/m);
    assert.match(result.stdout, /^Nodes: none registered/m, 'a service stopped on purpose leaves the list');
  });
});
