import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountFaultFs } from '../tools/faultfs.js';
import { makeIso } from '../tools/iso.js';
import { attachLoop } from '../tools/loop.js';
import { runCli, startCli } from './run-cli.js';

/** Polls until `check` holds; the bound only ends a broken run, it is no speed requirement. */
async function waitFor(check: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 1000; attempt += 1) {
    if (check()) return;
    await sleep(100);
  }
  throw new Error('gave up waiting');
}

describe('disk2iso devices and device commands', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-devices-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  const env = (extra: string, demo = 'off'): Record<string, string> => ({
    DISK2ISO_DATA_DIR: join(work, 'data'),
    DISK2ISO_EXTRA_DEVICES: extra,
    DISK2ISO_DRIVES_DEMO: demo,
    DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
  });

  it('tells whether a drive holds a readable disc, and refuses to eject a loop device', async () => {
    const iso = await makeIso({ dir: work, label: 'HAS_MEDIA', dataMiB: 2 });
    const blank = join(work, 'blank.img');
    await writeFile(blank, '');
    await truncate(blank, 4 * 1024 * 1024);
    const disc = await attachLoop(iso.path);
    const empty = await attachLoop(blank);
    try {
      const sources = `${disc.path},${empty.path}`;
      assert.equal((await runCli(['device', 'has-media', disc.name], env(sources))).code, 0);
      assert.equal((await runCli(['device', 'has-media', empty.name], env(sources))).code, 1, 'an all-zero device is blank');
      assert.equal((await runCli(['device', 'has-media', disc.path], env(sources))).code, 0, 'the device path of a discovered drive, as in the spec’s loop');
      assert.equal((await runCli(['device', 'has-media', empty.path], env(sources))).code, 1);
      const undiscovered = await runCli(['device', 'has-media', '/dev/null'], env(sources));
      assert.equal(undiscovered.code, 2, 'a device path disk2iso did not discover is refused');
      assert.match(undiscovered.stderr, /unknown device "\/dev\/null"/);
      assert.equal((await runCli(['device', 'eject', disc.path], env(sources))).code, 2);
      const eject = await runCli(['device', 'eject', disc.name], env(sources));
      assert.equal(eject.code, 2);
      assert.match(eject.stderr, /not ejectable|cannot be ejected/i);
      const unknown = await runCli(['device', 'has-media', 'sr7'], env(sources));
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /unknown/i);
    } finally {
      await disc.detach();
      await empty.detach();
    }
  });

  it('answers for a drive that does not answer after the probe timeout, not after the drive', { timeout: 120_000 }, async () => {
    const iso = await makeIso({ dir: work, label: 'SILENT', dataMiB: 1 });
    const fault = await mountFaultFs({ backingFile: iso.path });
    const disc = await attachLoop(fault.file);
    try {
      await fault.setHang(true);
      const check = startCli(['device', 'has-media', disc.name], env(disc.path));
      await waitFor(() => check.stderr().includes(`${disc.name} did not answer within 10 s`));
      assert.ok((await fault.stats()).holding, 'the drive still holds the read: the answer did not wait for it');
      // The read stays blocked in the kernel, and Node cannot exit before its thread is free again.
      await fault.setHang(false);
      assert.equal((await check.done).code, 1);
    } finally {
      await fault.setHang(false);
      await disc.detach();
      await fault.unmount();
    }
  });

  it('offers a clearly labelled demo drive that can be imaged at once', async () => {
    const listed = await runCli(['devices', '--json'], env('', 'on'));
    assert.equal(listed.code, 0, listed.stderr);
    const { devices } = JSON.parse(listed.stdout) as {
      devices: Array<{ id: string; kind: string; description: string; media: { present: boolean; kind: string } }>;
    };
    const demo = devices.find((device) => device.id === 'demo');
    assert.ok(demo, listed.stdout);
    assert.equal(demo.kind, 'demo');
    assert.match(demo.description, /demo/i);
    assert.equal(demo.media.present, true);
    assert.equal(demo.media.kind, 'data');
    const created = await runCli(['create', '--device', 'demo', '--no-verify'], env('', 'on'));
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /DISK2ISO_DEMO\.iso/);
  });
});
