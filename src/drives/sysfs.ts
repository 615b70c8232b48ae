import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';

/**
 * Reads what the kernel publishes about block devices under sysfs. Every reader takes the sysfs
 * root so tests can point it at a fixture tree; a missing attribute is null, never an error,
 * because which attributes exist depends on the driver (loop devices have no vendor).
 */

/** Optical drives are the SCSI CD-ROM class: `sr0`, `sr1`, … in numeric order. */
export async function listOpticalNames(sysfsRoot: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(join(sysfsRoot, 'class', 'block'));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw error;
  }
  return names.filter((name) => /^sr\d+$/.test(name)).sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)));
}

export interface BlockGeometry {
  /** The `size` attribute counts 512-byte units whatever the device's sector size. */
  sizeBytes: number | null;
  logicalBlockSize: number | null;
}

export async function readBlockGeometry(sysfsRoot: string, name: string): Promise<BlockGeometry> {
  const device = blockPath(sysfsRoot, name);
  const size = await readInteger(`${device}/size`);
  // A partition has no queue of its own; its disk's queue is one level up. The `..` must be
  // resolved by the kernel through the class/block symlink, so the path is not normalised.
  const logicalBlockSize = (await readInteger(`${device}/queue/logical_block_size`)) ?? (await readInteger(`${device}/../queue/logical_block_size`));
  return { sizeBytes: size === null ? null : size * 512, logicalBlockSize };
}

export interface ScsiIdentity {
  vendor: string | null;
  model: string | null;
  revision: string | null;
}

/** SCSI INQUIRY strings (fixed width, space padded) of the device behind a block device. */
export async function readScsiIdentity(sysfsRoot: string, name: string): Promise<ScsiIdentity> {
  const device = `${blockPath(sysfsRoot, name)}/device`;
  return {
    vendor: await readText(`${device}/vendor`),
    model: await readText(`${device}/model`),
    revision: await readText(`${device}/rev`),
  };
}

/** The file behind a loop device, as the loop driver reports it. */
export async function readLoopBackingFile(sysfsRoot: string, name: string): Promise<string | null> {
  return readText(`${blockPath(sysfsRoot, name)}/loop/backing_file`);
}

function blockPath(sysfsRoot: string, name: string): string {
  return `${sysfsRoot}/class/block/${name}`;
}

async function readText(path: string): Promise<string | null> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    return text === '' ? null : text;
  } catch {
    // Attributes differ per driver and vanish when a device goes away; absence is the answer.
    return null;
  }
}

async function readInteger(path: string): Promise<number | null> {
  const text = await readText(path);
  if (text === null || !/^\d+$/.test(text)) return null;
  return Number(text);
}
