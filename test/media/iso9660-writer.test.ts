import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ValidationError } from '../../src/errors.js';
import { writeDemoIso } from '../../src/media/iso9660-writer.js';
import { probeMedia } from '../../src/media/probe.js';
import { requireTool, run } from '../tools/exec.js';
import { sha256File } from '../tools/iso.js';

let workdir: string;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'media-writer-'));
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

test('the default demo disc: 64 MiB, labelled, and identical on every run', async () => {
  const first = await writeDemoIso(join(workdir, 'first', 'demo.iso'));
  const second = await writeDemoIso(join(workdir, 'second', 'demo.iso'));
  assert.equal(first.sizeBytes, 64 * 1024 * 1024);
  assert.equal((await stat(first.path)).size, first.sizeBytes);
  assert.equal(await sha256File(first.path), await sha256File(second.path));
  assert.deepEqual(await readdir(join(workdir, 'first')), ['demo.iso'], 'no temporary file is left behind');

  const media = await probeMedia(first.path);
  assert.deepEqual(media.fileSystems, ['iso9660']);
  assert.equal(media.volumeLabel, 'DISK2ISO_DEMO');
  assert.equal(media.imageSizeBytes, first.sizeBytes);
  assert.equal(media.createdAt, '2024-01-01T00:00:00.000Z');
  assert.equal(media.kind, 'data');
});

test('xorriso reads the demo disc: its files, their sizes, and the README text', async () => {
  const xorriso = await requireTool('xorriso', 'xorriso');
  const demo = await writeDemoIso(join(workdir, 'listed.iso'), { sizeMiB: 3, label: 'MY_DEMO' });
  assert.equal(demo.sizeBytes, 3 * 1024 * 1024);

  const listing = await run(xorriso, ['-indev', demo.path, '-find', '/', '-type', 'f', '-exec', 'lsdl', '--']);
  const files = new Map<string, number>();
  for (const line of listing.stdout.split('\n')) {
    const match = /^-\S+\s+\d+\s+\d+\s+\d+\s+(\d+)\s+.*'\/(.+)'$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) files.set(match[2], Number(match[1]));
  }
  assert.deepEqual([...files.keys()].sort(), ['RANDOM.BIN', 'README.TXT']);
  assert.equal(files.get('RANDOM.BIN'), demo.sizeBytes - 22 * 2048, 'the data file fills the disc after the 22 system sectors');

  const pvd = await run(xorriso, ['-indev', demo.path, '-pvd_info']);
  assert.match(pvd.stdout, /Volume Id\s*:\s*MY_DEMO/);
  assert.match(pvd.stdout, /Creation Time:\s*2024010100000000/);

  const extracted = join(workdir, 'README.out');
  await run(xorriso, ['-osirrox', 'on', '-indev', demo.path, '-extract', '/README.TXT', extracted]);
  const readme = await readFile(extracted, 'latin1');
  assert.match(readme, /disk2iso demo disc/);
  assert.match(readme, /without an optical drive/);
  assert.equal(files.get('README.TXT'), Buffer.byteLength(readme, 'latin1'));

  const data = join(workdir, 'RANDOM.out');
  await run(xorriso, ['-osirrox', 'on', '-indev', demo.path, '-extract', '/RANDOM.BIN', data]);
  const image = await readFile(demo.path);
  assert.ok((await readFile(data)).equals(image.subarray(22 * 2048)), 'RANDOM.BIN is the extent after the README sector');
});

test('invalid options are refused before anything is written', async () => {
  const path = join(workdir, 'refused', 'demo.iso');
  await assert.rejects(writeDemoIso(path, { sizeMiB: 0 }), ValidationError);
  await assert.rejects(writeDemoIso(path, { sizeMiB: 1.5 }), ValidationError);
  await assert.rejects(writeDemoIso(path, { sizeMiB: 5000 }), ValidationError);
  await assert.rejects(writeDemoIso(path, { label: 'lower case' }), ValidationError);
  await assert.rejects(writeDemoIso(path, { label: 'X'.repeat(33) }), ValidationError);
  await assert.rejects(stat(join(workdir, 'refused')), { code: 'ENOENT' });
});
