import assert from 'node:assert/strict';
import { mkdtemp, open, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { probeMedia } from '../../src/media/probe.js';
import { crc16, parseTimestamp } from '../../src/media/udf.js';
import { requireTool, run } from '../tools/exec.js';
import { type RootAllocation, buildUdfImage } from './udf-builder.js';

const BLOCK = 2048;
const ISO_8601_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
let workdir: string;
let counter = 0;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'media-udf-'));
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

function scratch(name: string): string {
  counter += 1;
  return join(workdir, `${counter}-${name}`);
}

/** An image made by Debian's mkudffs (udftools) on a sparse file of `mib` MiB. */
async function mkudffs(mib: number, args: string[]): Promise<string> {
  const tool = await requireTool('mkudffs', 'udftools');
  const path = scratch('mkudffs.img');
  await (await open(path, 'w')).close();
  await truncate(path, mib * 1024 * 1024);
  await run(tool, [...args, path]);
  return path;
}

/** udftools' own reader: the independent check that a hand-built image is valid UDF. */
async function udfinfo(path: string): Promise<Record<string, string>> {
  const tool = await requireTool('udfinfo', 'udftools');
  const { stdout } = await run(tool, [path]);
  const fields: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const match = /^(\w+)=(.*)$/.exec(line);
    if (match?.[1] !== undefined) fields[match[1]] = match[2] ?? '';
  }
  return fields;
}

/** Overwrites `length` bytes at `offset` with a pattern, like a scratch or a bad burn would. */
async function damage(path: string, offset: number, length: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.write(Buffer.alloc(length, 0xa5), 0, length, offset);
  } finally {
    await handle.close();
  }
}

test('mkudffs hard-disk layout (UDF 2.01, 2048-byte blocks): label, volume end, data disc', async () => {
  const path = await mkudffs(16, ['--media-type=hd', '--blocksize=2048', '--label=ARCHIVE_UDF']);
  const media = await probeMedia(path);
  assert.deepEqual(media.fileSystems, ['udf']);
  assert.equal(media.volumeLabel, 'ARCHIVE_UDF');
  assert.equal(media.volumeId, null, 'volumeId is the ISO 9660 identifier; this disc has none');
  assert.equal(media.imageSizeBytes, 16 * 1024 * 1024);
  assert.equal(media.sizeSource, 'udf');
  assert.equal(media.kind, 'data');
  assert.match(media.createdAt ?? '', ISO_8601_UTC);
});

for (const blockSize of [512, 4096]) {
  test(`mkudffs with ${blockSize}-byte blocks: the anchor is found at 256 x ${blockSize}`, async () => {
    const path = await mkudffs(8, ['--media-type=hd', `--blocksize=${blockSize}`, `--label=BS${blockSize}`]);
    const media = await probeMedia(path);
    assert.deepEqual(media.fileSystems, ['udf']);
    assert.equal(media.volumeLabel, `BS${blockSize}`);
    assert.equal(media.imageSizeBytes, 8 * 1024 * 1024);
  });
}

for (const args of [['--udfrev=1.02'], ['--ad=short'], ['--ad=long'], ['--media-type=dvd'], ['--media-type=cdr']]) {
  test(`mkudffs ${args.join(' ')}: recognised with its label`, async () => {
    const path = await mkudffs(8, [
      ...(args.some((arg) => arg.startsWith('--media-type')) ? [] : ['--media-type=hd']),
      '--blocksize=2048',
      '--label=VARIANT',
      ...args,
    ]);
    const media = await probeMedia(path);
    assert.deepEqual(media.fileSystems, ['udf']);
    assert.equal(media.volumeLabel, 'VARIANT');
    assert.equal(media.kind, 'data');
  });
}

test('the test builder writes UDF that udftools reads back', async () => {
  for (const revision of ['2.01', '2.50'] as const) {
    const { path } = await buildUdfImage({
      path: scratch('check.img'),
      revision,
      label: 'BUILT_LABEL',
      volumeId: 'BUILT_VID',
      rootDirectories: ['BDMV', 'CERTIFICATE'],
    });
    const info = await udfinfo(path);
    assert.equal(info['lvid'], 'BUILT_LABEL');
    assert.equal(info['vid'], 'BUILT_VID');
    assert.equal(info['udfrev'], revision);
    assert.equal(info['blocks'], '1024');
    assert.equal(info['numdirs'], '3');
  }
});

const allocations: RootAllocation[] = ['inline', 'short', 'long', 'continued'];
for (const revision of ['2.01', '2.50'] as const) {
  for (const allocation of allocations) {
    test(`UDF ${revision} root directory (${allocation} allocation): BDMV makes a Blu-ray disc`, async () => {
      const { path, sizeBytes } = await buildUdfImage({
        path: scratch('bd.img'),
        revision,
        rootAllocation: allocation,
        label: 'MOVIE_BD',
        rootDirectories: ['CERTIFICATE', 'BDMV'],
      });
      const media = await probeMedia(path);
      assert.deepEqual(media.fileSystems, ['udf']);
      assert.equal(media.kind, 'bd-video');
      assert.equal(media.volumeLabel, 'MOVIE_BD');
      assert.equal(media.imageSizeBytes, sizeBytes);
      assert.equal(media.createdAt, '2024-01-01T11:00:00.000Z', '12:00 at UTC+01:00');
    });
  }
}

test('UDF root directory with VIDEO_TS makes a DVD-Video disc; other names a data disc', async () => {
  const dvd = await buildUdfImage({ path: scratch('dvd.img'), revision: '2.01', rootAllocation: 'short', rootDirectories: ['AUDIO_TS', 'VIDEO_TS'] });
  const data = await buildUdfImage({ path: scratch('data.img'), revision: '2.01', rootDirectories: ['PHOTOS', 'VIDEO_TSX'] });
  assert.equal((await probeMedia(dvd.path)).kind, 'dvd-video');
  assert.equal((await probeMedia(data.path)).kind, 'data');
});

test('an allocation extent that points to itself ends the walk: label kept, no hang', async () => {
  const { path } = await buildUdfImage({ path: scratch('loop.img'), revision: '2.50', rootAllocation: 'looped', label: 'LOOPED', rootDirectories: ['BDMV'] });
  const media = await probeMedia(path);
  assert.deepEqual(media.fileSystems, ['udf']);
  assert.equal(media.volumeLabel, 'LOOPED');
  assert.equal(media.kind, 'data');
});

test('without trailing anchors the volume ends with its partition', async () => {
  const blocks = 1024;
  const { path } = await buildUdfImage({ path: scratch('no-trailing.img'), blocks, trailingAnchors: false });
  const media = await probeMedia(path);
  assert.equal(media.imageSizeBytes, (blocks - 257) * BLOCK);
  assert.equal(media.sizeSource, 'udf');
});

test('a device larger than the volume: trailing anchors just after the partition end it', async () => {
  const { path, sizeBytes } = await buildUdfImage({ path: scratch('padded.img'), blocks: 2048 });
  await truncate(path, sizeBytes + 5000 * BLOCK);
  const media = await probeMedia(path);
  assert.equal(media.deviceSizeBytes, sizeBytes + 5000 * BLOCK);
  assert.equal(media.imageSizeBytes, sizeBytes);
});

test('UDF bridge: labels from both, size from the larger of the two volumes', async () => {
  const udfLarger = await buildUdfImage({
    path: scratch('bridge-a.img'),
    label: 'Movie Title',
    isoBridge: { volumeId: 'MOVIE_TITLE', volumeSpaceBlocks: 100 },
    rootDirectories: ['VIDEO_TS'],
  });
  const a = await probeMedia(udfLarger.path);
  assert.deepEqual(a.fileSystems, ['iso9660', 'udf']);
  assert.equal(a.volumeLabel, 'Movie Title');
  assert.equal(a.volumeId, 'MOVIE_TITLE');
  assert.equal(a.imageSizeBytes, udfLarger.sizeBytes);
  assert.equal(a.sizeSource, 'udf');
  assert.equal(a.kind, 'dvd-video');
  assert.equal(a.createdAt, '2024-01-01T11:00:00.000Z', 'ISO 9660 date 12:00 at GMT offset +4 quarters');

  const isoLarger = await buildUdfImage({ path: scratch('bridge-b.img'), isoBridge: { volumeId: 'BIGGER', volumeSpaceBlocks: 1500 } });
  const b = await probeMedia(isoLarger.path);
  assert.equal(b.imageSizeBytes, 1500 * BLOCK);
  assert.equal(b.sizeSource, 'iso9660');
});

test('a damaged first anchor: the volume is found from the anchor on the last sector', async () => {
  const { path } = await buildUdfImage({ path: scratch('anchor.img'), label: 'RESCUED' });
  await damage(path, 256 * BLOCK + 20, 4);
  const media = await probeMedia(path);
  assert.deepEqual(media.fileSystems, ['udf']);
  assert.equal(media.volumeLabel, 'RESCUED');
});

test('every anchor damaged: no UDF, and the probe still answers', async () => {
  const blocks = 1024;
  const { path } = await buildUdfImage({ path: scratch('no-anchor.img'), blocks });
  for (const location of [256, blocks - 257, blocks - 1]) await damage(path, location * BLOCK + 4, 1);
  const media = await probeMedia(path);
  assert.deepEqual(media.fileSystems, []);
  assert.equal(media.sizeSource, 'device');
  assert.equal(media.kind, 'unknown');
});

test('a damaged logical volume descriptor in the main sequence: the reserve copy is used', async () => {
  const { path } = await buildUdfImage({ path: scratch('reserve.img'), label: 'FROM_RESERVE', rootDirectories: ['BDMV'] });
  await damage(path, (32 + 3) * BLOCK + 100, 8);
  const media = await probeMedia(path);
  assert.equal(media.volumeLabel, 'FROM_RESERVE');
  assert.equal(media.kind, 'bd-video');
});

test('CRC-ITU-T and timestamps', () => {
  assert.equal(crc16(Buffer.from('123456789', 'latin1')), 0x31c3);
  const stamp = Buffer.alloc(12);
  stamp.writeUInt16LE((1 << 12) | (0x1000 - 300), 0);
  stamp.writeInt16LE(2020, 2);
  stamp.set([2, 29, 23, 30, 0, 0], 4);
  assert.equal(parseTimestamp(stamp), '2020-03-01T04:30:00.000Z', '23:30 at UTC-05:00');
  stamp[5] = 30;
  assert.equal(parseTimestamp(stamp), null);
  assert.equal(parseTimestamp(Buffer.alloc(12)), null);
});
