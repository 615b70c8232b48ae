import assert from 'node:assert/strict';
import { open, readdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { UnavailableError, errnoCode } from '../../src/errors.js';
import { runImaging } from '../../src/imaging/engine.js';
import { sha256File } from '../tools/iso.js';
import { MiB, assertFinishedAreasMatch, imagingRequest, mountMemoryFs, readMap, useFaultyDisc } from './helpers.js';

const SIZE = 32 * MiB;

const disc = useFaultyDisc('engine-space', SIZE);

/** Writes zeros into `path` until the file system is full; returns the bytes written. */
async function fillUp(path: string): Promise<number> {
  const chunk = Buffer.alloc(MiB, 0xaa);
  const handle = await open(path, 'w');
  let written = 0;
  try {
    for (;;) {
      const { bytesWritten } = await handle.write(chunk, 0, chunk.length, written);
      written += bytesWritten;
      if (bytesWritten < chunk.length) return written;
    }
  } catch (error) {
    if (errnoCode(error) !== 'ENOSPC') throw error;
    return written;
  } finally {
    await handle.close();
  }
}

test('an image larger than the free space is refused before anything is written', async () => {
  const small = await mountMemoryFs('tmpfs', 16);
  try {
    const outputPath = join(small.dir, 'big.iso');
    await assert.rejects(
      runImaging(imagingRequest({ path: disc.loop.path, sizeBytes: SIZE }, outputPath)),
      (error: unknown) => error instanceof UnavailableError && error.code === 'insufficient_space',
    );
    assert.deepEqual(await readdir(small.dir), []);
  } finally {
    await small.unmount();
  }
});

test('the output fills up mid-run: a clean stop with the map saved; after freeing space the run resumes byte-identical', async () => {
  const tmpfs = await mountMemoryFs('tmpfs', 48);
  try {
    const outputPath = join(tmpfs.dir, 'full.iso');
    const filler = join(tmpfs.dir, 'filler.bin');
    await disc.faultFs.setDelay(10);
    let filling: Promise<number> | undefined;
    const request = imagingRequest({ path: disc.loop.path, sizeBytes: SIZE }, outputPath, {
      options: { stopThresholdPercent: 95 },
      onProgress: (event) => {
        // Another program takes the space while the image is a quarter done.
        if (event.bytesDone >= 8 * MiB) filling ??= fillUp(filler);
      },
    });
    await assert.rejects(runImaging(request), (error: unknown) => error instanceof UnavailableError && ['no_space', 'storage_threshold'].includes(error.code));
    assert.ok(((await filling) ?? 0) > 0, 'the filler took space');
    await disc.faultFs.setDelay(0);

    // Nothing corrupt: the map (the last one that could be saved) only claims data the .part really has.
    assert.deepEqual((await readdir(tmpfs.dir)).sort(), ['filler.bin', 'full.iso.map', 'full.iso.part']);
    const map = await readMap(`${outputPath}.map`);
    assert.equal(map.size, SIZE);
    assert.equal(map.sums()['-'] + map.sums()['*'], 0, 'no area marked bad for lack of space');
    assert.ok(map.sums()['+'] < SIZE);
    await assertFinishedAreasMatch(map, `${outputPath}.part`, disc.backing);

    await rm(filler);
    const { bavail, bsize } = await statfs(tmpfs.dir);
    assert.ok(bavail * bsize > SIZE - map.sums()['+']);
    const result = await runImaging(imagingRequest({ path: disc.loop.path, sizeBytes: SIZE }, outputPath));
    assert.equal(result.outcome, 'completed');
    assert.equal(result.resumed, true);
    assert.equal(await sha256File(outputPath), disc.sourceSha256);
  } finally {
    await disc.faultFs.setDelay(0);
    await tmpfs.unmount();
  }
});
