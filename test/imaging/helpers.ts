import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { runImaging } from '../../src/imaging/engine.js';
import { type RescueMap, parseMapfile } from '../../src/imaging/mapfile.js';
import type { ImagingOptions, ImagingProgress, ImagingRequest, ImagingResult } from '../../src/imaging/types.js';
import { requireTool, run } from '../tools/exec.js';
import { type ByteRange, type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { sha256File } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';

export const SECTOR = 2048;
export const MiB = 1024 * 1024;

export function imagingOptions(overrides: Partial<ImagingOptions> = {}): ImagingOptions {
  return {
    readAttempts: 1,
    checksums: ['md5', 'sha256'],
    verify: false,
    clusterSectors: 32,
    directIo: 'auto',
    mapSaveIntervalMs: 200,
    stopThresholdPercent: 99,
    keepPartialOnCancel: false,
    ...overrides,
  };
}

/** Everything a test needs for one engine request; progress and log lines are collected. */
export function imagingRequest(
  source: { path: string; sizeBytes: number },
  outputPath: string,
  overrides: Omit<Partial<ImagingRequest>, 'options'> & { options?: Partial<ImagingOptions> } = {},
): ImagingRequest & { events: ImagingProgress[]; logs: string[] } {
  const events: ImagingProgress[] = [];
  const logs: string[] = [];
  const { options, ...rest } = overrides;
  return {
    source: { path: source.path, sizeBytes: source.sizeBytes, sectorSize: SECTOR },
    outputPath,
    options: imagingOptions(options),
    metadata: { test: true },
    onProgress: (event) => events.push(event),
    onLog: (level, message) => logs.push(`${level}: ${message}`),
    ...rest,
    events,
    logs,
  };
}

export async function scratchDir(name: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `disk2iso-${name}-`));
}

/** A file of seeded pseudo-random bytes (AES-CTR keystream), so every sector differs from every other and from zero. */
export async function writeRandomFile(path: string, sizeBytes: number, seed: string): Promise<void> {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const handle = await open(path, 'w');
  try {
    for (let written = 0; written < sizeBytes; ) {
      const length = Math.min(4 * MiB, sizeBytes - written);
      await handle.write(cipher.update(Buffer.alloc(length)), 0, length, written);
      written += length;
    }
  } finally {
    await handle.close();
  }
}

/** Sector numbers where the two files differ (they must have the same length). */
export async function differingSectors(pathA: string, pathB: string): Promise<number[]> {
  const [a, b] = await Promise.all([readFile(pathA), readFile(pathB)]);
  if (a.length !== b.length) throw new Error(`${pathA} has ${a.length} bytes, ${pathB} has ${b.length}`);
  const differing: number[] = [];
  for (let sector = 0; sector * SECTOR < a.length; sector++) {
    const start = sector * SECTOR;
    const end = Math.min(a.length, start + SECTOR);
    if (a.compare(b, start, end, start, end) !== 0) differing.push(sector);
  }
  return differing;
}

export function isZero(data: Buffer): boolean {
  return data.every((byte) => byte === 0);
}

export async function readMap(path: string): Promise<RescueMap> {
  return parseMapfile(await readFile(path, 'utf8')).map;
}

/** Every finished ('+') area of the map holds exactly the source's bytes in the image. */
export async function assertFinishedAreasMatch(map: RescueMap, imagePath: string, sourcePath: string): Promise<number> {
  const [image, source] = await Promise.all([readFile(imagePath), readFile(sourcePath)]);
  let checked = 0;
  for (const block of map.blocks()) {
    if (block.status !== '+') continue;
    const end = block.pos + block.size;
    if (image.compare(source, block.pos, end, block.pos, end) !== 0) throw new Error(`finished area [${block.pos}, ${end}) differs from the source`);
    checked += block.size;
  }
  return checked;
}

/** Sector numbers `ddrescuelog --list-blocks=- -b 2048` reports as bad. */
/**
 * Images until `pauseAtBytes` are copied, then pauses (as Ctrl-C or a stop does), and checks that
 * the saved map is part-way and every area it calls finished matches the disc.
 */
export async function imageUntilPaused(
  source: { path: string; sizeBytes: number },
  discPath: string,
  outputPath: string,
  pauseAtBytes: number,
): Promise<ImagingResult> {
  const controller = new AbortController();
  const request = imagingRequest(source, outputPath, {
    signal: controller.signal,
    onProgress: (event) => {
      if (event.bytesDone >= pauseAtBytes) controller.abort('pause');
    },
  });
  const result = await runImaging(request);
  assert.equal(result.outcome, 'paused');
  const map = await readMap(result.mapPath);
  const sums = map.sums();
  assert.ok(sums['+'] >= pauseAtBytes && sums['?'] > 0, `paused part-way: ${JSON.stringify(sums)}`);
  assert.equal(await assertFinishedAreasMatch(map, result.partPath, discPath), sums['+']);
  return result;
}

export async function ddrescuelogBadSectors(mapPath: string): Promise<number[]> {
  const ddrescuelog = await requireTool('ddrescuelog', 'gddrescue');
  const { stdout } = await run(ddrescuelog, ['--list-blocks=-', '-b', String(SECTOR), mapPath]);
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(Number);
}

/**
 * Mounts a memory file system on a fresh directory: tmpfs limited to `sizeMiB`, or ramfs (no size
 * limit, and no O_DIRECT). `unmount` also removes the directory.
 */
export async function mountMemoryFs(type: 'tmpfs' | 'ramfs', sizeMiB = 0): Promise<{ dir: string; unmount: () => Promise<void> }> {
  const mount = await requireTool('mount', 'mount');
  const umount = await requireTool('umount', 'mount');
  const dir = await scratchDir(type);
  await mkdir(dir, { recursive: true });
  try {
    await run(mount, ['-t', type, ...(type === 'tmpfs' ? ['-o', `size=${sizeMiB}m`] : []), type, dir]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  let mounted = true;
  return {
    dir,
    async unmount() {
      if (mounted) {
        await run(umount, [dir]);
        mounted = false;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A random disc behind faultfs and a read-only 2048-byte loop device, shared by one test file. */
export interface FaultyDisc {
  workdir: string;
  backing: string;
  sourceSha256: string;
  faultFs: FaultFs;
  loop: LoopDevice;
}

/**
 * Registers before/after hooks that make the disc for the tests of the calling file and tear it down
 * (loop first, then the mount, then the files), and returns it; its fields are set once `before` ran.
 */
export function useFaultyDisc(name: string, sizeBytes: number, badRanges: ByteRange[] = []): FaultyDisc {
  const disc = {} as FaultyDisc;
  before(async () => {
    disc.workdir = await scratchDir(name);
    disc.backing = join(disc.workdir, 'disc.img');
    await writeRandomFile(disc.backing, sizeBytes, name);
    disc.sourceSha256 = await sha256File(disc.backing);
    disc.faultFs = await mountFaultFs({ backingFile: disc.backing, badRanges });
    disc.loop = await attachLoop(disc.faultFs.file, { sectorSize: SECTOR });
  });
  after(async () => {
    try {
      await disc.loop?.detach();
    } finally {
      try {
        await disc.faultFs?.unmount();
      } finally {
        if (disc.workdir) await rm(disc.workdir, { recursive: true, force: true });
      }
    }
  });
  return disc;
}
