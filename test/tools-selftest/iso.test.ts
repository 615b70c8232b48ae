import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../tools/exec.js';
import { makeIso, requireTool, sha256File } from '../tools/iso.js';

let workdir: string;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'iso-selftest-'));
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

const SECTOR = 2048;

/** Type codes of the ISO 9660 volume descriptors, read from sector 16 up to the terminator. */
async function volumeDescriptorTypes(iso: Buffer): Promise<number[]> {
  const types: number[] = [];
  for (let sector = 16; ; sector++) {
    const descriptor = iso.subarray(sector * SECTOR, (sector + 1) * SECTOR);
    assert.equal(descriptor.toString('latin1', 1, 6), 'CD001', `descriptor at sector ${sector}`);
    const type = descriptor[0] ?? -1;
    types.push(type);
    if (type === 255) return types;
  }
}

/** Extracts the whole image with xorriso and returns its files (relative path -> content). */
async function extract(isoPath: string): Promise<Map<string, Buffer>> {
  const xorriso = await requireTool('xorriso', 'xorriso');
  const target = await mkdtemp(join(workdir, 'extract-'));
  await run(xorriso, ['-osirrox', 'on', '-indev', isoPath, '-extract', '/', target]);
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(target, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    // xorriso gives directories the image's read-only modes: without root, after() could not remove them.
    if (entry.isDirectory()) await chmod(path, 0o755);
    else if (entry.isFile()) files.set(relative(target, path), await readFile(path));
  }
  return files;
}

test('makeIso builds a labelled ISO 9660 image whose data files hold exactly dataMiB', async () => {
  const iso = await makeIso({ dir: workdir, label: 'SELFTEST_DATA', dataMiB: 3, files: 5, seed: 7 });
  const bytes = await readFile(iso.path);
  assert.equal(iso.sizeBytes, bytes.length);
  assert.equal(iso.sizeBytes % SECTOR, 0);
  assert.equal(iso.sha256, createHash('sha256').update(bytes).digest('hex'));
  const primary = bytes.subarray(16 * SECTOR, 17 * SECTOR);
  assert.equal(primary[0], 1);
  assert.equal(primary.toString('latin1', 40, 72).trimEnd(), 'SELFTEST_DATA');
  assert.equal(primary.readUInt32LE(80) * SECTOR, iso.sizeBytes, 'volume space size matches the file');
  assert.deepEqual(await volumeDescriptorTypes(bytes), [1, 2, 255], 'primary, Joliet, terminator');

  const files = await extract(iso.path);
  const data = [...files].filter(([path]) => path.startsWith('data/'));
  assert.equal(data.length, 5);
  assert.equal(
    data.reduce((sum, [, content]) => sum + content.length, 0),
    3 * 1024 * 1024,
  );
  assert.ok(
    data.some(([, content]) => content.length % SECTOR !== 0),
    'file ends fall mid-sector',
  );
  assert.ok(files.has('data/nested/file_001.bin'));
  assert.ok(files.has('readme.txt'));
});

test('makeIso is reproducible for a seed and differs between seeds', async () => {
  const a = await makeIso({ dir: workdir, dataMiB: 1, seed: 3 });
  const b = await makeIso({ dir: workdir, dataMiB: 1, seed: 3 });
  const c = await makeIso({ dir: workdir, dataMiB: 1, seed: 4 });
  assert.notEqual(a.path, b.path);
  assert.equal(a.sha256, b.sha256);
  assert.notEqual(a.sha256, c.sha256);
  assert.equal(a.sizeBytes, c.sizeBytes);
});

test('makeIso adds DVD-Video and Blu-ray layouts and honours joliet: false', async () => {
  const iso = await makeIso({ dir: workdir, dataMiB: 0.5, files: 1, videoTs: true, bdmv: true, joliet: false });
  assert.deepEqual(await volumeDescriptorTypes(await readFile(iso.path)), [1, 255]);
  const files = await extract(iso.path);
  for (const path of [
    'VIDEO_TS/VIDEO_TS.IFO',
    'VIDEO_TS/VIDEO_TS.BUP',
    'VIDEO_TS/VTS_01_0.IFO',
    'VIDEO_TS/VTS_01_1.VOB',
    'BDMV/index.bdmv',
    'BDMV/MovieObject.bdmv',
    'BDMV/STREAM/00000.m2ts',
  ]) {
    assert.ok(files.has(path), path);
  }
  assert.equal(files.get('VIDEO_TS/VIDEO_TS.IFO')?.toString('latin1', 0, 12), 'DVDVIDEO-VMG');
  assert.equal(files.get('BDMV/index.bdmv')?.toString('latin1', 0, 8), 'INDX0200');
});

test('makeIso writes Rock Ridge only when asked', async () => {
  const plain = await readFile((await makeIso({ dir: workdir, dataMiB: 0.25, files: 1, joliet: false, rockRidge: false })).path);
  const rock = await readFile((await makeIso({ dir: workdir, dataMiB: 0.25, files: 1, joliet: false })).path);
  assert.ok(plain.includes('FILE_000.BIN;1', 0, 'latin1'));
  assert.ok(!plain.includes('RRIP_1991A', 0, 'latin1'));
  assert.ok(!plain.includes('file_000.bin', 0, 'latin1'));
  assert.ok(rock.includes('RRIP_1991A', 0, 'latin1'));
  assert.ok(rock.includes('file_000.bin', 0, 'latin1'));
});

test('sha256File streams the same digest as hashing the whole file', async () => {
  const iso = await makeIso({ dir: workdir, dataMiB: 2, seed: 9 });
  const whole = createHash('sha256')
    .update(await readFile(iso.path))
    .digest('hex');
  assert.equal(await sha256File(iso.path), whole);
  assert.equal((await stat(iso.path)).size, iso.sizeBytes);
});

test('requireTool resolves sbin tools and names the Debian package of a missing one', async () => {
  assert.match(await requireTool('losetup', 'mount'), /\/losetup$/);
  await assert.rejects(requireTool('disk2iso-no-such-tool', 'disk2iso-imaginary-package'), /disk2iso-imaginary-package/);
});
