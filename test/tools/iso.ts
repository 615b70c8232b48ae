import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { requireTool, run } from './exec.js';

export { requireTool } from './exec.js';

export interface MakeIsoOptions {
  /** Directory the ISO is written to (its scratch tree is made and removed there too). */
  dir: string;
  /** Volume identifier; default `DISK2ISO_TEST`. */
  label?: string;
  /** Total payload of the random data files in MiB (fractions allowed); default 8. */
  dataMiB?: number;
  /** Number of random data files the payload is split into; default 4. */
  files?: number;
  /** Same seed and options give the same content and, as dates are pinned, the same image bytes. Default 1. */
  seed?: number;
  /** Joliet names; default true. */
  joliet?: boolean;
  /** Rock Ridge (rationalised: owner root, read-only modes, so the image does not depend on who built it); default true. */
  rockRidge?: boolean;
  /** Add a DVD-Video layout (VIDEO_TS/ with IFO, BUP and VOB files, empty AUDIO_TS/). */
  videoTs?: boolean;
  /** Add a Blu-ray layout (BDMV/index.bdmv, MovieObject.bdmv, STREAM/, CERTIFICATE/). */
  bdmv?: boolean;
}

export interface MadeIso {
  path: string;
  sizeBytes: number;
  sha256: string;
}

const MiB = 1024 * 1024;
const CHUNK_BYTES = 4 * MiB;
/** 2024-01-01T00:00:00Z: every date in the image is pinned to it so images are reproducible. */
const FIXED_EPOCH_SECONDS = 1_704_067_200;

/**
 * A seeded, fast pseudo-random byte stream: the AES-128-CTR keystream under a key derived from
 * the seed and a purpose string. It runs at memory speed, unlike a JavaScript PRNG loop.
 */
function seededStream(seed: number, purpose: string): (length: number) => Buffer {
  const key = createHash('sha256').update(`disk2iso-test:${seed}:${purpose}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return (length) => cipher.update(Buffer.alloc(length));
}

async function writeRandomFile(path: string, sizeBytes: number, next: (length: number) => Buffer, header = ''): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const handle = await open(path, 'w');
  try {
    let written = 0;
    while (written < sizeBytes) {
      const chunk = next(Math.min(CHUNK_BYTES, sizeBytes - written));
      if (written === 0 && header !== '') chunk.write(header, 0, 'latin1');
      await handle.write(chunk, 0, chunk.length);
      written += chunk.length;
    }
  } finally {
    await handle.close();
  }
}

/** Splits `total` bytes into `count` deterministic, deliberately unaligned sizes. */
function fileSizes(total: number, count: number, next: (length: number) => Buffer): number[] {
  if (count <= 0 || total <= 0) return [];
  const base = Math.floor(total / count);
  const sizes: number[] = [];
  for (let i = 0; i < count - 1; i++) {
    // Up to one sector less than the even share, so file ends fall mid-sector.
    sizes.push(Math.max(0, base - (next(2).readUInt16LE(0) % 2048)));
  }
  sizes.push(total - sizes.reduce((sum, size) => sum + size, 0));
  return sizes;
}

async function writeTree(root: string, opts: Required<Omit<MakeIsoOptions, 'dir'>>): Promise<string[]> {
  const written: string[] = [];
  const add = async (relative: string, sizeBytes: number, header = ''): Promise<void> => {
    const path = join(root, relative);
    await writeRandomFile(path, sizeBytes, seededStream(opts.seed, relative), header);
    written.push(path);
  };

  const sizes = fileSizes(Math.round(opts.dataMiB * MiB), opts.files, seededStream(opts.seed, 'sizes'));
  for (const [index, size] of sizes.entries()) {
    const name = `file_${String(index).padStart(3, '0')}.bin`;
    await add(index % 2 === 0 ? join('data', name) : join('data', 'nested', name), size);
  }
  await writeFile(join(root, 'readme.txt'), `disk2iso test disc ${opts.label}, seed ${opts.seed}\n`);
  written.push(join(root, 'readme.txt'));

  if (opts.videoTs) {
    await add('VIDEO_TS/VIDEO_TS.IFO', 12 * 2048, 'DVDVIDEO-VMG');
    await add('VIDEO_TS/VIDEO_TS.BUP', 12 * 2048, 'DVDVIDEO-VMG');
    await add('VIDEO_TS/VIDEO_TS.VOB', 64 * 2048);
    await add('VIDEO_TS/VTS_01_0.IFO', 16 * 2048, 'DVDVIDEO-VTS');
    await add('VIDEO_TS/VTS_01_0.BUP', 16 * 2048, 'DVDVIDEO-VTS');
    await add('VIDEO_TS/VTS_01_1.VOB', 512 * 2048);
    await mkdir(join(root, 'AUDIO_TS'), { recursive: true });
    written.push(join(root, 'AUDIO_TS'));
  }
  if (opts.bdmv) {
    await add('BDMV/index.bdmv', 2048, 'INDX0200');
    await add('BDMV/MovieObject.bdmv', 4096, 'MOBJ0200');
    await add('BDMV/PLAYLIST/00000.mpls', 2048, 'MPLS0200');
    await add('BDMV/CLIPINF/00000.clpi', 2048, 'HDMV0200');
    await add('BDMV/STREAM/00000.m2ts', 256 * 6144);
    await mkdir(join(root, 'CERTIFICATE'), { recursive: true });
    written.push(join(root, 'CERTIFICATE'));
  }
  return written;
}

/** Every directory from each written path up to (including) the root, children first. */
function directoriesOf(root: string, paths: string[]): string[] {
  const dirs = new Set<string>();
  for (const path of paths) {
    for (let dir = dirname(path); dir.startsWith(root); dir = dirname(dir)) {
      dirs.add(dir);
      if (dir === root) break;
    }
  }
  return [...dirs].sort((a, b) => b.length - a.length);
}

/** Builds an ISO 9660 image of seeded random files with xorriso. */
export async function makeIso(opts: MakeIsoOptions): Promise<MadeIso> {
  const xorriso = await requireTool('xorriso', 'xorriso');
  const settings = {
    label: opts.label ?? 'DISK2ISO_TEST',
    dataMiB: opts.dataMiB ?? 8,
    files: opts.files ?? 4,
    seed: opts.seed ?? 1,
    joliet: opts.joliet ?? true,
    rockRidge: opts.rockRidge ?? true,
    videoTs: opts.videoTs ?? false,
    bdmv: opts.bdmv ?? false,
  };
  if (!Number.isInteger(settings.files) || settings.files < 0) throw new Error(`files must be a non-negative integer, got ${settings.files}`);
  if (!(settings.dataMiB >= 0)) throw new Error(`dataMiB must be >= 0, got ${settings.dataMiB}`);

  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  const safeLabel = settings.label.replace(/[^A-Za-z0-9_.-]/g, '_');
  const path = join(dir, `${safeLabel}-${randomBytes(6).toString('hex')}.iso`);
  const tree = await mkdtemp(join(dir, '.iso-tree-'));
  try {
    const written = await writeTree(tree, settings);
    for (const entry of [...written, ...directoriesOf(tree, written)]) {
      await utimes(entry, FIXED_EPOCH_SECONDS, FIXED_EPOCH_SECONDS);
    }
    const args = [
      '-as',
      'mkisofs',
      '-quiet',
      '-V',
      settings.label,
      ...(settings.joliet ? ['-J'] : []),
      ...(settings.rockRidge ? ['-r'] : ['--norock']),
      '-o',
      path,
      tree,
    ];
    // xorriso writes Rock Ridge unless told --norock. SOURCE_DATE_EPOCH pins the volume dates and the volume UUID that xorriso would take from the clock.
    await run(xorriso, args, { env: { ...process.env, SOURCE_DATE_EPOCH: String(FIXED_EPOCH_SECONDS) } });
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
  const { size } = await stat(path);
  return { path, sizeBytes: size, sha256: await sha256File(path) };
}

/** SHA-256 of a file as lowercase hex, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
