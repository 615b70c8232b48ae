import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { mountFaultFs } from '../tools/faultfs.js';
import { makeIso, sha256File } from '../tools/iso.js';
import { attachLoop } from '../tools/loop.js';
import { runCli, startCli } from './run-cli.js';

const execFileAsync = promisify(execFile);
const SECTOR = 2048;

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  // A guard against hanging forever, not a speed requirement: a healthy run gets there in seconds.
  for (let attempt = 0; attempt < 1200; attempt += 1) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function finishedBytes(mapPath: string): Promise<number> {
  try {
    const text = await readFile(mapPath, 'utf8');
    let done = 0;
    for (const line of text.split('\n')) {
      const match = /^0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+\+/i.exec(line.trim());
      if (match?.[2]) done += parseInt(match[2], 16);
    }
    return done;
  } catch {
    return 0;
  }
}

describe('disk2iso CLI on real loop devices', () => {
  let work: string;
  let iso: { path: string; sizeBytes: number; sha256: string };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-cli-'));
    iso = await makeIso({ dir: work, label: 'CLI_TEST_DISC', dataMiB: 24, files: 6, seed: 7, joliet: true, rockRidge: true });
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** A fresh data dir per test so outputs never mix. */
  async function dataDir(): Promise<{ dir: string; output: string; env: (device: string) => Record<string, string> }> {
    const dir = await mkdtemp(join(work, 'data-'));
    return {
      dir,
      output: join(dir, 'output'),
      env: (device) => ({
        DISK2ISO_DATA_DIR: dir,
        DISK2ISO_EXTRA_DEVICES: device,
        DISK2ISO_DRIVES_DEMO: 'off',
        DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
        DISK2ISO_IMAGING_MAP_SAVE_INTERVAL_SECONDS: '1',
      }),
    };
  }

  it('lists the loop device with its disc, then images it bit-exactly with checksum sidecars', async () => {
    const loop = await attachLoop(iso.path, { sectorSize: SECTOR });
    const data = await dataDir();
    try {
      const devices = await runCli(['devices', '--json'], data.env(loop.path));
      assert.equal(devices.code, 0, devices.stderr);
      const listed = JSON.parse(devices.stdout) as { devices: Array<{ id: string; media: { volumeLabel: string; imageSizeBytes: number; kind: string } }> };
      const entry = listed.devices.find((device) => device.id === loop.name);
      assert.ok(entry, `loop device ${loop.name} listed: ${devices.stdout}`);
      assert.equal(entry.media.volumeLabel, 'CLI_TEST_DISC');
      assert.equal(entry.media.imageSizeBytes, iso.sizeBytes);
      assert.equal(entry.media.kind, 'data');

      const table = await runCli(['devices'], data.env(loop.path));
      assert.match(table.stdout, new RegExp(`${loop.name}\\s+${loop.path}.*CLI_TEST_DISC`));

      const created = await runCli(['create', '--device', loop.name], data.env(loop.path));
      assert.equal(created.code, 0, created.stderr);
      assert.match(created.stderr, /^progress phase=copying percent=/m, 'plain progress lines when not on a terminal');
      const image = join(data.output, 'CLI_TEST_DISC.iso');
      assert.match(created.stdout, /SHA256: [0-9a-f]{64}/);
      assert.equal(await sha256File(image), iso.sha256);
      assert.deepEqual((await readdir(data.output)).sort(), [
        'CLI_TEST_DISC.iso',
        'CLI_TEST_DISC.iso.json',
        'CLI_TEST_DISC.iso.map',
        'CLI_TEST_DISC.iso.md5',
        'CLI_TEST_DISC.iso.sha256',
      ]);
      await execFileAsync('md5sum', ['-c', 'CLI_TEST_DISC.iso.md5'], { cwd: data.output });
      await execFileAsync('sha256sum', ['-c', 'CLI_TEST_DISC.iso.sha256'], { cwd: data.output });
      assert.equal((await stat(image)).mode & 0o777, 0o644);

      const again = await runCli(['create', '--device', loop.path], data.env(loop.path));
      assert.equal(again.code, 0, `the device path of a discovered drive is accepted: ${again.stderr}`);
      assert.equal(await sha256File(join(data.output, 'CLI_TEST_DISC_2.iso')), iso.sha256, 'same label, new name, nothing overwritten');

      const verified = await runCli(['verify', image], data.env(loop.path));
      assert.equal(verified.code, 0, verified.stderr);
      assert.match(verified.stdout, /MD5: OK/);
      assert.match(verified.stdout, /SHA256: OK/);

      const damaged = join(data.output, 'CLI_TEST_DISC_2.iso');
      const bytes = await readFile(damaged);
      bytes[12345] = (bytes[12345] ?? 0) ^ 0xff;
      await writeFile(damaged, bytes);
      const mismatch = await runCli(['verify', damaged], data.env(loop.path));
      assert.equal(mismatch.code, 1);
      assert.match(mismatch.stdout, /FAILED/);

      const missing = await runCli(['verify', join(data.output, 'nope.iso')], data.env(loop.path));
      assert.equal(missing.code, 2);
    } finally {
      await loop.detach();
    }
  });

  it('refuses bad input with a clear message and writes nothing', async () => {
    const loop = await attachLoop(iso.path, { sectorSize: SECTOR });
    const data = await dataDir();
    try {
      const cases: Array<{ args: string[]; message: RegExp }> = [
        { args: ['create', '--device', 'sr9'], message: /unknown/i },
        { args: ['create', '--device', '/dev/sda'], message: /unknown/i },
        { args: ['create', '--device', '../../dev/sda'], message: /unknown|invalid/i },
        { args: ['create', '--device', loop.name, '--output', '../escape.iso'], message: /outside the output directory/ },
        { args: ['create', '--device', loop.name, '--name', '../../etc/x'], message: /path separator|\.\./ },
        { args: ['create', '--device', loop.name, '--name', 'bad\u0001name'], message: /control characters/ },
        { args: ['create', '--device', loop.name, '--read-attempts', 'lots'], message: /whole number/ },
        { args: ['create', '--device', loop.name, '--checksums', 'crc32'], message: /md5, sha1, sha256/ },
      ];
      for (const { args, message } of cases) {
        const result = await runCli(args, data.env(loop.path));
        assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
        assert.match(result.stderr, message, args.join(' '));
      }
      const bad = await runCli(['devices'], { ...data.env(loop.path), DISK2ISO_IMAGING_READ_ATTEMPTS: 'x' });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /imaging\.read_attempts/);
      const written = await readdir(data.output).catch(() => []);
      assert.deepEqual(written, [], 'nothing written in the output directory');
    } finally {
      await loop.detach();
    }
  });

  it('pauses on Ctrl-C, then resumes with the same command to a byte-identical image', async () => {
    // Slow enough, with three reads in flight, that the first map save comes long before the end.
    const fault = await mountFaultFs({ backingFile: iso.path, delayMs: 200 });
    const loop = await attachLoop(fault.file, { sectorSize: SECTOR });
    const data = await dataDir();
    const output = join(data.output, 'paused.iso');
    try {
      const args = ['create', '--device', loop.name, '--output', output, '--no-verify'];
      const running = startCli(args, data.env(loop.path));
      await waitFor('a saved map with progress', async () => (await finishedBytes(`${output}.map`)) > 0);
      running.child.kill('SIGINT');
      const paused = await running.done;
      assert.equal(paused.code, 3, paused.stderr);
      assert.match(paused.stderr, /To resume: disk2iso create --device/);
      assert.ok((await stat(`${output}.part`)).isFile());
      const doneAtPause = await finishedBytes(`${output}.map`);
      assert.ok(doneAtPause > 0 && doneAtPause < iso.sizeBytes, `partially done: ${doneAtPause}`);

      await fault.setDelay(0);
      const resumed = await runCli(args, data.env(loop.path));
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stdout, /resumed/);
      assert.equal(await sha256File(output), iso.sha256);
    } finally {
      await loop.detach();
      await fault.unmount();
    }
  });

  it('survives kill -9 in the middle of the copy pass', async () => {
    const fault = await mountFaultFs({ backingFile: iso.path, delayMs: 200 });
    const loop = await attachLoop(fault.file, { sectorSize: SECTOR });
    const data = await dataDir();
    const output = join(data.output, 'killed.iso');
    try {
      const args = ['create', '--device', loop.name, '--output', output];
      const running = startCli(args, data.env(loop.path));
      await waitFor('a saved map with progress', async () => (await finishedBytes(`${output}.map`)) > 0);
      running.child.kill('SIGKILL');
      const killed = await running.done;
      assert.equal(killed.signal, 'SIGKILL');
      await assert.rejects(stat(output), 'no finished image after a crash');

      await fault.setDelay(0);
      const resumed = await runCli(args, data.env(loop.path));
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(await sha256File(output), iso.sha256);
      assert.match(resumed.stdout, /Verification: passed/);
    } finally {
      await loop.detach();
      await fault.unmount();
    }
  });

  it('maps unreadable sectors, finishes the rest and exits 4', async () => {
    const badSector = 300;
    const fault = await mountFaultFs({ backingFile: iso.path, badRanges: [[badSector * SECTOR, (badSector + 1) * SECTOR]] });
    const loop = await attachLoop(fault.file, { sectorSize: SECTOR });
    const data = await dataDir();
    const output = join(data.output, 'bad.iso');
    try {
      const result = await runCli(['create', '--device', loop.name, '--output', output, '--read-attempts', '1'], data.env(loop.path));
      assert.equal(result.code, 4, result.stderr);
      assert.match(result.stderr, /could not be read/);
      const expected = await readFile(iso.path);
      expected.fill(0, badSector * SECTOR, (badSector + 1) * SECTOR);
      assert.ok((await readFile(output)).equals(expected), 'every other sector is byte-identical; the bad one is zero');
      const { stdout } = await execFileAsync('ddrescuelog', ['--list-blocks=-', '-b', String(SECTOR), `${output}.map`]);
      assert.deepEqual(stdout.trim().split('\n'), [String(badSector)]);
    } finally {
      await loop.detach();
      await fault.unmount();
    }
  });
});
