import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { copyFile, mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readBlockGeometry } from '../../src/drives/sysfs.js';
import type { MediaInfo } from '../../src/drives/types.js';
import { UnavailableError } from '../../src/errors.js';
import { type UdevMediaFacts, probeMedia } from '../../src/media/probe.js';
import { requireTool, run } from '../tools/exec.js';
import { type ByteRange, mountFaultFs } from '../tools/faultfs.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { attachLoop } from '../tools/loop.js';

const SECTOR = 2048;
let workdir: string;
let counter = 0;
/** One plain ISO (no Joliet, so the ISO 9660 root is the only directory) with VIDEO_TS. */
let dvdIso: MadeIso;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'media-probe-'));
  dvdIso = await makeIso({ dir: workdir, label: 'PROBE_DVD', videoTs: true, joliet: false, rockRidge: false, dataMiB: 2 });
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

function scratch(name: string): string {
  counter += 1;
  return join(workdir, `${counter}-${name}`);
}

/** Deterministic incompressible bytes (the AES-CTR keystream under a fixed key). */
function noise(length: number): Buffer {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16)).update(Buffer.alloc(length));
}

const DVD_WITH_DATA: UdevMediaFacts = { mediaPresent: true, mediaType: 'dvd', blank: false, audioTracks: 0, dataTracks: 1 };

test('random bytes: present, no file system, size from the device, kind unknown', async () => {
  const path = scratch('noise.bin');
  await writeFile(path, noise(1024 * 1024));
  const media = await probeMedia(path);
  assert.equal(media.present, true);
  assert.deepEqual(media.fileSystems, []);
  assert.equal(media.imageSizeBytes, 1024 * 1024);
  assert.equal(media.sizeSource, 'device');
  assert.equal(media.volumeLabel, null);
  assert.equal(media.kind, 'unknown');
});

test('all zero and empty media are blank', async () => {
  const zeros = scratch('zeros.bin');
  await writeFile(zeros, Buffer.alloc(256 * 1024));
  const empty = scratch('empty.bin');
  await writeFile(empty, Buffer.alloc(0));
  assert.equal((await probeMedia(zeros)).kind, 'blank');
  const none = await probeMedia(empty);
  assert.equal(none.kind, 'blank');
  assert.equal(none.deviceSizeBytes, 0);
});

test('a truncated ISO: the descriptor still gives the full size and the label', async () => {
  const path = scratch('truncated.iso');
  await copyFile(dvdIso.path, path);
  await truncate(path, 17 * SECTOR);
  const media = await probeMedia(path);
  assert.deepEqual(media.fileSystems, ['iso9660']);
  assert.equal(media.volumeLabel, 'PROBE_DVD');
  assert.equal(media.imageSizeBytes, dvdIso.sizeBytes);
  assert.equal(media.deviceSizeBytes, 17 * SECTOR);
  assert.equal(media.kind, 'data', 'the root directory is cut off, so VIDEO_TS cannot be seen');
});

test('garbage in the primary volume descriptor: huge extents and lengths, odd block size', async () => {
  const path = scratch('garbage-pvd.iso');
  const image = await readFile(dvdIso.path);
  const pvd = 16 * SECTOR;
  image.writeUInt32LE(0xffffffff, pvd + 156 + 2);
  image.writeUInt32LE(0xffffffff, pvd + 156 + 10);
  image.writeUInt16LE(3000, pvd + 128);
  image.write('9999999999999999', pvd + 813, 'latin1');
  await writeFile(path, image);
  const media = await probeMedia(path);
  assert.deepEqual(media.fileSystems, ['iso9660']);
  assert.equal(media.volumeLabel, 'PROBE_DVD');
  assert.equal(media.createdAt, null);
  assert.equal(media.sizeSource, 'device', 'a block size of 3000 gives no usable volume size');
  assert.equal(media.kind, 'data');
});

test('a root directory extent that points at the volume descriptor itself is read as no entries', async () => {
  const path = scratch('self-root.iso');
  const image = await readFile(dvdIso.path);
  image.writeUInt32LE(16, 16 * SECTOR + 156 + 2);
  image.writeUInt32LE(SECTOR, 16 * SECTOR + 156 + 10);
  await writeFile(path, image);
  const media = await probeMedia(path);
  assert.equal(media.volumeLabel, 'PROBE_DVD');
  assert.equal(media.kind, 'data');
});

test('a path that does not exist is no medium, not an error', async () => {
  const media = await probeMedia(join(workdir, 'missing.iso'));
  assert.equal(media.present, false);
  assert.equal(media.imageSizeBytes, null);
});

test('udev facts: an empty drive is not read, and media type comes from udev', async () => {
  const empty = await probeMedia(dvdIso.path, { udev: { mediaPresent: false, mediaType: null, blank: false, audioTracks: 0, dataTracks: 0 } });
  assert.equal(empty.present, false);
  assert.deepEqual(empty.fileSystems, []);

  const dvd = await probeMedia(dvdIso.path, { udev: DVD_WITH_DATA, deviceSizeBytes: 4_700_000_000 });
  assert.equal(dvd.mediaType, 'dvd');
  assert.equal(dvd.kind, 'dvd-video');
  assert.equal(dvd.imageSizeBytes, dvdIso.sizeBytes, 'the descriptor wins over a misreported device size');
  assert.equal(dvd.deviceSizeBytes, 4_700_000_000);
});

test('udev facts: audio-only discs and blank discs are classified without reading', async () => {
  const audio = await probeMedia(dvdIso.path, {
    udev: { mediaPresent: true, mediaType: 'cd', blank: false, audioTracks: 12, dataTracks: 0 },
    deviceSizeBytes: 700 * 1024 * 1024,
  });
  assert.equal(audio.kind, 'audio');
  assert.equal(audio.mediaType, 'cd');
  assert.deepEqual(audio.fileSystems, [], 'the data on the file was not read');
  assert.equal(audio.sizeSource, 'device');

  const blank: MediaInfo = await probeMedia(dvdIso.path, { udev: { mediaPresent: true, mediaType: 'bd', blank: true, audioTracks: 0, dataTracks: 0 } });
  assert.equal(blank.kind, 'blank');
  assert.equal(blank.present, true);
  assert.equal(blank.imageSizeBytes, null);

  const mixedMode = await probeMedia(dvdIso.path, { udev: { mediaPresent: true, mediaType: 'cd', blank: false, audioTracks: 10, dataTracks: 1 } });
  assert.equal(mixedMode.kind, 'dvd-video', 'a data track is read as data');
});

test('through a read-only loop device with 2048-byte sectors, padded: size from the ISO descriptor', async () => {
  const padded = scratch('padded.iso');
  await copyFile(dvdIso.path, padded);
  await truncate(padded, dvdIso.sizeBytes + 3 * 1024 * 1024);
  const loop = await attachLoop(padded, { sectorSize: 2048, readOnly: true });
  try {
    const geometry = await readBlockGeometry('/sys', loop.name);
    assert.equal(geometry.logicalBlockSize, 2048);
    assert.equal(geometry.sizeBytes, dvdIso.sizeBytes + 3 * 1024 * 1024);
    const media = await probeMedia(loop.path, { sectorSize: 2048, deviceSizeBytes: geometry.sizeBytes });
    assert.equal(media.deviceSizeBytes, dvdIso.sizeBytes + 3 * 1024 * 1024);
    assert.equal(media.imageSizeBytes, dvdIso.sizeBytes);
    assert.equal(media.sizeSource, 'iso9660');
    assert.equal(media.logicalSectorSize, 2048);
    assert.equal(media.volumeLabel, 'PROBE_DVD');
    assert.equal(media.kind, 'dvd-video');
  } finally {
    await loop.detach();
  }
});

test('through a loop device, padded: an mkudffs volume still ends at its last anchor', async () => {
  const mkudffs = await requireTool('mkudffs', 'udftools');
  const image = scratch('udf.img');
  await writeFile(image, Buffer.alloc(0));
  await truncate(image, 8 * 1024 * 1024);
  await run(mkudffs, ['--media-type=hd', '--blocksize=2048', '--label=LOOP_UDF', image]);
  await truncate(image, 12 * 1024 * 1024);
  const loop = await attachLoop(image, { sectorSize: 2048, readOnly: true });
  try {
    const geometry = await readBlockGeometry('/sys', loop.name);
    const media = await probeMedia(loop.path, { sectorSize: 2048, deviceSizeBytes: geometry.sizeBytes });
    assert.deepEqual(media.fileSystems, ['udf']);
    assert.equal(media.volumeLabel, 'LOOP_UDF');
    assert.equal(media.deviceSizeBytes, 12 * 1024 * 1024);
    assert.equal(media.imageSizeBytes, 8 * 1024 * 1024);
  } finally {
    await loop.detach();
  }
});

/** The ISO behind a FUSE file that fails reads in `badRanges` with EIO, behind a loop device. */
async function probeWithBadSectors(badRanges: ByteRange[]): Promise<MediaInfo> {
  const fs = await mountFaultFs({ backingFile: dvdIso.path, badRanges });
  try {
    const loop = await attachLoop(fs.file, { sectorSize: 2048, readOnly: true });
    try {
      return await probeMedia(loop.path, { sectorSize: 2048, deviceSizeBytes: dvdIso.sizeBytes });
    } finally {
      await loop.detach();
    }
  } finally {
    await fs.unmount();
  }
}

async function rootDirectorySector(): Promise<number> {
  const handle = await open(dvdIso.path, 'r');
  try {
    const pvd = Buffer.alloc(SECTOR);
    await handle.read(pvd, 0, SECTOR, 16 * SECTOR);
    return pvd.readUInt32LE(156 + 2);
  } finally {
    await handle.close();
  }
}

test('kernel I/O errors on the volume descriptors: present, nothing recognised, not blank', async () => {
  const media = await probeWithBadSectors([[16 * SECTOR, 18 * SECTOR]]);
  assert.equal(media.present, true);
  assert.deepEqual(media.fileSystems, []);
  assert.equal(media.kind, 'unknown', 'readable zeros before unreadable descriptors look like a damaged disc');
  assert.equal(media.imageSizeBytes, dvdIso.sizeBytes);
  assert.equal(media.sizeSource, 'device');
});

test('kernel I/O errors on the root directory: the volume is still described', async () => {
  const root = await rootDirectorySector();
  const media = await probeWithBadSectors([[root * SECTOR, (root + 1) * SECTOR]]);
  assert.deepEqual(media.fileSystems, ['iso9660']);
  assert.equal(media.volumeLabel, 'PROBE_DVD');
  assert.equal(media.imageSizeBytes, dvdIso.sizeBytes);
  assert.equal(media.kind, 'data', 'VIDEO_TS cannot be seen in an unreadable directory');
});

test('kernel I/O errors everywhere: a disc that reads nothing is unreadable, not blank', async () => {
  await assert.rejects(
    probeWithBadSectors([[0, dvdIso.sizeBytes]]),
    (error: unknown) => error instanceof UnavailableError && error.code === 'media_unreadable',
  );
});
