import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createHashers, hashFile } from '../../src/imaging/hasher.js';
import { createSlotPool } from '../../src/imaging/slots.js';

let workdir: string;
before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'disk2iso-hasher-'));
});
after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

function expected(data: Buffer): Record<string, string> {
  return {
    md5: createHash('md5').update(data).digest('hex'),
    sha1: createHash('sha1').update(data).digest('hex'),
    sha256: createHash('sha256').update(data).digest('hex'),
  };
}

test('slots are page-aligned views of one shared memory and come back when released', async () => {
  const pool = createSlotPool(100_000, 3);
  assert.ok(pool.buffer instanceof SharedArrayBuffer);
  const slots = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
  assert.deepEqual(
    slots.map((slot) => slot.offset % 65536),
    [0, 0, 0],
  );
  assert.equal(new Set(slots.map((slot) => slot.offset)).size, 3);
  assert.ok(slots.every((slot) => slot.view.buffer === pool.buffer && slot.view.length === 100_000));

  let fourth = false;
  const waiting = pool.acquire().then((slot) => {
    fourth = true;
    return slot;
  });
  const [first] = slots;
  assert.ok(first !== undefined);
  first.retain();
  first.release();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(fourth, false, 'still referenced once');
  first.release();
  const reused = await waiting;
  assert.equal(reused.index, first.index);
  const [, second] = slots;
  assert.ok(second !== undefined);
  second.release();
  assert.throws(() => second.release(), /released while free/);
  assert.throws(() => second.retain(), /retained while free/);
});

test('workers hash shared-memory chunks in order, one algorithm each, and start over after a digest', async () => {
  const pool = createSlotPool(64 * 1024, 4);
  const hashers = createHashers(['md5', 'sha1', 'sha256'], pool);
  try {
    const data = randomBytes(1_000_003);
    for (let round = 0; round < 2; round++) {
      for (let offset = 0; offset < data.length; ) {
        const slot = await pool.acquire();
        // Uneven chunk sizes and a start inside the slot, as the sector runs use them.
        const start = 512;
        const length = Math.min(data.length - offset, 40_000 + ((offset / 1000) % 7) * 1000);
        slot.view.set(data.subarray(offset, offset + length), start);
        hashers.update(slot, start, length);
        slot.release();
        offset += length;
      }
      assert.equal(hashers.bytes, data.length);
      assert.deepEqual(await hashers.digest(), expected(data));
      assert.equal(hashers.bytes, 0);
    }
    await pool.idle();
  } finally {
    await hashers.close();
  }
});

test('hashFile feeds a byte range of a file through the workers, buffered and direct', async () => {
  const data = randomBytes(3 * 1024 * 1024 + 777);
  const path = join(workdir, 'data.bin');
  await writeFile(path, data);
  const pool = createSlotPool(1024 * 1024, 4);
  const hashers = createHashers(['md5', 'sha256'], pool);
  try {
    const positions: number[] = [];
    assert.equal(await hashFile({ path, start: 4096, end: data.length, directIo: 'off', hashers, slots: pool, onPosition: (p) => positions.push(p) }), true);
    const { md5, sha256 } = expected(data.subarray(4096));
    assert.deepEqual(await hashers.digest(), { md5, sha256 });
    assert.equal(positions[positions.length - 1], data.length);

    assert.equal(await hashFile({ path, start: 0, end: data.length, directIo: 'auto', hashers, slots: pool }), true);
    const whole = expected(data);
    assert.deepEqual(await hashers.digest(), { md5: whole.md5, sha256: whole.sha256 });

    const controller = new AbortController();
    controller.abort('pause');
    assert.equal(await hashFile({ path, start: 0, end: data.length, directIo: 'off', hashers, slots: pool, signal: controller.signal }), false);
    await assert.rejects(hashFile({ path, start: 0, end: data.length + 10, directIo: 'off', hashers, slots: pool }), { code: 'image_unreadable' });
  } finally {
    await hashers.close();
  }
});
