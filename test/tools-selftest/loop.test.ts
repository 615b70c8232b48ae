import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { errnoCode } from '../../src/errors.js';
import { alignedBuffer, readDirect } from '../tools/direct-io.js';
import { type LoopSectorSize, attachLoop } from '../tools/loop.js';

const FILE_BYTES = 1024 * 1024;
let workdir: string;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'loop-selftest-'));
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

async function sysfs(name: string, attribute: string): Promise<string> {
  return (await readFile(`/sys/block/${name}/${attribute}`, 'utf8')).trim();
}

/** The backing file the kernel reports for a loop device, or undefined once it is detached. */
async function backingFileOf(name: string): Promise<string | undefined> {
  return sysfs(name, 'loop/backing_file').catch(() => undefined);
}

/** A read-only loop device may be opened for writing, but the kernel refuses the write itself. */
async function assertWriteRefused(path: string, sectorSize: number): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_DIRECT);
  try {
    await assert.rejects(handle.write(alignedBuffer(sectorSize), 0, sectorSize, 0), (error: unknown) => ['EPERM', 'EROFS'].includes(errnoCode(error) ?? ''));
  } finally {
    await handle.close();
  }
}

for (const sectorSize of [512, 2048, 4096] as const satisfies readonly LoopSectorSize[]) {
  test(`attachLoop with ${sectorSize}-byte sectors: read-only, exact data, idempotent detach`, async () => {
    const file = join(workdir, `sectors-${sectorSize}.img`);
    const content = randomBytes(FILE_BYTES);
    await writeFile(file, content);
    const loop = await attachLoop(file, { sectorSize });
    try {
      assert.match(loop.path, /^\/dev\/loop\d+$/);
      assert.equal(loop.path, `/dev/${loop.name}`);
      assert.equal(await backingFileOf(loop.name), file);
      assert.equal(await sysfs(loop.name, 'queue/logical_block_size'), String(sectorSize));
      assert.equal(await sysfs(loop.name, 'ro'), '1');
      assert.ok((await readDirect(loop.path, 0, FILE_BYTES)).equals(content));
      assert.ok((await readDirect(loop.path, 3 * sectorSize, sectorSize)).equals(content.subarray(3 * sectorSize, 4 * sectorSize)));
      await assertWriteRefused(loop.path, sectorSize);
    } finally {
      await loop.detach();
    }
    await loop.detach();
    assert.notEqual(await backingFileOf(loop.name), file);
  });
}

test('attachLoop with readOnly: false writes through to the file', async () => {
  const file = join(workdir, 'writable.img');
  await writeFile(file, Buffer.alloc(FILE_BYTES));
  const loop = await attachLoop(file, { readOnly: false });
  try {
    assert.equal(await sysfs(loop.name, 'ro'), '0');
    assert.equal(await sysfs(loop.name, 'queue/logical_block_size'), '2048');
    const block = alignedBuffer(2048);
    randomBytes(2048).copy(block);
    const handle = await open(loop.path, constants.O_WRONLY | constants.O_DIRECT);
    try {
      await handle.write(block, 0, 2048, 4096);
    } finally {
      await handle.close();
    }
    assert.ok((await readFile(file)).subarray(4096, 6144).equals(block));
  } finally {
    await loop.detach();
  }
});

test('attachLoop of a missing file rejects', async () => {
  await assert.rejects(attachLoop(join(workdir, 'missing.img')), /losetup/);
});
