import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createUdevadmReader, parseUdevProperties, udevDriveCapabilities, udevIdentity, udevMediaFacts } from '../../src/drives/udev.js';
import { attachLoop } from '../tools/loop.js';
import { readUdevRecording } from './fixtures.js';

test('KEY=VALUE lines are parsed; values keep their = signs and spaces', () => {
  const properties = parseUdevProperties("DEVNAME=/dev/sr0\nDEVLINKS=/dev/cdrom /dev/dvd\nID_FS_LABEL='QUOTED'\nID_X=a=b\n\nnot a property\n");
  assert.deepEqual(properties, { DEVNAME: '/dev/sr0', DEVLINKS: '/dev/cdrom /dev/dvd', ID_FS_LABEL: 'QUOTED', ID_X: 'a=b' });
});

test('recorded DVD data disc: present, dvd, one data track', async () => {
  const properties = parseUdevProperties(await readUdevRecording('sr0-dvd-data'));
  assert.deepEqual(udevMediaFacts(properties), { mediaPresent: true, mediaType: 'dvd', blank: false, audioTracks: 0, dataTracks: 1 });
});

test('recorded audio CD: present, cd, twelve audio tracks and no data track', async () => {
  const properties = parseUdevProperties(await readUdevRecording('sr0-audio-cd'));
  assert.deepEqual(udevMediaFacts(properties), { mediaPresent: true, mediaType: 'cd', blank: false, audioTracks: 12, dataTracks: 0 });
});

test('recorded blank BD-R: present, bd, blank', async () => {
  const properties = parseUdevProperties(await readUdevRecording('sr1-blank-bd-r'));
  assert.deepEqual(udevMediaFacts(properties), { mediaPresent: true, mediaType: 'bd', blank: true, audioTracks: 0, dataTracks: 0 });
});

test('recorded empty drive: cdrom_id ran (ID_CDROM=1) but set no ID_CDROM_MEDIA', async () => {
  const properties = parseUdevProperties(await readUdevRecording('sr1-no-media'));
  assert.equal(udevMediaFacts(properties)?.mediaPresent, false);
  assert.equal(udevMediaFacts({ ID_CDROM: '1', ID_CDROM_MEDIA: '0' })?.mediaPresent, false);
});

test('no cdrom_id properties at all: udev knows nothing about the medium', () => {
  assert.equal(udevMediaFacts(null), null);
  assert.equal(udevMediaFacts({ DEVNAME: '/dev/loop0', SUBSYSTEM: 'block' }), null);
});

test('drive capabilities and identity from udev', async () => {
  const bluray = parseUdevProperties(await readUdevRecording('sr1-no-media'));
  const capabilities = udevDriveCapabilities(bluray);
  for (const expected of ['cd', 'dvd', 'bd', 'write-bd-r', 'write-bd-re', 'write-dvd+r-dl']) assert.ok(capabilities.includes(expected), expected);
  assert.deepEqual(udevIdentity(bluray), { vendor: 'ASUS', model: 'BW-16D1HT' });
  const sata = parseUdevProperties(await readUdevRecording('sr0-dvd-data'));
  assert.equal(udevDriveCapabilities(sata).includes('bd'), false);
  assert.deepEqual(udevIdentity(sata), { vendor: null, model: 'HL-DT-ST DVDRAM GH24NSD1' });
});

test('the udevadm reader: real udevadm on a real loop device; unknown devices and a missing udevadm give null', async () => {
  const workdir = await mkdtemp(join(tmpdir(), 'drives-udev-'));
  try {
    const file = join(workdir, 'disk.img');
    await writeFile(file, Buffer.alloc(1024 * 1024));
    const loop = await attachLoop(file, { sectorSize: 512 });
    try {
      const properties = await createUdevadmReader()(loop.path);
      assert.equal(properties?.['DEVNAME'], loop.path);
      assert.equal(properties?.['SUBSYSTEM'], 'block');
    } finally {
      await loop.detach();
    }
    assert.equal(await createUdevadmReader()(join(workdir, 'sr99')), null);
    assert.equal(await createUdevadmReader({ command: join(workdir, 'no-udevadm-here') })('/dev/sr0'), null);
  } finally {
    await rm(workdir, { recursive: true, force: true });
  }
});
