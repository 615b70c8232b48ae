import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { runImaging } from '../../src/imaging/engine.js';
import { READS_IN_FLIGHT } from '../../src/imaging/rescue.js';
import { requireTool, sha256File } from '../tools/iso.js';
import { MiB, SECTOR, ddrescuelogBadSectors, differingSectors, imageUntilPaused, imagingRequest, useFaultyDisc } from './helpers.js';

const execFileAsync = promisify(execFile);

const SECTORS = 12_288; // 24 MiB: six 4 MiB copy reads
const SIZE = SECTORS * SECTOR;
/**
 * The copy pass reads 4 MiB at a time with READS_IN_FLIGHT reads queued. Sector 3000 (5.9 MiB)
 * fails the second read while the first is being delivered and the third is in flight; sectors
 * 5000-5001 (9.8 MiB) fail that third read, which is already in flight when the second fails.
 */
const BAD_SECTORS = [3000, 5000, 5001];
const BAD_RANGES: Array<[number, number]> = [
  [3000 * SECTOR, 3001 * SECTOR],
  [5000 * SECTOR, 5002 * SECTOR],
];

const disc = useFaultyDisc('engine-readahead', SIZE, BAD_RANGES);

test('faults inside the reads in flight: exactly those sectors are bad, everything else is the source, and the checksums describe the image', async () => {
  assert.ok(READS_IN_FLIGHT >= 3, 'the layout above assumes at least three reads in flight');
  const outDir = join(disc.workdir, 'faults');
  await mkdir(outDir);
  const outputPath = join(outDir, 'ahead.iso');
  const request = imagingRequest({ path: disc.loop.path, sizeBytes: SIZE }, outputPath, { options: { readAttempts: 1 } });
  const result = await runImaging(request);

  assert.equal(result.outcome, 'completed');
  assert.deepEqual(await differingSectors(outputPath, disc.backing), BAD_SECTORS);
  assert.deepEqual(await ddrescuelogBadSectors(result.mapPath), BAD_SECTORS);
  assert.deepEqual(result.badSectors.areas, [
    { pos: 3000 * SECTOR, size: SECTOR },
    { pos: 5000 * SECTOR, size: 2 * SECTOR },
  ]);
  const md5sum = await requireTool('md5sum', 'coreutils');
  assert.equal((await execFileAsync(md5sum, ['-c', 'ahead.iso.md5'], { cwd: outDir })).stdout, 'ahead.iso: OK\n');
  assert.equal(result.checksums.sha256, await sha256File(outputPath));
});

test('paused while reads are in flight on a slow drive: the map claims only what was written, and the resume is byte-identical', async () => {
  const outDir = join(disc.workdir, 'pause');
  await mkdir(outDir);
  const outputPath = join(outDir, 'paused.iso');
  await disc.faultFs.setBadRanges([]);
  // About two FUSE reads per MiB, served one at a time: a run of about a second, stopped part-way.
  await disc.faultFs.setDelay(20);
  try {
    await imageUntilPaused({ path: disc.loop.path, sizeBytes: SIZE }, disc.backing, outputPath, 4 * MiB);
    await disc.faultFs.setDelay(0);
    const resumed = await runImaging(imagingRequest({ path: disc.loop.path, sizeBytes: SIZE }, outputPath));
    assert.equal(resumed.outcome, 'completed');
    assert.equal(resumed.resumed, true);
    assert.equal(await sha256File(outputPath), disc.sourceSha256);
    assert.equal(resumed.checksums.sha256, disc.sourceSha256);
  } finally {
    await disc.faultFs.setDelay(0);
    await disc.faultFs.setBadRanges(BAD_RANGES);
  }
});
