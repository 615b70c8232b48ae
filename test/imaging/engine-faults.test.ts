import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { runImaging } from '../../src/imaging/engine.js';
import { run } from '../tools/exec.js';
import { requireTool, sha256File } from '../tools/iso.js';
import { MiB, SECTOR, ddrescuelogBadSectors, differingSectors, imageUntilPaused, imagingRequest, isZero, useFaultyDisc } from './helpers.js';

const execFileAsync = promisify(execFile);

const SECTORS = 51_200; // 100 MiB
const SIZE = SECTORS * SECTOR;
const BAD_SECTORS = [1000, 50_000, 50_001, 50_002, 50_003, SECTORS - 1];
const BAD_RANGES: Array<[number, number]> = [
  [1000 * SECTOR, 1001 * SECTOR],
  [50_000 * SECTOR, 50_004 * SECTOR],
  [(SECTORS - 1) * SECTOR, SECTORS * SECTOR],
];

const disc = useFaultyDisc('engine-faults', SIZE, BAD_RANGES);

async function sectorAt(path: string, sector: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const data = Buffer.alloc(SECTOR);
    await handle.read(data, 0, SECTOR, sector * SECTOR);
    return data;
  } finally {
    await handle.close();
  }
}

test('bad sectors: exactly they are bad in the map and zero in the image, everything else is the source; ddrescue agrees; healed, a resume completes it', async () => {
  const outDir = join(disc.workdir, 'engine');
  await mkdir(outDir);
  const outputPath = join(outDir, 'faulty.iso');
  const request = imagingRequest({ path: disc.loop.path, sizeBytes: SIZE }, outputPath, { options: { readAttempts: 2 } });
  const result = await runImaging(request);

  assert.equal(result.outcome, 'completed');
  assert.deepEqual(await differingSectors(outputPath, disc.backing), BAD_SECTORS);
  for (const sector of BAD_SECTORS) assert.ok(isZero(await sectorAt(outputPath, sector)), `sector ${sector} is zero-filled`);
  assert.deepEqual(await ddrescuelogBadSectors(result.mapPath), BAD_SECTORS);
  assert.deepEqual(result.badSectors, {
    badBytes: BAD_SECTORS.length * SECTOR,
    badAreas: 3,
    areas: [
      { pos: 1000 * SECTOR, size: SECTOR },
      { pos: 50_000 * SECTOR, size: 4 * SECTOR },
      { pos: (SECTORS - 1) * SECTOR, size: SECTOR },
    ],
  });
  // Failed reads: copy 3 clusters; trim 4 (50000 forward, 50003 backward, 1000 and the last sector
  // forward); scrape 2 (50001, 50002); two retries of the 6 bad sectors 12.
  const lastEvent = request.events[request.events.length - 1];
  assert.equal(lastEvent?.errorCount, 21);
  assert.equal(lastEvent?.badBytes, BAD_SECTORS.length * SECTOR);
  assert.ok(request.events.some((event) => event.phase === 'trimming'));
  assert.ok(request.events.some((event) => event.phase === 'retrying'));
  assert.ok(
    request.events.some((event) => event.phase === 'hashing'),
    'the gaps were hashed from the file at the end',
  );

  // The checksums describe the image as written, zero-filled sectors included.
  const md5sum = await requireTool('md5sum', 'coreutils');
  assert.equal((await execFileAsync(md5sum, ['-c', 'faulty.iso.md5'], { cwd: outDir })).stdout, 'faulty.iso: OK\n');

  // GNU ddrescue continues from our map (faults still on) and ends with the same bad sectors.
  const ddrescue = await requireTool('ddrescue', 'gddrescue');
  const ddDir = join(disc.workdir, 'ddrescue');
  await mkdir(ddDir);
  const ddPart = join(ddDir, 'copy.iso.part');
  const ddMap = join(ddDir, 'copy.iso.map');
  await copyFile(outputPath, ddPart);
  await copyFile(result.mapPath, ddMap);
  await run(ddrescue, ['-q', '-d', '-b', '2048', '-r1', disc.loop.path, ddPart, ddMap]);
  assert.deepEqual(await ddrescuelogBadSectors(ddMap), BAD_SECTORS);
  assert.deepEqual(await differingSectors(ddPart, disc.backing), BAD_SECTORS);

  // The drive heals: resuming from ddrescue's map retries the bad sectors and completes the image.
  await disc.faultFs.setBadRanges([]);
  const resumed = await runImaging(imagingRequest({ path: disc.loop.path, sizeBytes: SIZE }, join(ddDir, 'copy.iso')));
  assert.equal(resumed.outcome, 'completed');
  assert.equal(resumed.resumed, true);
  assert.equal(resumed.badSectors.badBytes, 0);
  assert.equal(await sha256File(join(ddDir, 'copy.iso')), disc.sourceSha256);
  assert.equal(resumed.checksums.sha256, disc.sourceSha256);
  await disc.faultFs.setBadRanges(BAD_RANGES);
});

test('GNU ddrescue finishes a run we paused half-way, from our map', async () => {
  const outDir = join(disc.workdir, 'paused');
  await mkdir(outDir);
  const outputPath = join(outDir, 'half.iso');
  // Progress comes four times a second; unslowed, the copy pass can end before the one after 40 MiB.
  // About two FUSE reads per MiB at 20 ms each makes the copy pass last about four seconds.
  await disc.faultFs.setDelay(20);
  let result;
  try {
    result = await imageUntilPaused({ path: disc.loop.path, sizeBytes: SIZE }, disc.backing, outputPath, 40 * MiB);
  } finally {
    await disc.faultFs.setDelay(0);
  }

  const ddrescue = await requireTool('ddrescue', 'gddrescue');
  await run(ddrescue, ['-q', '-d', '-b', '2048', disc.loop.path, result.partPath, result.mapPath]);
  assert.deepEqual(await ddrescuelogBadSectors(result.mapPath), BAD_SECTORS);
  assert.deepEqual(await differingSectors(result.partPath, disc.backing), BAD_SECTORS);
});

test('a large unreadable stretch: the copy pass skips over it, the far side is read back, trim and scrape narrow it to exactly its sectors', async () => {
  const outDir = join(disc.workdir, 'stretch');
  await mkdir(outDir);
  const first = 20_000;
  const count = 1500; // about 3 MiB, several growing skips long
  const stretch = Array.from({ length: count }, (_, index) => first + index);
  await disc.faultFs.setBadRanges([[first * SECTOR, (first + count) * SECTOR]]);
  try {
    const outputPath = join(outDir, 'stretch.iso');
    const request = imagingRequest({ path: disc.loop.path, sizeBytes: SIZE }, outputPath, { options: { readAttempts: 0 } });
    const result = await runImaging(request);
    assert.equal(result.outcome, 'completed');
    assert.deepEqual(result.badSectors.areas, [{ pos: first * SECTOR, size: count * SECTOR }]);
    assert.deepEqual(await ddrescuelogBadSectors(result.mapPath), stretch);
    assert.deepEqual(await differingSectors(outputPath, disc.backing), stretch);
    assert.ok(request.events.some((event) => event.phase === 'scraping'));
    assert.ok(!request.events.some((event) => event.phase === 'retrying'), 'no retry pass with readAttempts 0');
  } finally {
    await disc.faultFs.setBadRanges(BAD_RANGES);
  }
});
