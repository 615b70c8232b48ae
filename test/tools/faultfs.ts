import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CommandError, requireTool, run } from './exec.js';

/** A byte range [start, end), end exclusive. */
export type ByteRange = [number, number];

export interface MountFaultFsOptions {
  /** The file whose bytes /disc.img serves. */
  backingFile: string;
  /** Reads overlapping any of these fail with EIO as a whole. */
  badRanges?: ByteRange[];
  /** Delay before every read, in milliseconds (fractions allowed, microsecond resolution). */
  delayMs?: number;
  /** Hold every read until setHang(false): a drive that stopped answering. */
  hang?: boolean;
  /** Bytes per second the file is served at: each read takes its length / rate (besides any delay). 0: unlimited. */
  rateBps?: number;
  /** Log every read the daemon serves, for readLog(). */
  logReads?: boolean;
}

/** One read as the daemon served it. */
export interface FaultFsRead {
  offset: number;
  length: number;
  /** Bytes served, or the negative errno of a failed read. */
  result: number;
}

/** What the daemon reports it applied and served (its status file). */
export interface FaultFsStats {
  /** Increases each time the daemon (re)loads the control file. */
  generation: number;
  delayUs: number;
  hang: boolean;
  rateBps: number;
  badRanges: ByteRange[];
  /** Read requests that reached the daemon, failed ones and delayed ones included. */
  reads: number;
  failedReads: number;
  delayedReads: number;
  /** Reads the hang held, the one held now included. */
  heldReads: number;
  /** True while the daemon holds a read (and, single-threaded, everything queued behind it). */
  holding: boolean;
  /** Bytes asked for by every read, failed ones included. */
  readBytes: number;
}

export interface FaultFs {
  /** `<mountpoint>/disc.img` */
  file: string;
  mountpoint: string;
  /** The host-side control file the daemon reloads; setBadRanges/setDelay write it. Exposed to test the daemon's parser. */
  controlFile: string;
  /** Replaces the bad ranges; effective for the next read. */
  setBadRanges(ranges: ByteRange[]): Promise<void>;
  /** Replaces the per-read delay; effective for the next read. */
  setDelay(ms: number): Promise<void>;
  /**
   * Holds every read from now on (true) or releases the held one and serves again (false). The
   * daemon polls the control file while it holds a read, so a release takes effect within ~10 ms.
   */
  setHang(on: boolean): Promise<void>;
  /** Replaces the rate (bytes per second, 0 unlimited); effective for the next read. */
  setRate(bytesPerSecond: number): Promise<void>;
  stats(): Promise<FaultFsStats>;
  /** Every read served so far, in order; only with `logReads`. */
  readLog(): Promise<FaultFsRead[]>;
  /** SIGKILLs the daemon (the drive vanishes: reads fail with ENOTCONN/EIO), then lazily unmounts. */
  kill(): Promise<void>;
  /** Clean unmount and removal of the scratch directory; idempotent, also after kill(). */
  unmount(): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SOURCE = join(REPO_ROOT, 'test', 'tools', 'faultfs.c');
const BINARY = join(REPO_ROOT, '.cache', 'faultfs', 'faultfs');
const MOUNT_POLL_MS = 20;
const UNMOUNT_ATTEMPTS = 20;
const UNMOUNT_RETRY_MS = 50;
/** Not a test assertion: only keeps a daemon that never comes up from hanging the run. */
const MOUNT_DEADLINE_MS = 15_000;

let building: Promise<string> | undefined;

/** Compiles faultfs.c to <repo>/.cache/faultfs/faultfs unless the binary is newer than the source. */
export function buildFaultFs(): Promise<string> {
  building ??= compileIfStale().catch((error: unknown) => {
    building = undefined;
    throw error;
  });
  return building;
}

async function compileIfStale(): Promise<string> {
  const source = await stat(SOURCE);
  const binary = await stat(BINARY).catch(() => undefined);
  if (binary !== undefined && binary.mtimeMs >= source.mtimeMs) return BINARY;

  const gcc = await requireTool('gcc', 'gcc');
  const pkgConfig = await requireTool('pkg-config', 'pkg-config');
  const flags = await run(pkgConfig, ['fuse3', '--cflags', '--libs']).catch((error: unknown) => {
    throw new Error('pkg-config cannot find fuse3; install the Debian package libfuse3-dev', { cause: error });
  });
  await mkdir(join(REPO_ROOT, '.cache', 'faultfs'), { recursive: true });
  // A private output name then rename(): concurrent test processes never see a half-written binary.
  const temporary = `${BINARY}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await run(gcc, ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-o', temporary, SOURCE, ...flags.stdout.trim().split(/\s+/)]);
    await rename(temporary, BINARY);
  } finally {
    await rm(temporary, { force: true });
  }
  return BINARY;
}

function controlText(badRanges: readonly ByteRange[], delayMs: number, rateBps: number, hang: boolean): string {
  const lines = badRanges.map(([start, end]) => `bad ${start} ${end}`);
  lines.push(`delay_us ${Math.round(delayMs * 1000)}`);
  if (rateBps > 0) lines.push(`rate_bps ${rateBps}`);
  lines.push(`hang ${hang ? 1 : 0}`);
  return `${lines.join('\n')}\n`;
}

function checkRanges(ranges: readonly ByteRange[]): void {
  for (const [start, end] of ranges) {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start) {
      throw new Error(`invalid bad range [${start}, ${end}): need integers 0 <= start < end`);
    }
  }
}

function checkDelay(ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`invalid delay ${ms} ms`);
}

function checkRate(bytesPerSecond: number): void {
  if (!Number.isSafeInteger(bytesPerSecond) || bytesPerSecond < 0) throw new Error(`invalid rate ${bytesPerSecond} bytes/s`);
}

/** fuse_opt splits -o values at commas; a backslash escapes one. */
function escapeOption(value: string): string {
  return value.replace(/[\\,]/g, (char) => `\\${char}`);
}

function parseStats(text: string): FaultFsStats {
  const stats: FaultFsStats = {
    generation: 0,
    delayUs: 0,
    rateBps: 0,
    hang: false,
    badRanges: [],
    reads: 0,
    failedReads: 0,
    delayedReads: 0,
    readBytes: 0,
    heldReads: 0,
    holding: false,
  };
  for (const line of text.split('\n')) {
    const [key, a, b] = line.split(' ');
    const value = Number(a);
    switch (key) {
      case 'generation':
        stats.generation = value;
        break;
      case 'delay_us':
        stats.delayUs = value;
        break;
      case 'rate_bps':
        stats.rateBps = value;
        break;
      case 'read_bytes':
        stats.readBytes = value;
        break;
      case 'reads':
        stats.reads = value;
        break;
      case 'failed_reads':
        stats.failedReads = value;
        break;
      case 'delayed_reads':
        stats.delayedReads = value;
        break;
      case 'hang':
        stats.hang = value === 1;
        break;
      case 'held_reads':
        stats.heldReads = value;
        break;
      case 'holding':
        stats.holding = value === 1;
        break;
      case 'bad':
        stats.badRanges.push([value, Number(b)]);
        break;
    }
  }
  return stats;
}

function parseReadLog(text: string): FaultFsRead[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [offset, length, result] = line.split(' ').map(Number);
      return { offset: offset ?? NaN, length: length ?? NaN, result: result ?? NaN };
    });
}

/** Daemons still running when the test process exits are killed, lazily unmounted and their scratch removed. */
const liveMounts = new Map<ChildProcess, { mountpoint: string; workdir: string }>();
process.on('exit', () => {
  for (const [child, { mountpoint, workdir }] of liveMounts) {
    child.kill('SIGKILL');
    spawnSync('fusermount3', ['-u', '-z', mountpoint]);
    rmSync(workdir, { recursive: true, force: true });
  }
});

/** Mounts faultfs over `backingFile` on a fresh mountpoint and waits until /disc.img is served. */
export async function mountFaultFs(opts: MountFaultFsOptions): Promise<FaultFs> {
  const binary = await buildFaultFs();
  const fusermount = await requireTool('fusermount3', 'fuse3');
  const backingFile = resolve(opts.backingFile);
  const { size: backingSize } = await stat(backingFile);
  let badRanges = [...(opts.badRanges ?? [])];
  let delayMs = opts.delayMs ?? 0;
  let hang = opts.hang ?? false;
  let rateBps = opts.rateBps ?? 0;
  checkRanges(badRanges);
  checkDelay(delayMs);
  checkRate(rateBps);

  const workdir = await mkdtemp(join(tmpdir(), 'faultfs-'));
  const mountpoint = join(workdir, 'mnt');
  const controlFile = join(workdir, 'control');
  const statusFile = join(workdir, 'status');
  const readLogFile = join(workdir, 'reads.log');
  const file = join(mountpoint, 'disc.img');
  await mkdir(mountpoint);

  // The daemon reloads when the control file's inode, size or mtime differ from what it applied.
  // rename() gives a new inode, but tmpfs may reuse an old inode number, so the mtime also
  // strictly increases: two writes in the same clock tick still count as a change.
  // Writes are queued so that overlapping calls never share the temporary file.
  let lastMtimeSeconds = 0;
  let controlWrites = Promise.resolve();
  function writeControl(): Promise<void> {
    const text = controlText(badRanges, delayMs, rateBps, hang);
    const write = controlWrites.then(async () => {
      const temporary = `${controlFile}.tmp`;
      await writeFile(temporary, text);
      lastMtimeSeconds = Math.max(Date.now() / 1000, lastMtimeSeconds + 0.01);
      await utimes(temporary, lastMtimeSeconds, lastMtimeSeconds);
      await rename(temporary, controlFile);
    });
    controlWrites = write.catch(() => undefined);
    return write;
  }
  await writeControl();

  const options = [
    `backing=${escapeOption(backingFile)}`,
    `control=${escapeOption(controlFile)}`,
    `status=${escapeOption(statusFile)}`,
    'ro',
    'fsname=faultfs',
    'subtype=faultfs',
  ];
  if (opts.logReads === true) options.push(`readlog=${escapeOption(readLogFile)}`);
  const child = spawn(binary, ['-f', '-s', '-o', options.join(','), mountpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-8192);
  });
  const exited = new Promise<void>((resolveExit) => {
    child.once('exit', () => resolveExit());
    child.once('error', (error) => {
      stderr += String(error);
      resolveExit();
    });
  });
  let running = true;
  void exited.then(() => {
    running = false;
  });
  liveMounts.set(child, { mountpoint, workdir });
  // A test that forgets unmount() must not hang its process: the daemon does not keep the event
  // loop alive (the exit hook above removes it), except while we wait for it to end.
  child.unref();
  if (child.stderr instanceof Socket) child.stderr.unref();
  function daemonEnded(): Promise<void> {
    if (running) child.ref();
    return exited;
  }
  let mounted = false;

  async function unmountFs(lazy: boolean): Promise<void> {
    if (!mounted) return;
    await run(fusermount, lazy ? ['-u', '-z', mountpoint] : ['-u', mountpoint]);
    mounted = false;
  }

  /** A just-detached loop device may hold the file a moment longer (deferred release), so busy is retried. */
  async function unmountCleanly(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await unmountFs(false);
        return;
      } catch (error) {
        if (!(error instanceof CommandError && /busy/i.test(error.stderr)) || attempt >= UNMOUNT_ATTEMPTS) throw error;
        await sleep(UNMOUNT_RETRY_MS);
      }
    }
  }

  async function removeWorkdir(): Promise<void> {
    liveMounts.delete(child);
    await rm(workdir, { recursive: true, force: true });
  }

  async function kill(): Promise<void> {
    if (running) {
      child.kill('SIGKILL');
      await daemonEnded();
    }
    await unmountFs(true);
  }

  let unmounted: Promise<void> | undefined;
  async function unmountOnce(): Promise<void> {
    try {
      await unmountCleanly();
    } catch (error) {
      // Still busy (a loop device or open file uses it): detach it lazily and stop the daemon, so nothing leaks.
      await unmountFs(true).catch(() => undefined);
      if (running) child.kill('SIGKILL');
      await daemonEnded();
      await removeWorkdir();
      throw error;
    }
    // A clean unmount makes libfuse return from its loop; the daemon exits by itself.
    await daemonEnded();
    await removeWorkdir();
  }

  function unmount(): Promise<void> {
    unmounted ??= unmountOnce().catch((error: unknown) => {
      unmounted = undefined;
      throw error;
    });
    return unmounted;
  }

  try {
    const deadline = Date.now() + MOUNT_DEADLINE_MS;
    for (;;) {
      const served = await stat(file).catch(() => undefined);
      if (served?.size === backingSize) break;
      if (!running) throw new Error(`faultfs exited before the mount came up: ${stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`faultfs mount did not come up at ${mountpoint}: ${stderr.trim()}`);
      await sleep(MOUNT_POLL_MS);
    }
    mounted = true;
  } catch (error) {
    if (running) child.kill('SIGKILL');
    await daemonEnded();
    // The mount may or may not have come up; a lazy unmount of a plain directory just fails.
    await run(fusermount, ['-u', '-z', mountpoint]).catch(() => undefined);
    await removeWorkdir();
    throw error;
  }

  return {
    file,
    mountpoint,
    controlFile,
    async setBadRanges(ranges) {
      checkRanges(ranges);
      badRanges = [...ranges];
      await writeControl();
    },
    async setDelay(ms) {
      checkDelay(ms);
      delayMs = ms;
      await writeControl();
    },
    async setHang(on) {
      hang = on;
      await writeControl();
    },
    async setRate(bytesPerSecond) {
      checkRate(bytesPerSecond);
      rateBps = bytesPerSecond;
      await writeControl();
    },
    async stats() {
      return parseStats(await readFile(statusFile, 'utf8'));
    },
    async readLog() {
      if (opts.logReads !== true) throw new Error('this faultfs was mounted without logReads');
      return parseReadLog(await readFile(readLogFile, 'utf8'));
    },
    kill,
    unmount,
  };
}
