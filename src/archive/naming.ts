import { lstat, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { ValidationError, errnoCode } from '../errors.js';

/** Longest image name we accept; leaves room for `_NNN.iso.sha256` within a 255-byte file name. */
const MAX_NAME_LENGTH = 200;

const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/u;
const SEPARATORS = /[/\\]/;
/** Characters that make names awkward in shells and on other file systems; replaced in labels. */
const AWKWARD_CHARS = /[<>:"|?*\u0000-\u001f\u007f-\u009f/\\]/gu;

/**
 * Checks a name a user typed (API field, CLI flag). Bad names are refused with a message saying
 * why, never silently altered, so the user knows exactly which file they will get.
 */
export function validateImageName(raw: string): string {
  const name = stripIsoSuffix(raw.trim());
  const fail = (reason: string): never => {
    throw new ValidationError('invalid_name', `invalid name "${printable(raw)}": ${reason}`, [{ field: 'name', reason }]);
  };
  if (name === '') fail('it is empty');
  if (CONTROL_CHARS.test(name)) fail('it contains control characters');
  if (SEPARATORS.test(name)) fail('it contains a path separator (/ or \\)');
  if (name === '.' || name === '..' || name.includes('..')) fail('it contains ".."');
  if (name.startsWith('.') || name.startsWith('-')) fail('it must not start with "." or "-"');
  if (Buffer.byteLength(name) > MAX_NAME_LENGTH) fail(`it is longer than ${MAX_NAME_LENGTH} bytes`);
  return name;
}

/**
 * Turns a disc's volume label (arbitrary bytes from the disc, e.g. `MOVIE/DISC:1`) into a usable
 * image name. Unlike validateImageName it repairs instead of refusing: the label is not the user's input.
 */
export function imageNameFromLabel(label: string | null | undefined, fallback = 'disc'): string {
  const cleaned = (label ?? '')
    .replace(AWKWARD_CHARS, '_')
    .replace(/\.\.+/g, '.')
    .replace(/\s+/g, '_')
    .replace(/^[._-]+|[._-]+$/g, '');
  const truncated = Buffer.from(cleaned)
    .subarray(0, MAX_NAME_LENGTH)
    .toString('utf8')
    .replace(/\uFFFD+$/u, '');
  return truncated === '' ? fallback : truncated;
}

function stripIsoSuffix(name: string): string {
  return name.toLowerCase().endsWith('.iso') ? name.slice(0, -4) : name;
}

function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

/** The folder of an image's PAR2 recovery data: beside the image, named after it, removed with it. */
export function recoveryDirOf(imagePath: string): string {
  return `${imagePath}.recovery`;
}

/** Files that belong to the image `base` (.iso) and make its name taken. */
export function imageFileSet(imagePath: string): string[] {
  return ['', '.part', '.map', '.md5', '.sha1', '.sha256', '.json'].map((suffix) => `${imagePath}${suffix}`);
}

/**
 * Picks `DIR/NAME.iso`, or `DIR/NAME_2.iso`, `DIR/NAME_3.iso`, … when any file of that image set
 * exists already or another job has the path reserved, so two discs with the same label never
 * overwrite each other.
 */
export async function allocateImagePath(outputDir: string, name: string, reserved: ReadonlySet<string> = new Set()): Promise<string> {
  for (let attempt = 1; attempt < 10_000; attempt += 1) {
    const candidate = join(outputDir, `${attempt === 1 ? name : `${name}_${attempt}`}.iso`);
    assertInside(outputDir, candidate);
    if (!reserved.has(candidate) && !(await anyExists(imageFileSet(candidate)))) return candidate;
  }
  throw new ValidationError('name_exhausted', `too many images named "${name}" in ${outputDir}`);
}

async function anyExists(paths: string[]): Promise<boolean> {
  for (const path of paths) {
    try {
      await lstat(path);
      return true;
    } catch {
      // Missing is the answer we hope for; any other error surfaces when we write the file.
    }
  }
  return false;
}

/** True when `path` lies strictly inside `dir` (lexically: resolve symlinks first where they matter). */
export function isStrictlyInside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(dir, path));
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** Throws unless `path` lies strictly inside `dir` (lexically; see resolveInside for symlinks). */
function assertInside(dir: string, path: string): void {
  if (!isStrictlyInside(dir, path)) {
    throw new ValidationError('path_outside_output_dir', `path ${path} is outside the output directory ${dir}`, [
      { field: 'output', reason: 'outside output directory' },
    ]);
  }
}

/**
 * Resolves a user-given output file (absolute, or relative to the output directory) and checks it
 * stays inside the directory even after symlinks in its parent are followed.
 */
export async function resolveOutputFile(outputDir: string, given: string): Promise<string> {
  if (CONTROL_CHARS.test(given)) {
    throw new ValidationError('invalid_name', `invalid output "${printable(given)}": it contains control characters`, [{ field: 'output' }]);
  }
  const candidate = resolve(outputDir, given.toLowerCase().endsWith('.iso') ? given : `${given}.iso`);
  assertInside(outputDir, candidate);
  validateImageName(basename(candidate));
  const realDir = await realpath(outputDir);
  const realParent = await realpath(dirname(candidate)).catch(() => {
    throw new ValidationError('invalid_output', `the folder of ${given} does not exist inside ${outputDir}`, [{ field: 'output' }]);
  });
  const rel = relative(realDir, realParent);
  if (rel.startsWith('..') || isAbsolute(rel)) {
    throw new ValidationError('path_outside_output_dir', `path ${given} leads outside the output directory ${outputDir}`, [{ field: 'output' }]);
  }
  return join(realParent, basename(candidate));
}

/**
 * The folders archived images may lie in, resolved through symlinks: the output directory and the
 * folders an admin allowed images to be adopted from (archive.adopt_roots). Those that do not exist
 * are left out. Read at each call: both settings may change while the service runs.
 */
export async function resolvedImageRoots(config: Pick<Config, 'storage' | 'archive'>): Promise<string[]> {
  const roots: string[] = [];
  for (const root of [config.storage.output_dir, ...config.archive.adopt_roots]) {
    try {
      roots.push(await realpath(root));
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
    }
  }
  return roots;
}
