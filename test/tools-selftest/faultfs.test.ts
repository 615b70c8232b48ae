import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode } from '../../src/errors.js';
import { run } from '../tools/exec.js';
import { buildFaultFs, mountFaultFs } from '../tools/faultfs.js';

// faultfs on its own, read through the FUSE file (no loop device): size, EOF handling, range
// arithmetic, runtime control and the lifecycle of the mount.

const BACKING_BYTES = 10_000; // deliberately not a multiple of any sector size
let workdir: string;
let backingFile: string;
let backing: Buffer;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'faultfs-selftest-'));
  backingFile = join(workdir, 'backing.bin');
  backing = randomBytes(BACKING_BYTES);
  await writeFile(backingFile, backing);
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

async function assertEio(read: Promise<unknown>): Promise<void> {
  await assert.rejects(read, (error: unknown) => errnoCode(error) === 'EIO');
}

test('buildFaultFs returns one executable binary, also when called concurrently', async () => {
  const [first, second] = await Promise.all([buildFaultFs(), buildFaultFs()]);
  assert.equal(first, second);
  assert.ok(first.endsWith('/.cache/faultfs/faultfs'));
  assert.ok(((await stat(first)).mode & 0o111) !== 0);
});

test('serves exactly one read-only file with the backing size and bytes; EOF reads are short or empty', async () => {
  const fs = await mountFaultFs({ backingFile });
  try {
    assert.deepEqual(await readdir(fs.mountpoint), ['disc.img']);
    const info = await stat(fs.file);
    assert.equal(info.size, BACKING_BYTES);
    assert.ok(info.isFile());
    assert.ok((await readFile(fs.file)).equals(backing));
    assert.ok((await readAt(fs.file, 9000, 4096)).equals(backing.subarray(9000)));
    assert.equal((await readAt(fs.file, BACKING_BYTES, 4096)).length, 0);
    assert.equal((await readAt(fs.file, 50_000, 4096)).length, 0);
    await assert.rejects(open(fs.file, 'r+'), (error: unknown) => ['EROFS', 'EACCES'].includes(errnoCode(error) ?? ''));
    await assert.rejects(stat(join(fs.mountpoint, 'other.img')), (error: unknown) => errnoCode(error) === 'ENOENT');
  } finally {
    await fs.unmount();
  }
});

test('bad ranges are end-exclusive, fail whole reads, and take effect at the next read', async () => {
  const fs = await mountFaultFs({ backingFile, badRanges: [[4096, 6144]] });
  try {
    assert.ok((await readAt(fs.file, 2048, 2048)).equals(backing.subarray(2048, 4096)), 'read ending at START is good');
    assert.ok((await readAt(fs.file, 6144, 2048)).equals(backing.subarray(6144, 8192)), 'read starting at END is good');
    await assertEio(readAt(fs.file, 6143, 2));
    await assertEio(readAt(fs.file, 4095, 2));
    await assertEio(readAt(fs.file, 0, 8192));

    // Many changes within one clock tick must each be seen: the control file's mtime must move every time.
    for (let round = 0; round < 10; round++) {
      await fs.setBadRanges([[0, 1]]);
      await assertEio(readAt(fs.file, 0, 512));
      await fs.setBadRanges([]);
      assert.ok((await readAt(fs.file, 0, 512)).equals(backing.subarray(0, 512)), `round ${round}`);
    }

    await fs.setBadRanges([[9999, 10_000]]);
    await assertEio(readAt(fs.file, 8192, 4096));
    assert.ok((await readAt(fs.file, 8192, 1807)).equals(backing.subarray(8192, 9999)));
    const stats = await fs.stats();
    assert.deepEqual(stats.badRanges, [[9999, 10_000]]);
    assert.equal(stats.failedReads, 14);
    assert.ok(stats.reads > stats.failedReads);

    await assert.rejects(fs.setBadRanges([[5, 5]]), /invalid bad range/);
    await assert.rejects(fs.setDelay(-1), /invalid delay/);
  } finally {
    await fs.unmount();
  }
});

test('a control file the daemon cannot parse fails every read until it is fixed', async () => {
  const fs = await mountFaultFs({ backingFile });
  try {
    assert.ok((await readAt(fs.file, 0, 100)).equals(backing.subarray(0, 100)));
    await writeFile(fs.controlFile, 'bad 10\n');
    await assertEio(readAt(fs.file, 0, 100));
    await writeFile(fs.controlFile, '# healed\n\ndelay_ms 1\n');
    assert.ok((await readAt(fs.file, 0, 100)).equals(backing.subarray(0, 100)));
    assert.equal((await fs.stats()).delayUs, 1000);
  } finally {
    await fs.unmount();
  }
});

test('a hang holds reads until it is lifted, then they complete with the right bytes', async () => {
  const fs = await mountFaultFs({ backingFile });
  try {
    await fs.setHang(true);
    let settled = false;
    const held = readAt(fs.file, 100, 200).finally(() => {
      settled = true;
    });
    await waitUntil(async () => (await fs.stats()).holding);
    assert.equal(settled, false, 'the read waits while the daemon holds it');
    const during = await fs.stats();
    assert.equal(during.hang, true);
    assert.equal(during.heldReads, 1);
    await fs.setHang(false);
    assert.ok((await held).equals(backing.subarray(100, 300)));
    const afterwards = await fs.stats();
    assert.equal(afterwards.holding, false);
    assert.equal(afterwards.heldReads, 1, 'reads after the hang are not held');
    assert.ok((await readAt(fs.file, 0, 16)).equals(backing.subarray(0, 16)));
  } finally {
    await fs.setHang(false);
    await fs.unmount();
  }
});

test('rate mode and the read log: every read is logged with its result, counted in read_bytes, and delayed by the rate', async () => {
  const fs = await mountFaultFs({ backingFile, badRanges: [[4096, 6144]], rateBps: 1_000_000, logReads: true });
  try {
    assert.ok((await readAt(fs.file, 0, 4096)).equals(backing.subarray(0, 4096)));
    await assertEio(readAt(fs.file, 4096, 2048));
    assert.ok((await readAt(fs.file, 8192, 4096)).equals(backing.subarray(8192)));
    const stats = await fs.stats();
    assert.equal(stats.rateBps, 1_000_000);
    assert.equal(stats.reads, 3);
    assert.equal(stats.delayedReads, 3, 'the rate alone makes every read wait');
    assert.equal(stats.readBytes, 4096 + 2048 + 4096, 'bytes asked for, the failed read and the one past the end included');
    assert.deepEqual(await fs.readLog(), [
      { offset: 0, length: 4096, result: 4096 },
      { offset: 4096, length: 2048, result: -5 },
      { offset: 8192, length: 4096, result: BACKING_BYTES - 8192 },
    ]);

    await fs.setRate(0);
    assert.ok((await readAt(fs.file, 0, 512)).equals(backing.subarray(0, 512)));
    const unthrottled = await fs.stats();
    assert.equal(unthrottled.rateBps, 0);
    assert.equal(unthrottled.delayedReads, 3);
    await assert.rejects(fs.setRate(1.5), /invalid rate/);
    await assert.rejects(fs.setRate(-1), /invalid rate/);
  } finally {
    await fs.unmount();
  }
});

test('readLog refuses a mount made without logReads', async () => {
  const fs = await mountFaultFs({ backingFile });
  try {
    await assert.rejects(fs.readLog(), /without logReads/);
  } finally {
    await fs.unmount();
  }
});

test('unmount is idempotent, removes the mountpoint, and concurrent mounts do not collide', async () => {
  const [a, b] = await Promise.all([mountFaultFs({ backingFile }), mountFaultFs({ backingFile, badRanges: [[0, 1]] })]);
  try {
    assert.notEqual(a.mountpoint, b.mountpoint);
    assert.ok((await readAt(a.file, 0, 16)).equals(backing.subarray(0, 16)));
    await assertEio(readAt(b.file, 0, 16));
  } finally {
    await a.unmount();
    await b.unmount();
  }
  await a.unmount();
  await b.kill();
  await b.unmount();
  for (const fs of [a, b]) {
    await assert.rejects(access(fs.mountpoint), (error: unknown) => errnoCode(error) === 'ENOENT');
  }
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  assert.ok(!mounts.includes(a.mountpoint) && !mounts.includes(b.mountpoint));
});

test('unmount while a file is still open does not leak the daemon or the mount', async () => {
  const fs = await mountFaultFs({ backingFile });
  const handle = await open(fs.file, 'r');
  try {
    await assert.rejects(fs.unmount(), /busy/i);
  } finally {
    await handle.close();
  }
  await fs.unmount();
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  assert.ok(!mounts.includes(fs.mountpoint));
  await assert.rejects(access(fs.mountpoint), (error: unknown) => errnoCode(error) === 'ENOENT');
});

test('a backing path with commas and backslashes survives the mount options', async () => {
  const oddFile = join(workdir, 'odd,name\\with,commas.bin');
  await writeFile(oddFile, backing.subarray(0, 4096));
  const fs = await mountFaultFs({ backingFile: oddFile });
  try {
    assert.ok((await readFile(fs.file)).equals(backing.subarray(0, 4096)));
  } finally {
    await fs.unmount();
  }
});

test('a test process that forgets unmount() still exits and leaves no mount, daemon or scratch behind', async () => {
  const script = join(workdir, 'forgetful.mjs');
  const moduleUrl = new URL('../tools/faultfs.js', import.meta.url).href;
  await writeFile(
    script,
    `import { mountFaultFs } from ${JSON.stringify(moduleUrl)};\n` +
      `const fs = await mountFaultFs({ backingFile: ${JSON.stringify(backingFile)} });\n` +
      `console.log(JSON.stringify({ mountpoint: fs.mountpoint }));\n`,
  );
  const { stdout } = await run(process.execPath, [script]);
  const { mountpoint } = JSON.parse(stdout) as { mountpoint: string };
  assert.ok(!(await readFile('/proc/self/mountinfo', 'utf8')).includes(mountpoint));
  await assert.rejects(access(dirname(mountpoint)), (error: unknown) => errnoCode(error) === 'ENOENT');
  assert.deepEqual(await processesMentioning(mountpoint), []);
});

/** Polls until `check` holds; the bound only keeps a broken daemon from hanging the run. */
async function waitUntil(check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt += 1) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error('gave up waiting');
}

/** Pids whose command line contains `text` (a leaked daemon names its mountpoint there). */
async function processesMentioning(text: string): Promise<string[]> {
  const pids: string[] = [];
  for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) pids.push(pid);
  }
  return pids;
}
