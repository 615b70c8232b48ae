import assert from 'node:assert/strict';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { UnavailableError } from '../../src/errors.js';
import { runImaging } from '../../src/imaging/engine.js';
import { sha256File } from '../tools/iso.js';
import { attachLoop } from '../tools/loop.js';
import { MiB, imagingRequest, mountMemoryFs, scratchDir, writeRandomFile } from './helpers.js';

test('O_DIRECT refused (source and output on ramfs): auto falls back to buffered I/O and says so; on refuses', async () => {
  const ramfs = await mountMemoryFs('ramfs');
  const outDir = join(ramfs.dir, 'out');
  try {
    await mkdir(outDir);
    const sourcePath = join(ramfs.dir, 'disc.img');
    const size = 8 * MiB;
    await writeRandomFile(sourcePath, size, 'ramfs');

    // Reading the source, writing the image and re-reading it for verification all fall back.
    const auto = imagingRequest({ path: sourcePath, sizeBytes: size }, join(outDir, 'auto.iso'), { options: { directIo: 'auto', verify: true } });
    const result = await runImaging(auto);
    assert.equal(result.outcome, 'completed');
    assert.equal(result.verified, true);
    assert.equal(await sha256File(join(outDir, 'auto.iso')), await sha256File(sourcePath));
    assert.ok(auto.events.length > 0 && auto.events.every((event) => event.buffered));
    assert.ok(
      auto.logs.some((line) => /^warning: O_DIRECT is not supported/.test(line)),
      auto.logs.join('\n'),
    );
    assert.ok(
      auto.logs.some((line) => /^info: verifying with buffered reads/.test(line)),
      auto.logs.join('\n'),
    );

    await assert.rejects(
      runImaging(imagingRequest({ path: sourcePath, sizeBytes: size }, join(outDir, 'on.iso'), { options: { directIo: 'on' } })),
      (error: unknown) => error instanceof UnavailableError && error.code === 'source_unreadable',
    );
    assert.deepEqual(
      (await readdir(outDir)).filter((name) => name.startsWith('on.iso')),
      [],
    );
  } finally {
    await ramfs.unmount();
  }
});

test('a plain file whose size is no multiple of the sector size images exactly, with O_DIRECT', async () => {
  const dir = await scratchDir('engine-source-odd');
  try {
    const sourcePath = join(dir, 'odd.bin');
    const size = 5 * MiB + 1000;
    await writeRandomFile(sourcePath, size, 'odd');
    const request = imagingRequest({ path: sourcePath, sizeBytes: size }, join(dir, 'odd.iso'), { options: { directIo: 'on' } });
    const result = await runImaging(request);
    assert.equal(result.sizeBytes, size);
    assert.equal(await sha256File(join(dir, 'odd.iso')), await sha256File(sourcePath));
    assert.ok(request.events.every((event) => !event.buffered));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a device with 512-byte logical sectors images with 2048-byte sectors and odd clusters', async () => {
  const dir = await scratchDir('engine-source-512');
  try {
    const sourcePath = join(dir, 'disc.img');
    const size = 6 * MiB;
    await writeRandomFile(sourcePath, size, '512');
    const loop = await attachLoop(sourcePath, { sectorSize: 512 });
    try {
      const result = await runImaging(
        imagingRequest({ path: loop.path, sizeBytes: size }, join(dir, 'odd-cluster.iso'), {
          options: { clusterSectors: 7, directIo: 'on', checksums: ['sha1'] },
        }),
      );
      assert.equal(result.outcome, 'completed');
      assert.equal(await sha256File(join(dir, 'odd-cluster.iso')), await sha256File(sourcePath));
    } finally {
      await loop.detach();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
