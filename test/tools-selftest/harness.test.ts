import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { errnoCode } from '../../src/errors.js';
import { alignedBuffer, readDirect } from '../tools/direct-io.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';

// The full chain the engine tests rely on: ISO file -> faultfs (/disc.img) -> read-only loop
// device with 2048-byte sectors -> O_DIRECT reads that meet real kernel I/O errors.

const SECTOR = 2048;
const BAD_SECTOR = 1000;

let workdir: string;
let iso: MadeIso;
let isoBytes: Buffer;
let lastSector: number;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'harness-selftest-'));
  iso = await makeIso({ dir: workdir, dataMiB: 8, files: 3, seed: 42 });
  isoBytes = await readFile(iso.path);
  lastSector = iso.sizeBytes / SECTOR - 1;
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

function sectors(first: number, count: number): Buffer {
  return isoBytes.subarray(first * SECTOR, (first + count) * SECTOR);
}

async function readSectors(device: LoopDevice, first: number, count: number): Promise<Buffer> {
  return readDirect(device.path, first * SECTOR, count * SECTOR);
}

async function assertReadFails(read: Promise<unknown>, codes: readonly string[]): Promise<void> {
  await assert.rejects(read, (error: unknown) => {
    assert.ok(codes.includes(errnoCode(error) ?? ''), `expected one of ${codes.join('/')}, got ${String(error)}`);
    return true;
  });
}

/** Mounts faultfs over the test ISO and a loop device on it; both are released by the returned cleanup. */
async function chain(badRanges: Array<[number, number]>): Promise<{ fs: FaultFs; loop: LoopDevice; cleanup(): Promise<void> }> {
  const fs = await mountFaultFs({ backingFile: iso.path, badRanges });
  let loop: LoopDevice;
  try {
    loop = await attachLoop(fs.file, { sectorSize: 2048 });
  } catch (error) {
    await fs.unmount();
    throw error;
  }
  return {
    fs,
    loop,
    async cleanup() {
      try {
        await loop.detach();
      } finally {
        await fs.unmount();
      }
    },
  };
}

test('the ISO is about 8 MiB and sector-aligned', () => {
  assert.equal(iso.sizeBytes % SECTOR, 0);
  assert.ok(iso.sizeBytes > 8 * 1024 * 1024 && iso.sizeBytes < 9 * 1024 * 1024, `size ${iso.sizeBytes}`);
  assert.equal(createHash('sha256').update(isoBytes).digest('hex'), iso.sha256);
});

test('loop device over faultfs: good sectors exact, bad sectors EIO, healed after setBadRanges([])', async () => {
  const { fs, loop, cleanup } = await chain([
    [BAD_SECTOR * SECTOR, (BAD_SECTOR + 1) * SECTOR],
    [lastSector * SECTOR, (lastSector + 1) * SECTOR],
  ]);
  try {
    assert.equal((await readFile(`/sys/block/${loop.name}/queue/logical_block_size`, 'utf8')).trim(), '2048');
    assert.equal((await readFile(`/sys/block/${loop.name}/ro`, 'utf8')).trim(), '1');
    assert.equal(Number(await readFile(`/sys/block/${loop.name}/size`, 'utf8')) * 512, iso.sizeBytes);

    // Everything before the bad sector, in 32-sector clusters like the engine's copy pass.
    for (let first = 0; first < BAD_SECTOR; first += 32) {
      const count = Math.min(32, BAD_SECTOR - first);
      assert.ok((await readSectors(loop, first, count)).equals(sectors(first, count)), `sectors ${first}+${count}`);
    }
    assert.ok((await readSectors(loop, BAD_SECTOR - 1, 1)).equals(sectors(BAD_SECTOR - 1, 1)));
    assert.ok((await readSectors(loop, BAD_SECTOR + 1, 1)).equals(sectors(BAD_SECTOR + 1, 1)));
    assert.ok((await readSectors(loop, lastSector - 1, 1)).equals(sectors(lastSector - 1, 1)));

    const failedBefore = (await fs.stats()).failedReads;
    await assertReadFails(readSectors(loop, BAD_SECTOR, 1), ['EIO']);
    await assertReadFails(readSectors(loop, BAD_SECTOR - 8, 16), ['EIO']);
    await assertReadFails(readSectors(loop, lastSector, 1), ['EIO']);
    await assertReadFails(readSectors(loop, lastSector - 3, 4), ['EIO']);
    assert.ok((await fs.stats()).failedReads >= failedBefore + 4, 'every failed read reached the daemon');

    await fs.setBadRanges([]);
    assert.ok((await readSectors(loop, BAD_SECTOR, 1)).equals(sectors(BAD_SECTOR, 1)));
    assert.ok((await readSectors(loop, lastSector, 1)).equals(sectors(lastSector, 1)));
    const whole = createHash('sha256');
    for (let position = 0; position < iso.sizeBytes; position += 1024 * 1024) {
      whole.update(await readDirect(loop.path, position, Math.min(1024 * 1024, iso.sizeBytes - position)));
    }
    assert.equal(whole.digest('hex'), iso.sha256);

    await fs.setBadRanges([[BAD_SECTOR * SECTOR + 100, BAD_SECTOR * SECTOR + 101]]);
    await assertReadFails(readSectors(loop, BAD_SECTOR, 1), ['EIO']);
  } finally {
    await cleanup();
  }
});

test('delay mode: reads stay correct and the daemon applies and drops the delay', async () => {
  const { fs, loop, cleanup } = await chain([]);
  try {
    const delayed = await fs.stats();
    assert.equal(delayed.delayedReads, 0);
    await fs.setDelay(3);
    for (let first = 0; first < 64; first += 8) {
      assert.ok((await readSectors(loop, first, 8)).equals(sectors(first, 8)));
    }
    // The daemon reloads the control file at its next read, so only now does it report the delay.
    const afterDelayed = await fs.stats();
    assert.equal(afterDelayed.delayUs, 3000);
    assert.ok(afterDelayed.generation > delayed.generation);
    assert.ok(afterDelayed.delayedReads - delayed.delayedReads >= 8, `delayed reads ${afterDelayed.delayedReads - delayed.delayedReads}`);
    assert.equal(afterDelayed.delayedReads - delayed.delayedReads, afterDelayed.reads - delayed.reads);

    await fs.setDelay(0);
    assert.ok((await readSectors(loop, 64, 8)).equals(sectors(64, 8)));
    const undelayed = await fs.stats();
    assert.equal(undelayed.delayUs, 0);
    assert.equal(undelayed.delayedReads, afterDelayed.delayedReads);
    assert.ok(undelayed.reads > afterDelayed.reads);
  } finally {
    await cleanup();
  }
});

test('kill(): the drive vanishes, reads fail instead of hanging, cleanup still works', async () => {
  const { fs, loop, cleanup } = await chain([]);
  try {
    assert.ok((await readSectors(loop, 16, 1)).equals(sectors(16, 1)));
    // Like the engine, hold the device open across the vanishing drive.
    const held = await open(loop.path, constants.O_RDONLY | constants.O_DIRECT);
    const heldImage = await open(fs.file, 'r');
    try {
      const buffer = alignedBuffer(4 * SECTOR);
      assert.equal((await held.read(buffer, 0, SECTOR, 32 * SECTOR)).bytesRead, SECTOR);
      assert.equal((await heldImage.read(buffer, 0, SECTOR, 0)).bytesRead, SECTOR);
      await fs.kill();
      await assertReadFails(held.read(buffer, 0, 4 * SECTOR, 2000 * SECTOR), ['EIO', 'ENOTCONN']);
      await assertReadFails(readSectors(loop, 16, 1), ['EIO', 'ENOTCONN']);
      await assertReadFails(heldImage.read(buffer, 0, SECTOR, 0), ['ENOTCONN']);
    } finally {
      await held.close();
      await heldImage.close();
    }
  } finally {
    await cleanup();
  }
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  assert.ok(!mounts.includes(fs.mountpoint), 'mount is gone');
  await fs.unmount();
});
