import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DomainError } from '../../src/errors.js';
import { type ImageTree, listImageEntries, openImage } from '../../src/media/image-reader.js';
import { IMAGE_LIMITS } from '../../src/media/image-tree.js';
import { probeMedia } from '../../src/media/probe.js';
import { requireTool, run } from '../tools/exec.js';
import {
  extractWithUdfclient,
  listSourceTree,
  makeSparseXorrisoImage,
  makeUdfImage,
  makeXorrisoImage,
  readSourceFile,
  udfclientName,
  writeSourceTree,
  writeSparseFile,
} from '../tools/image-fixtures.js';
import { type Udf250File, type Udf250Options, buildUdf250Image, udf250SampleFiles } from '../tools/udf250-image.js';

let workdir: string;
let source: string;
let rockRidge: string;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'image-reader-'));
  source = join(workdir, 'source');
  await writeSourceTree(source);
  rockRidge = await makeXorrisoImage(source, join(workdir, 'rr.iso'), ['-R', '-J', '-joliet-long']);
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

async function bytesOf(tree: ImageTree, path: string, start?: number, end?: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of tree.stream(await tree.resolve(path), start, end)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function listing(imagePath: string): Promise<Array<{ path: string; kind: string; size: number }>> {
  const entries: Array<{ path: string; kind: string; size: number }> = [];
  for await (const entry of listImageEntries(imagePath)) entries.push({ path: entry.path, kind: entry.kind, size: entry.kind === 'file' ? entry.size : 0 });
  return entries.sort((left, right) => left.path.localeCompare(right.path));
}

async function expectImageError(action: () => Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(action, (error: unknown) => {
    assert.ok(error instanceof DomainError, `a typed error, not ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

test('Rock Ridge names win: the listing matches the source tree, and every file’s bytes match', async () => {
  const expected = (await listSourceTree(source)).sort((left, right) => left.path.localeCompare(right.path));
  assert.deepEqual(await listing(rockRidge), expected);
  const tree = await openImage(rockRidge);
  try {
    assert.equal(tree.fileSystem, 'rockridge');
    for (const entry of expected.filter((candidate) => candidate.kind === 'file')) {
      assert.deepEqual(await bytesOf(tree, entry.path), await readSourceFile(source, entry.path), entry.path);
    }
    const random = await readSourceFile(source, 'random.bin');
    assert.deepEqual(await bytesOf(tree, 'random.bin', 1000, 300_000), random.subarray(1000, 300_001));
    const root = await tree.list('/');
    assert.deepEqual(
      root.slice(0, 3).map((node) => node.kind),
      ['directory', 'directory', 'file'],
      'folders come first',
    );
  } finally {
    await tree.close();
  }
});

test('without Rock Ridge the Joliet names are used, and without both the plain ISO 9660 names', async () => {
  const joliet = await makeXorrisoImage(source, join(workdir, 'joliet.iso'), ['--norock', '-J', '-joliet-long']);
  const tree = await openImage(joliet);
  try {
    assert.equal(tree.fileSystem, 'joliet');
    assert.ok((await tree.list('Grüße – 日本')).some((node) => node.name === 'Ünïcödé ✓.txt'));
    assert.equal((await bytesOf(tree, 'hello.txt')).toString(), 'hello, image\n');
  } finally {
    await tree.close();
  }
  const plain = await makeXorrisoImage(source, join(workdir, 'plain.iso'), ['--norock']);
  const plainTree = await openImage(plain);
  try {
    assert.equal(plainTree.fileSystem, 'iso9660');
    assert.equal((await bytesOf(plainTree, 'HELLO.TXT')).toString(), 'hello, image\n');
  } finally {
    await plainTree.close();
  }
});

test('a file larger than 4 GiB is read across its extents', async () => {
  const bigSource = join(workdir, 'big-source');
  await mkdir(bigSource);
  const size = 4 * 1024 ** 3 + 5 * 1024 * 1024 + 3;
  await writeSparseFile(join(bigSource, 'big.bin'), size, 'END');
  const image = await makeSparseXorrisoImage(bigSource, join(workdir, 'big.iso'));
  const tree = await openImage(image);
  try {
    const node = await tree.resolve('big.bin');
    assert.equal(node.size, size);
    assert.ok(node.extents.length >= 2, 'several extents');
    assert.equal((await bytesOf(tree, 'big.bin', size - 3)).toString(), 'END');
    const first = node.extents[0];
    assert.ok(first?.kind === 'data');
    const across = await bytesOf(tree, 'big.bin', first.length - 10, first.length + 10);
    assert.deepEqual(across, Buffer.alloc(21));
  } finally {
    await tree.close();
  }
  await rm(image);
});

test('UDF 2.01 from mkudffs, filled by udfclient: listing and bytes', async () => {
  const files = [
    { path: 'hello.txt', content: Buffer.from('hello, udf\n') },
    { path: 'random.bin', content: randomBytes(2 * 1024 * 1024 + 5) },
    { path: 'tiny.txt', content: Buffer.from('x') },
    { path: 'a/b/c/d/e/f/g/h/i/j/k/deep.txt', content: Buffer.from('deep\n') },
  ];
  const image = await makeUdfImage(join(workdir, 'udf.img'), files);
  const tree = await openImage(image);
  try {
    assert.equal(tree.fileSystem, 'udf');
    for (const file of files) assert.deepEqual(await bytesOf(tree, file.path), file.content, file.path);
  } finally {
    await tree.close();
  }
  const paths = (await listing(image)).map((entry) => entry.path);
  assert.ok(paths.includes('a/b/c/d/e/f/g/h/i/j/k'));
  assert.ok(paths.includes('random.bin'));
});

/** The listing a generated image must show: its files and every folder on their paths. */
function generatedListing(files: Udf250File[]): Array<{ path: string; kind: string; size: number }> {
  const folders = new Set(
    files.flatMap((file) =>
      file.path
        .split('/')
        .slice(0, -1)
        .map((_, index, parts) => parts.slice(0, index + 1).join('/')),
    ),
  );
  return [
    ...[...folders].map((path) => ({ path, kind: 'directory', size: 0 })),
    ...files.map((file) => ({ path: file.path, kind: 'file', size: file.content.length })),
  ].sort((left, right) => left.path.localeCompare(right.path));
}

async function expectGeneratedTree(image: string, files: Udf250File[]): Promise<void> {
  assert.deepEqual(await listing(image), generatedListing(files));
  const tree = await openImage(image);
  try {
    assert.equal(tree.fileSystem, 'udf');
    for (const file of files) assert.deepEqual(await bytesOf(tree, file.path), file.content, file.path);
  } finally {
    await tree.close();
  }
}

async function buildUdf250(name: string, overrides: Partial<Udf250Options> = {}) {
  const files = udf250SampleFiles();
  const image = await buildUdf250Image({ path: join(workdir, name), label: 'BD_SAMPLE', files, ...overrides });
  return { ...image, files };
}

async function damageTagChecksum(image: string, descriptorOffset: number): Promise<void> {
  const handle = await open(image, 'r+');
  try {
    const checksum = Buffer.alloc(1);
    await handle.read(checksum, 0, 1, descriptorOffset + 4);
    checksum[0] = (checksum[0] ?? 0) ^ 0xff;
    await handle.write(checksum, 0, 1, descriptorOffset + 4);
  } finally {
    await handle.close();
  }
}

test('UDF 2.50 with a metadata partition (the Blu-ray layout): the tree and bytes match the generator and udfclient', async () => {
  const { path: image, files } = await buildUdf250('udf250.img');
  await expectGeneratedTree(image, files);

  const tree = await openImage(image);
  try {
    const random = files.find((file) => file.path === 'random.bin')?.content ?? assert.fail('the sample has random.bin');
    const node = await tree.resolve('random.bin');
    assert.equal(node.extents.length, 2, 'two allocation descriptors');
    const first = node.extents[0];
    assert.ok(first?.kind === 'data');
    assert.deepEqual(await bytesOf(tree, 'random.bin', first.length - 5, first.length + 4), random.subarray(first.length - 5, first.length + 5));
    assert.equal((await tree.resolve('many')).extents.length, 2, 'the big folder crosses from one metadata extent to the other');
  } finally {
    await tree.close();
  }

  const media = await probeMedia(image);
  assert.deepEqual(media.fileSystems, ['udf']);
  assert.equal(media.volumeLabel, 'BD_SAMPLE');
  const folders = generatedListing(files).filter((entry) => entry.kind === 'directory').length;
  // udftools' udfinfo, independent of both: the revision, label and counts the image declares.
  const { stdout } = await run(await requireTool('udfinfo', 'udftools'), [image]);
  for (const line of ['udfrev=2.50', 'lvid=BD_SAMPLE', 'integrity=closed', `numfiles=${files.length}`, `numdirs=${folders + 1}`]) {
    assert.ok(stdout.split('\n').includes(line), `${line} in\n${stdout}`);
  }

  const extracted = await extractWithUdfclient(image, join(workdir, 'udf250-udfclient'));
  const independent = (await listSourceTree(extracted)).sort((left, right) => left.path.localeCompare(right.path));
  const ours = (await listing(image)).map((entry) => ({ ...entry, path: entry.path.split('/').map(udfclientName).join('/') }));
  assert.deepEqual(
    independent,
    ours.sort((left, right) => left.path.localeCompare(right.path)),
  );
  const oursTree = await openImage(image);
  try {
    for (const file of files) {
      assert.deepEqual(await readSourceFile(extracted, file.path.split('/').map(udfclientName).join('/')), await bytesOf(oursTree, file.path), file.path);
    }
  } finally {
    await oursTree.close();
  }
});

test('UDF 2.50: when the metadata file entry is damaged or lies outside the partition, the mirror file stands in', async () => {
  const damaged = await buildUdf250('udf250-damaged-metadata.img');
  await damageTagChecksum(damaged.path, damaged.metadataFileEntryOffset);
  await expectGeneratedTree(damaged.path, damaged.files);

  const outside = await buildUdf250('udf250-metadata-outside.img', { metadataFileLocation: 0x7fff_0000 });
  await expectGeneratedTree(outside.path, outside.files);
});

test('UDF 2.50: with the metadata file and its mirror both unreadable the image is refused as corrupt', async () => {
  const bothOutside = await buildUdf250('udf250-both-outside.img', { metadataFileLocation: 0x7fff_0000, mirrorFileLocation: 0xffff_fff0 });
  await expectImageError(() => listing(bothOutside.path), 'image_corrupt');

  const bothDamaged = await buildUdf250('udf250-both-damaged.img');
  await damageTagChecksum(bothDamaged.path, bothDamaged.metadataFileEntryOffset);
  await damageTagChecksum(bothDamaged.path, bothDamaged.mirrorFileEntryOffset);
  await assert.rejects(listing(bothDamaged.path), (error: unknown) => {
    assert.ok(error instanceof DomainError);
    assert.equal(error.code, 'image_corrupt');
    assert.match(error.message, /metadata file and its mirror/);
    return true;
  });
});

test('UDF 2.50: a metadata partition map on a partition that has no map is refused, not read from another partition', async () => {
  const unmapped = await buildUdf250('udf250-unmapped.img', { metadataPartitionNumber: 5 });
  await assert.rejects(listing(unmapped.path), (error: unknown) => {
    assert.ok(error instanceof DomainError);
    assert.equal(error.code, 'image_corrupt');
    assert.match(error.message, /partition without a map/);
    return true;
  });
});

/** A copy of the Rock Ridge image with the directory record named `isoName` in the root changed by `patch`. */
async function patchRootRecord(name: string, isoName: string, patch: (record: Buffer, rootExtent: number) => void): Promise<string> {
  const copy = join(workdir, name);
  await copyFile(rockRidge, copy);
  const image = await readFile(copy);
  const rootExtent = image.readUInt32LE(16 * 2048 + 156 + 2);
  const root = image.subarray(rootExtent * 2048, rootExtent * 2048 + 2048);
  for (let at = 0; at < root.length && (root[at] ?? 0) > 0; at += root[at] ?? 0) {
    const nameLength = root[at + 32] ?? 0;
    if (root.toString('latin1', at + 33, at + 33 + nameLength).replace(/;1$/u, '') === isoName) {
      patch(root.subarray(at, at + (root[at] ?? 0)), rootExtent);
      const handle = await open(copy, 'r+');
      await handle.write(root, 0, root.length, rootExtent * 2048);
      await handle.close();
      return copy;
    }
  }
  throw new Error(`no record ${isoName} in the root`);
}

test('hostile images: a folder containing itself, extents past the end, absurd sizes', async () => {
  const loop = await patchRootRecord('loop.iso', 'DEEP', (record, rootExtent) => {
    record.writeUInt32LE(rootExtent, 2);
    record.writeUInt32BE(rootExtent, 6);
  });
  await expectImageError(() => listing(loop), 'image_corrupt');

  const pastEnd = await patchRootRecord('past-end.iso', 'HELLO.TXT', (record) => {
    record.writeUInt32LE(0x7fffffff, 2);
  });
  await expectImageError(() => listing(pastEnd), 'image_corrupt');

  const absurd = await patchRootRecord('absurd.iso', 'RANDOM.BIN', (record) => {
    record.writeUInt32LE(0xffffffff, 10);
  });
  await expectImageError(() => listing(absurd), 'image_corrupt');

  const hugeFolder = await patchRootRecord('huge-folder.iso', 'DEEP', (record) => {
    record.writeUInt32LE(0xfffff000, 10);
  });
  await expectImageError(() => listing(hugeFolder), 'image_corrupt');
});

test('hostile names: a Rock Ridge name with a slash or dot-dot is left out and cannot be reached', async () => {
  const renamed = await patchRootRecord('names.iso', 'HELLO.TXT', (record) => {
    const at = record.indexOf('NM');
    assert.ok(at > 0, 'the record has a Rock Ridge name');
    record.write('../../../', at + 5, 'latin1');
  });
  const paths = (await listing(renamed)).map((entry) => entry.path);
  assert.ok(!paths.includes('hello.txt') && !paths.some((path) => path.includes('..')), paths.join(', '));
  const tree = await openImage(renamed);
  try {
    await expectImageError(() => tree.resolve('hello.txt'), 'image_path_not_found');
    await expectImageError(() => tree.resolve('../../../'), 'image_path_invalid');
    await expectImageError(() => tree.resolve('a/../hello.txt'), 'image_path_invalid');
    await expectImageError(() => tree.resolve('hello\u0000.txt'), 'image_path_invalid');
  } finally {
    await tree.close();
  }
});

test('folders nested deeper than the limit are refused, not walked for ever', async () => {
  const deepSource = join(workdir, 'too-deep');
  const bottom = join(deepSource, ...Array.from({ length: IMAGE_LIMITS.maxDepth + 2 }, () => 'd'));
  await mkdir(bottom, { recursive: true });
  const image = await makeXorrisoImage(deepSource, join(workdir, 'too-deep.iso'), ['-R']);
  await expectImageError(() => listing(image), 'image_limit_exceeded');
});

test('a UDF variant the reader does not follow (a BD-R virtual partition) is refused by name', async () => {
  const mkudffs = await requireTool('mkudffs', 'udftools');
  const image = join(workdir, 'vat.img');
  const handle = await open(image, 'w');
  await handle.truncate(64 * 1024 * 1024);
  await handle.close();
  await run(mkudffs, ['--media-type=bdr', '--udfrev=2.50', image]);
  await assert.rejects(openImage(image), (error: unknown) => {
    assert.ok(error instanceof DomainError);
    assert.equal(error.code, 'image_format_unsupported');
    assert.match(error.message, /UDF revision 2\.50 .*Virtual Partition/);
    return true;
  });
});

test('a file that is no image is refused with a clear error', async () => {
  const junk = join(workdir, 'junk.bin');
  await (await open(junk, 'w')).close();
  await expectImageError(() => openImage(junk), 'image_format_unsupported');
  await expectImageError(() => openImage(join(workdir, 'absent.iso')), 'image_not_found');
});
