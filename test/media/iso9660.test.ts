import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseDecDateTime } from '../../src/media/iso9660.js';
import { probeMedia } from '../../src/media/probe.js';
import { makeIso } from '../tools/iso.js';

/** makeIso pins every date to SOURCE_DATE_EPOCH 1704067200. */
const PINNED_DATE = '2024-01-01T00:00:00.000Z';
let workdir: string;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'media-iso9660-'));
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

test('plain ISO 9660 from xorriso: label, size from the volume descriptor, creation date', async () => {
  const iso = await makeIso({ dir: workdir, label: 'PLAIN_DISC', joliet: false, rockRidge: false, dataMiB: 3 });
  const media = await probeMedia(iso.path);
  assert.equal(media.present, true);
  assert.deepEqual(media.fileSystems, ['iso9660']);
  assert.equal(media.volumeId, 'PLAIN_DISC');
  assert.equal(media.volumeLabel, 'PLAIN_DISC');
  assert.equal(media.imageSizeBytes, iso.sizeBytes);
  assert.equal(media.sizeSource, 'iso9660');
  assert.equal(media.deviceSizeBytes, iso.sizeBytes);
  assert.equal(media.logicalSectorSize, 2048);
  assert.equal(media.createdAt, PINNED_DATE);
  assert.equal(media.kind, 'data');
  assert.equal(media.mediaType, null);
});

test('Joliet: detected from the escape sequence, its UCS-2 label preferred', async () => {
  const iso = await makeIso({ dir: workdir, label: 'Mixed Case Label', joliet: true, rockRidge: false, dataMiB: 1 });
  const media = await probeMedia(iso.path);
  assert.deepEqual(media.fileSystems, ['iso9660', 'joliet']);
  assert.equal(media.volumeLabel, 'Mixed Case Label');
  assert.equal(media.kind, 'data');
});

test('a Joliet label cut to 16 characters gives way to the full ISO 9660 identifier', async () => {
  const label = 'ARCHIVE_2024_FAMILY_PHOTOS';
  const iso = await makeIso({ dir: workdir, label, joliet: true, rockRidge: false, dataMiB: 1 });
  const media = await probeMedia(iso.path);
  assert.deepEqual(media.fileSystems, ['iso9660', 'joliet']);
  assert.equal(media.volumeId, label);
  assert.equal(media.volumeLabel, label);
});

test('Rock Ridge: SUSP SP entry and RRIP entries in the root directory record', async () => {
  const iso = await makeIso({ dir: workdir, label: 'RR_DISC', joliet: false, rockRidge: true, dataMiB: 1 });
  const media = await probeMedia(iso.path);
  assert.deepEqual(media.fileSystems, ['iso9660', 'rockridge']);
  assert.equal(media.kind, 'data');
});

test('Joliet and Rock Ridge together', async () => {
  const iso = await makeIso({ dir: workdir, label: 'BOTH', joliet: true, rockRidge: true, dataMiB: 1 });
  const media = await probeMedia(iso.path);
  assert.deepEqual(media.fileSystems, ['iso9660', 'joliet', 'rockridge']);
});

test('VIDEO_TS in the root makes a DVD-Video disc, BDMV a Blu-ray one', async () => {
  const dvd = await makeIso({ dir: workdir, label: 'MOVIE_DVD', videoTs: true, dataMiB: 0.5 });
  const bluray = await makeIso({ dir: workdir, label: 'MOVIE_BD', bdmv: true, dataMiB: 0.5 });
  const plainIsoDvd = await makeIso({ dir: workdir, label: 'MOVIE_DVD_ISO_ONLY', videoTs: true, joliet: false, rockRidge: false, dataMiB: 0.5 });
  assert.equal((await probeMedia(dvd.path)).kind, 'dvd-video');
  assert.equal((await probeMedia(bluray.path)).kind, 'bd-video');
  assert.equal((await probeMedia(plainIsoDvd.path)).kind, 'dvd-video');
});

test('a device larger than the volume: the size comes from the descriptor, not the device', async () => {
  const iso = await makeIso({ dir: workdir, label: 'SMALLER', dataMiB: 1 });
  const reported = (await stat(iso.path)).size + 300 * 2048;
  const media = await probeMedia(iso.path, { deviceSizeBytes: reported });
  assert.equal(media.deviceSizeBytes, reported);
  assert.equal(media.imageSizeBytes, iso.sizeBytes);
  assert.equal(media.sizeSource, 'iso9660');
});

test('dec-datetime: GMT offset applied, zero and impossible dates are null', () => {
  const field = (digits: string, offsetQuarters: number): Buffer => {
    const bytes = Buffer.alloc(17);
    bytes.write(digits, 0, 'latin1');
    bytes.writeInt8(offsetQuarters, 16);
    return bytes;
  };
  assert.equal(parseDecDateTime(field('2023063023595950', 8)), '2023-06-30T21:59:59.500Z');
  assert.equal(parseDecDateTime(field('2024010100300000', -20)), '2024-01-01T05:30:00.000Z');
  assert.equal(parseDecDateTime(field('0000000000000000', 0)), null);
  assert.equal(parseDecDateTime(Buffer.alloc(17)), null);
  assert.equal(parseDecDateTime(field('2023023112000000', 0)), null);
  assert.equal(parseDecDateTime(field('2023133112000000', 0)), null);
  assert.equal(parseDecDateTime(field('2023010112000000', 99)), null);
});
