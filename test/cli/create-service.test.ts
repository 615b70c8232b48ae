import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { imageFileSet } from '../../src/archive/naming.js';
import { type TestServer, api, startTestServer, testEnv, waitFor } from '../http/support.js';
import { attachTestDatabase, detachTestDatabase, testDriveId } from '../support/database.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { makeIso, sha256File } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { runCli, startCli } from './run-cli.js';

const SECTOR = 2048;
/** The specification's line, as written but for the drive: this machine has no /dev/sr0, so a loop device stands in. */
const EMERGENCY_OUTPUT = '/backup/emergency.iso';
const NOBODY = { uid: 65534, gid: 65534 };

interface JobBody {
  id: string;
  name: string;
  status: string;
  created_by: string | null;
  device_id: string;
  output_file: string;
  archive_id: string | null;
  bytes_done: number;
  queue_position: number | null;
}

describe('disk2iso create uses the service’s queue, archive and drive lock', () => {
  let work: string;
  let dataDir: string;
  let iso: { path: string; sizeBytes: number; sha256: string };
  let fault: FaultFs;
  let loop: LoopDevice;
  let createdBackupDir = false;
  const env = () => testEnv(dataDir, [loop.path]);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-cli-service-'));
    dataDir = join(work, 'data');
    await attachTestDatabase(dataDir);
    await mkdir(dataDir);
    iso = await makeIso({ dir: work, label: 'INTAKE_DISC', dataMiB: 24, files: 6, seed: 11 });
    // Behind a FUSE file whose reads can be slowed, so a run can be caught in the middle.
    fault = await mountFaultFs({ backingFile: iso.path });
    loop = await attachLoop(fault.file, { sectorSize: SECTOR });
  });

  after(async () => {
    await loop.detach();
    await fault.unmount();
    for (const file of imageFileSet(EMERGENCY_OUTPUT)) await rm(file, { force: true });
    if (createdBackupDir) await rmdir('/backup').catch(() => undefined);
    await rm(work, { recursive: true, force: true });
    await detachTestDatabase(dataDir);
  });

  describe('with no service running', () => {
    it('runs the specification’s emergency line as root: the image lands in /backup and the job and image are recorded', async () => {
      await assert.rejects(stat(EMERGENCY_OUTPUT), `${EMERGENCY_OUTPUT} must not exist before the test`);
      createdBackupDir = await stat('/backup').then(
        () => false,
        () => true,
      );
      const result = await runCli(['create', '--device', loop.path, '--output', EMERGENCY_OUTPUT], env());
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /imaging here as job job_\w+, since no disk2iso service is running/);
      assert.equal(await sha256File(EMERGENCY_OUTPUT), iso.sha256);
      assert.match(result.stdout, /Verification: passed/);
      assert.match(result.stdout, /Archive: archive_\w+/);
      assert.deepEqual((await readdir('/backup')).filter((name) => name.startsWith('emergency.iso')).sort(), [
        'emergency.iso',
        'emergency.iso.json',
        'emergency.iso.map',
        'emergency.iso.md5',
        'emergency.iso.sha256',
      ]);
    });

    it('refuses a folder the user may not write, writing nothing', async () => {
      // nobody may pass through the work folder to its data directory, but not write in the work folder.
      await chmod(work, 0o711);
      for (const entry of ['', ...(await readdir(dataDir))]) await chown(join(dataDir, entry), NOBODY.uid, NOBODY.gid);
      const target = join(work, 'root-only', 'x.iso');
      const result = await runCli(['create', '--device', loop.path, '--output', target], env(), NOBODY);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /you may not write to .*root-only \(EACCES\)/);
      await assert.rejects(stat(join(work, 'root-only')), 'no folder made');
    });
  });

  describe('with the service running on the same data directory', () => {
    let service: TestServer;
    const jobs = async (): Promise<JobBody[]> => (await api(service.url, 'GET', '/api/v1/jobs?limit=100')).body.jobs as JobBody[];

    before(async () => {
      for (const entry of ['', ...(await readdir(dataDir))]) await chown(join(dataDir, entry), 0, 0);
      service = await startTestServer({ dataDir, devices: [loop.path] });
    });
    after(async () => {
      await service.close();
    });

    it('shows the emergency image in the archive, titled with the job’s name', async () => {
      const { status, body } = await api(service.url, 'GET', '/api/v1/archives?search=emergency');
      assert.equal(status, 200);
      const entry = body.archives.find((archive: { path: string }) => archive.path === EMERGENCY_OUTPUT);
      assert.ok(entry, JSON.stringify(body));
      assert.equal(entry.metadata.label, 'emergency');
      assert.equal(entry.source.volume_label, 'INTAKE_DISC');
      assert.equal(entry.status, 'ok');
      const [job] = (await jobs()).filter((candidate) => candidate.output_file === EMERGENCY_OUTPUT);
      assert.equal(job?.status, 'completed');
      assert.equal(job?.created_by, 'cli:root');
      // The service never serves a file outside its output directory.
      const download = await api(service.url, 'GET', `/api/v1/archives/${entry.id}/download`);
      assert.equal(download.status, 409, JSON.stringify(download.body));
      assert.equal(download.body.error.code, 'archive_outside_output_dir');
    });

    it('hands the job to the service and follows it to an archived image', async () => {
      const result = await runCli(['create', '--device', loop.path, '--name', 'handed-over'], env());
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /following job (job_\w+): the service \(pid \d+ on /);
      const [job] = (await jobs()).filter((candidate) => candidate.name === 'handed-over');
      assert.ok(job);
      assert.equal(job.status, 'completed');
      assert.equal(job.output_file, join(service.outputDir, 'handed-over.iso'));
      assert.equal(await sha256File(job.output_file), iso.sha256);
      assert.ok(job.archive_id);
      const archive = await api(service.url, 'GET', `/api/v1/archives/${job.archive_id}`);
      assert.equal(archive.body.metadata.label, 'handed-over');
      assert.equal((await api(service.url, 'GET', `/api/v1/archives/${job.archive_id}/download`)).status, 200, 'inside the output directory: served');
    });

    it('pauses the service’s job on Ctrl-C; the same command resumes that job', async () => {
      const output = join(service.outputDir, 'paused-by-cli.iso');
      const args = ['create', '--device', loop.path, '--output', output, '--no-verify'];
      await fault.setDelay(200);
      const running = startCli(args, env());
      let job: JobBody | undefined;
      await waitFor('the service reading the job', async () => {
        job = (await jobs()).find((candidate) => candidate.output_file === output);
        return job !== undefined && job.status === 'running' && job.bytes_done > 0;
      });
      await waitFor('the progress of the service’s run on the command’s terminal', () => /^progress phase=copying percent=/m.test(running.stderr()));
      running.child.kill('SIGINT');
      const paused = await running.done;
      assert.equal(paused.code, 3, paused.stderr);
      assert.match(paused.stderr, /To resume: disk2iso create --device (?:[a-z0-9-]+\.)?loop\d+ --output /);
      const pausedJob = (await api(service.url, 'GET', `/api/v1/jobs/${job?.id}`)).body as JobBody;
      assert.equal(pausedJob.status, 'paused');

      await fault.setDelay(0);
      const resumed = await runCli(args, env());
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stderr, new RegExp(`following job ${job?.id}`), 'the same job, not a second one');
      assert.match(resumed.stdout, /\(resumed\)/);
      assert.equal(await sha256File(output), iso.sha256);
      assert.equal((await jobs()).filter((candidate) => candidate.output_file === output).length, 1);
    });

    it('images a file outside the service’s folders itself, holding the drive: the service waits and a second create is refused', async () => {
      const output = join(work, 'elsewhere', 'outside.iso');
      await fault.setDelay(100);
      const running = startCli(['create', '--device', loop.path, '--output', output, '--no-verify'], env());
      let cliJob: JobBody | undefined;
      await waitFor('the command reading its job', async () => {
        cliJob = (await jobs()).find((candidate) => candidate.output_file === output);
        return cliJob !== undefined && cliJob.status === 'running' && cliJob.bytes_done > 0;
      });
      assert.match(running.stderr(), /imaging here as job job_\w+, since .*outside\.iso lies outside the service's output directory/);

      const queued = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(loop.name), name: 'waits-for-the-drive' });
      assert.equal(queued.status, 201, JSON.stringify(queued.body));
      const second = await runCli(['create', '--device', testDriveId(loop.name), '--name', 'second'], env());
      assert.equal(second.code, 2, second.stderr);
      assert.match(second.stderr, new RegExp(`${testDriveId(loop.name)} is busy with job ${cliJob?.id}`));
      // The service has looked for work more than once since: the drive's lock kept it waiting.
      const before = (await api(service.url, 'GET', `/api/v1/jobs/${cliJob?.id}`)).body.bytes_done as number;
      await waitFor(
        'the command to read further',
        async () => ((await api(service.url, 'GET', `/api/v1/jobs/${cliJob?.id}`)).body.bytes_done as number) > before,
      );
      const waiting = (await api(service.url, 'GET', `/api/v1/jobs/${queued.body.id}`)).body as JobBody;
      assert.equal(waiting.status, 'queued');

      await fault.setDelay(0);
      const done = await running.done;
      assert.equal(done.code, 0, done.stderr);
      assert.equal(await sha256File(output), iso.sha256);
      await waitFor('the queued job to run once the drive is free', async () => {
        const job = (await api(service.url, 'GET', `/api/v1/jobs/${queued.body.id}`)).body as JobBody;
        return job.status === 'completed';
      });
      const archived = (await api(service.url, 'GET', '/api/v1/archives?limit=100')).body.archives as Array<{ path: string }>;
      assert.ok(
        archived.some((archive) => archive.path === output),
        'the outside image is in the archive too',
      );
    });

    it('never lets the service write outside its folders: after kill -9 of the command, only the command continues the job', async () => {
      const output = join(work, 'elsewhere', 'killed.iso');
      const args = ['create', '--device', loop.path, '--output', output, '--no-verify'];
      await fault.setDelay(200);
      const running = startCli(args, env());
      let job: JobBody | undefined;
      await waitFor('the command reading its job', async () => {
        job = (await jobs()).find((candidate) => candidate.output_file === output);
        return job !== undefined && job.status === 'running' && job.bytes_done > 0;
      });
      running.child.kill('SIGKILL');
      await running.done;
      // The service sees the holder is gone, takes the job up, and refuses to write the file.
      let refused: { status: string; error: { code: string; message: string } | null } | undefined;
      await waitFor('the service to refuse the job', async () => {
        refused = (await api(service.url, 'GET', `/api/v1/jobs/${job?.id}`)).body;
        return refused?.status === 'failed';
      });
      assert.equal(refused?.error?.code, 'output_outside_service');
      assert.match(refused?.error?.message ?? '', /Continue it with: disk2iso create --device (?:[a-z0-9-]+\.)?loop\d+ --output .*killed\.iso/);
      await assert.rejects(stat(output), 'no finished image');

      await fault.setDelay(0);
      const resumed = await runCli(args, env());
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stderr, new RegExp(`imaging here as job ${job?.id}`));
      assert.equal(await sha256File(output), iso.sha256);
    });
  });
});
