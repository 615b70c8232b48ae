import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runImaging } from '../../src/imaging/engine.js';
import { type ByteRange, type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { MiB, SECTOR, ddrescuelogBadSectors, imagingRequest, scratchDir, writeRandomFile } from './helpers.js';

// What the rescue costs the drive (issue 10, finding 9): after every failed read in the later passes
// the engine used to re-read a sector it had read fine before, to check the drive was still there.

const SIZE = 16 * MiB;
const SECTORS = SIZE / SECTOR;
/** Three scratches: one sector, 24 and 60 sectors. */
const BAD_AREAS: Array<{ first: number; count: number }> = [
  { first: Math.floor(SECTORS * 0.1), count: 1 },
  { first: Math.floor(SECTORS * 0.45), count: 24 },
  { first: Math.floor(SECTORS * 0.8), count: 60 },
];
const BAD_RANGES: ByteRange[] = BAD_AREAS.map(({ first, count }) => [first * SECTOR, (first + count) * SECTOR]);

let workdir: string;
let faultFs: FaultFs;
let loop: LoopDevice;

before(async () => {
  workdir = await scratchDir('engine-reads');
  const backing = join(workdir, 'disc.img');
  await writeRandomFile(backing, SIZE, 'engine-reads');
  faultFs = await mountFaultFs({ backingFile: backing, badRanges: BAD_RANGES, logReads: true });
  loop = await attachLoop(faultFs.file, { sectorSize: SECTOR });
});

after(async () => {
  try {
    await loop?.detach();
  } finally {
    try {
      await faultFs?.unmount();
    } finally {
      await rm(workdir, { recursive: true, force: true });
    }
  }
});

test('three scratches, three retry passes: the same bad map, and a known-good sector is re-read only once per many failed reads', async () => {
  const outDir = join(workdir, 'out');
  await mkdir(outDir);
  const readsBefore = (await faultFs.readLog()).length;
  const result = await runImaging(imagingRequest({ path: loop.path, sizeBytes: SIZE }, join(outDir, 'scratched.iso'), { options: { readAttempts: 3 } }));
  const reads = (await faultFs.readLog()).slice(readsBefore);

  assert.equal(result.outcome, 'completed');
  assert.deepEqual(
    result.badSectors.areas,
    BAD_AREAS.map(({ first, count }) => ({ pos: first * SECTOR, size: count * SECTOR })),
  );
  assert.deepEqual(
    await ddrescuelogBadSectors(result.mapPath),
    BAD_AREAS.flatMap(({ first, count }) => Array.from({ length: count }, (_, index) => first + index)),
  );

  // As the drive saw them: one-sector reads (trimming, scraping, retrying, probing) of a sector
  // that an earlier one-sector read had already returned fine.
  const sectorsReadFine = new Set<number>();
  let knownGoodRereads = 0;
  let failedSectorReads = 0;
  for (const { offset, length, result: served } of reads) {
    if (length !== SECTOR) continue;
    if (served < 0) failedSectorReads += 1;
    else if (sectorsReadFine.has(offset)) knownGoodRereads += 1;
    else sectorsReadFine.add(offset);
  }
  // Every bad sector fails once when scraped or trimmed and once per retry pass.
  const badSectors = BAD_AREAS.reduce((sum, { count }) => sum + count, 0);
  assert.ok(failedSectorReads >= 4 * badSectors, `${failedSectorReads} failed one-sector reads`);
  assert.ok(
    knownGoodRereads <= Math.ceil(failedSectorReads / 16) + 2,
    `${knownGoodRereads} re-reads of known-good sectors for ${failedSectorReads} failed one-sector reads`,
  );

  // The engine's own counters agree with the drive's: the kernel may split a read, never merge two,
  // and may give up on the rest of a read once a part of it failed.
  assert.ok(result.reads.bytes >= reads.reduce((sum, read) => sum + read.length, 0));
  assert.ok(result.reads.calls <= reads.length);
  assert.ok(result.reads.failed <= reads.filter((read) => read.result < 0).length);
  assert.ok(result.reads.probes <= knownGoodRereads + 1, `${result.reads.probes} probes`);
});

test('one bad sector in the copy pass: the drive reads the disc once, plus at most the failed read and the bad cluster', async () => {
  const outDir = join(workdir, 'copy');
  await mkdir(outDir);
  const bad = 3072; // 6 MiB in: the copy reads have grown to their largest by then on a fast drive
  await faultFs.setBadRanges([[bad * SECTOR, (bad + 1) * SECTOR]]);
  try {
    const bytesBefore = (await faultFs.stats()).readBytes;
    const result = await runImaging(imagingRequest({ path: loop.path, sizeBytes: SIZE }, join(outDir, 'one.iso'), { options: { readAttempts: 0 } }));
    const bytesRead = (await faultFs.stats()).readBytes - bytesBefore;
    assert.equal(result.outcome, 'completed');
    assert.deepEqual(result.badSectors.areas, [{ pos: bad * SECTOR, size: SECTOR }]);
    // The reads already in flight behind the failed one are kept, not read again: what is read twice
    // is the failed read (at most 4 MiB, its data lost) and the sectors of the failing cluster.
    assert.ok(bytesRead <= SIZE + 4 * MiB + 256 * 1024, `the drive read ${bytesRead} bytes for a disc of ${SIZE}`);
    assert.ok(result.reads.bytes >= bytesRead);
  } finally {
    await faultFs.setBadRanges(BAD_RANGES);
  }
});
