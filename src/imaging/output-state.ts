import { readFile, rm, stat, statfs } from 'node:fs/promises';
import { basename } from 'node:path';
import { ConflictError, errnoCode, errorMessage } from '../errors.js';
import { temporaryPathOf } from './atomic-file.js';
import { type RescueMap, createRescueMap, parseMapfile } from './mapfile.js';

/** The files a run keeps beside NAME.iso until it completes: the partial image and its rescue map. */
export function partialPaths(outputPath: string): { partPath: string; mapPath: string } {
  return { partPath: `${outputPath}.part`, mapPath: `${outputPath}.map` };
}

/**
 * Removes what a run left beside NAME.iso: the partial image, its rescue map, and a save of the map
 * cut short. The one clean-up of every way a run's data is discarded (the engine's cancel, the
 * runner's, the job service's cancel and removal of a job that is not running).
 */
export async function removePartials(outputPath: string): Promise<void> {
  const { partPath, mapPath } = partialPaths(outputPath);
  for (const path of [partPath, mapPath, temporaryPathOf(mapPath)]) await rm(path, { force: true });
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false;
    throw error;
  }
}

export interface StartState {
  map: RescueMap;
  /** True when NAME.iso.part and its map exist and the run continues them. */
  resumed: boolean;
}

/**
 * Decides between a fresh start and a resume from what lies in the output directory, refusing
 * (ConflictError) every state that would need a guess.
 */
export async function inspectOutput(paths: { outputPath: string; partPath: string; mapPath: string }, sizeBytes: number): Promise<StartState> {
  const { outputPath, partPath, mapPath } = paths;
  if (await pathExists(outputPath)) throw new ConflictError('output_exists', `${outputPath} already exists; choose another name`, { path: outputPath });
  const partExists = await pathExists(partPath);
  if (!(await pathExists(mapPath))) {
    if (partExists) {
      throw new ConflictError('map_missing', `${partPath} exists without its rescue map ${basename(mapPath)}; remove it or restore the map`, {
        path: partPath,
      });
    }
    return { map: createRescueMap(sizeBytes), resumed: false };
  }
  let map: RescueMap;
  try {
    ({ map } = parseMapfile(await readFile(mapPath, 'utf8')));
  } catch (error) {
    throw new ConflictError('map_invalid', `${mapPath} is not a valid rescue map: ${errorMessage(error)}`, { path: mapPath });
  }
  if (map.size !== sizeBytes) {
    throw new ConflictError('map_size_mismatch', `${mapPath} describes ${map.size} bytes but the source has ${sizeBytes}; it belongs to another disc`, {
      path: mapPath,
      map_size: map.size,
      source_size: sizeBytes,
    });
  }
  if (!partExists) {
    // The engine writes the first map before it creates the .part; a crash between the two leaves
    // a map with nothing finished, which is safe to start over from.
    if (map.sums()['+'] > 0) throw new ConflictError('part_missing', `${mapPath} records rescued data but ${partPath} is missing`, { path: mapPath });
    return { map: createRescueMap(sizeBytes), resumed: false };
  }
  const partSize = (await stat(partPath)).size;
  if (partSize > sizeBytes) {
    throw new ConflictError('part_size_mismatch', `${partPath} is larger (${partSize} bytes) than the source (${sizeBytes} bytes)`, { path: partPath });
  }
  return { map, resumed: true };
}

export interface OutputSpace {
  availableBytes: number;
  /** As df computes it: used / (used + available to unprivileged users). */
  usedPercent: number;
}

export async function outputSpace(dir: string): Promise<OutputSpace> {
  const info = await statfs(dir);
  // ramfs and some FUSE file systems report no size at all: nothing to check against.
  if (info.blocks === 0) return { availableBytes: Number.POSITIVE_INFINITY, usedPercent: 0 };
  const used = info.blocks - info.bfree;
  const usable = used + info.bavail;
  return { availableBytes: info.bavail * info.bsize, usedPercent: usable === 0 ? 100 : (used / usable) * 100 };
}
