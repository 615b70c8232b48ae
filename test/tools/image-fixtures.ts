import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { requireTool, run } from './exec.js';
import { crc16 } from './udf250-image.js';

/**
 * Images made by the real tools, for the image reader's tests: xorriso for ISO 9660 (with Rock
 * Ridge and Joliet), mkudffs and udfclient for UDF 2.01. And the source tree they were made from,
 * to compare listings and bytes with.
 */

export interface SourceEntry {
  path: string;
  kind: 'file' | 'directory';
  size: number;
}

/** A tree with deep folders, a long name, non-ASCII names, an empty file and some random bytes. */
export async function writeSourceTree(root: string): Promise<void> {
  const deep = join(root, 'deep', ...Array.from({ length: 11 }, (_, index) => `level${index}`));
  await mkdir(deep, { recursive: true });
  await mkdir(join(root, 'Grüße – 日本'), { recursive: true });
  await writeFile(join(root, 'hello.txt'), 'hello, image\n');
  await writeFile(join(root, 'empty.dat'), '');
  await writeFile(join(root, `${'long-name-'.repeat(19)}.txt`), 'long\n');
  await writeFile(join(root, 'Grüße – 日本', 'Ünïcödé ✓.txt'), 'unicode\n');
  await writeFile(join(root, 'random.bin'), randomBytes(3 * 1024 * 1024 + 17));
  await writeFile(join(deep, 'bottom.txt'), 'the bottom\n');
}

export async function listSourceTree(root: string, directory = root): Promise<SourceEntry[]> {
  const entries: SourceEntry[] = [];
  for (const dirent of await readdir(directory, { withFileTypes: true })) {
    const path = join(directory, dirent.name);
    const info = await stat(path);
    entries.push({ path: relative(root, path), kind: dirent.isDirectory() ? 'directory' : 'file', size: dirent.isDirectory() ? 0 : info.size });
    if (dirent.isDirectory()) entries.push(...(await listSourceTree(root, path)));
  }
  return entries;
}

/** `-R -J` for Rock Ridge and Joliet, `-J` for Joliet alone, nothing for plain ISO 9660 names. */
export async function makeXorrisoImage(source: string, output: string, extensions: string[]): Promise<string> {
  const xorriso = await requireTool('xorriso', 'xorriso');
  await run(xorriso, ['-as', 'mkisofs', '-quiet', ...extensions, '-iso-level', '3', '-V', 'READER_TEST', '-o', output, source]);
  return output;
}

/**
 * An image holding a file larger than 4 GiB (so ISO 9660 needs several extents for it), written
 * sparsely: xorriso's output is read from a pipe and runs of zeros are skipped, so the test costs
 * seconds and no disk space.
 */
export async function makeSparseXorrisoImage(source: string, output: string): Promise<string> {
  const xorriso = await requireTool('xorriso', 'xorriso');
  const handle = await open(output, 'w');
  const child = spawn(xorriso, ['-as', 'mkisofs', '-quiet', '-R', '-J', '-iso-level', '3', '-o', '-', source], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let position = 0;
  // Compared natively: scanning gigabytes of zeros byte by byte in JavaScript takes a minute.
  let zeros = Buffer.alloc(0);
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      if (zeros.length < chunk.length) zeros = Buffer.alloc(chunk.length);
      if (!chunk.equals(zeros.subarray(0, chunk.length))) await handle.write(chunk, 0, chunk.length, position);
      position += chunk.length;
    }
    await handle.truncate(position);
  } finally {
    await handle.close();
  }
  const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('close', resolve)));
  if (code !== 0) throw new Error(`xorriso failed (${code}): ${stderr}`);
  return output;
}

/** A sparse file of `size` bytes ending in `tail`. */
export async function writeSparseFile(path: string, size: number, tail: string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.truncate(size - tail.length);
    await handle.write(tail, size - tail.length);
  } finally {
    await handle.close();
  }
}

/**
 * A UDF 2.01 file system made by mkudffs and filled by udfclient (no kernel UDF driver or mount
 * needed). udfclient takes one name per `put`, without spaces, so the tree is ASCII here.
 */
export async function makeUdfImage(output: string, files: Array<{ path: string; content: Buffer }>): Promise<string> {
  const mkudffs = await requireTool('mkudffs', 'udftools');
  const udfclient = await requireTool('udfclient', 'udfclient');
  const staging = `${output}.staging`;
  await mkdir(staging, { recursive: true });
  const handle = await open(output, 'w');
  await handle.truncate(64 * 1024 * 1024);
  await handle.close();
  await run(mkudffs, ['--media-type=hd', '--blocksize=2048', '--label=READER_TEST', output]);
  const listing = await feed(udfclient, ['-b', '2048', output], 'ls\nquit\n', staging);
  const volume = /\S+:READER_TEST:READER_TEST:\S+/u.exec(listing)?.[0];
  if (volume === undefined) throw new Error(`udfclient shows no volume:\n${listing}`);
  const commands = [`cd ${volume}`];
  const made = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/');
    const name = parts.pop() as string;
    commands.push(`cd /${volume}`);
    for (const [index, part] of parts.entries()) {
      const sofar = parts.slice(0, index + 1).join('/');
      if (!made.has(sofar)) {
        commands.push(`mkdir ${part}`);
        made.add(sofar);
      }
      commands.push(`cd ${part}`);
    }
    // Each file gets its own local folder: udfclient puts a file under its local name.
    const local = join(staging, String(commands.length));
    await mkdir(local);
    await writeFile(join(local, name), file.content);
    commands.push(`lcd ${local}`, `put ${name}`);
  }
  commands.push('quit');
  await feed(udfclient, ['-W', '-b', '2048', output], `${commands.join('\n')}\n`, staging);
  return output;
}

/**
 * Copies a whole UDF volume out with udfclient, an independent reader (it follows UDF 2.50
 * metadata partitions), into `output`; returns the folder that holds the volume's root. udfclient
 * names files the Unix way of UDF 2.60 4.2.2.1, see `udfclientName`.
 */
export async function extractWithUdfclient(image: string, output: string): Promise<string> {
  const udfclient = await requireTool('udfclient', 'udfclient');
  await mkdir(output, { recursive: true });
  const listing = await feed(udfclient, ['-b', '2048', image], 'ls\nquit\n', output);
  // The root lists each logical volume as `volume set:primary volume:logical volume:file set`.
  const volume = /^d\S+\s+\S+\s+\S+\s+\d+\s+(\S+:\S+:\S+:\S+)$/mu.exec(listing)?.[1];
  if (volume === undefined) throw new Error(`udfclient shows no volume:\n${listing}`);
  await feed(udfclient, ['-b', '2048', image], `mget ${volume}\nquit\n`, output);
  return join(output, volume);
}

/**
 * The name udfclient gives a file on Unix (the file name translation of UDF 2.60 4.2.2.1): a name with
 * characters outside printable ASCII gets each run of them replaced by one `_`, and `#` with the
 * CRC of the UCS-2 name in hex before an extension of up to five characters.
 */
export function udfclientName(name: string): string {
  if (/^[\x20-\x7e]*$/u.test(name)) return name;
  const foreign = /[^\x20-\x7e]+/gu;
  const crc = crc16(Buffer.from(name, 'utf16le').swap16()).toString(16).toUpperCase().padStart(4, '0');
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 && name.length - dot - 1 <= 5 ? name.slice(dot) : '';
  const stem = name.slice(0, name.length - extension.length);
  return `${stem.replace(foreign, '_')}#${crc}${extension.replace(foreign, '_')}`;
}

function feed(command: string, args: string[], input: string, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`${command} failed (${code}):\n${output}`))));
    child.stdin.end(input);
  });
}

export async function readSourceFile(root: string, path: string): Promise<Buffer> {
  return readFile(join(root, path));
}
