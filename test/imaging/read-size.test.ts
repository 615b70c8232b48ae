import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createReadSizer, TARGET_READ_SECONDS, type ReadSizer } from '../../src/imaging/read-size.js';

const CLUSTER = 64 * 1024;
const MAX = 4 * 1024 * 1024;

/** Feeds the sizer reads of the size it asks for, each taking `seconds(size)`; returns the sizes asked for. */
function sizesFor(sizer: ReadSizer, seconds: (bytes: number) => number, reads: number): number[] {
  const sizes: number[] = [];
  for (let index = 0; index < reads; index++) {
    sizes.push(sizer.bytes);
    sizer.record(sizer.bytes, seconds(sizer.bytes));
  }
  return sizes;
}

const atRate = (bytesPerSecond: number) => (bytes: number) => bytes / bytesPerSecond;

test('starts at one cluster and doubles per read up to the largest read, on a fast drive', () => {
  const sizer = createReadSizer(CLUSTER, MAX);
  assert.deepEqual(
    sizesFor(sizer, atRate(500e6), 9).map((bytes) => bytes / CLUSTER),
    [1, 2, 4, 8, 16, 32, 64, 64, 64],
  );
});

test('on a slow drive a read settles between the target time and twice that, in whole clusters', () => {
  for (const rate of [1e6, 2e6, 8e6, 30e6]) {
    const sizer = createReadSizer(CLUSTER, MAX);
    const sizes = sizesFor(sizer, atRate(rate), 20);
    const seconds = sizer.bytes / rate;
    assert.equal(sizer.bytes % CLUSTER, 0);
    assert.ok(seconds >= TARGET_READ_SECONDS && seconds <= 2 * TARGET_READ_SECONDS, `${rate} B/s: reads of ${sizer.bytes} bytes take ${seconds} s`);
    assert.ok(sizes.every((bytes) => bytes / rate <= 2 * TARGET_READ_SECONDS), `${rate} B/s: no read took longer than twice the target on the way: ${sizes.join(' ')}`);
  }
});

test('a drive whose every request of up to 512 KiB costs a fixed time below the target gets reads of several requests', () => {
  const perRequest = TARGET_READ_SECONDS / 2;
  const sizer = createReadSizer(CLUSTER, MAX);
  sizesFor(sizer, (bytes) => perRequest * Math.ceil(bytes / (512 * 1024)), 20);
  assert.ok(sizer.bytes > 512 * 1024, `${sizer.bytes} bytes`);
  assert.ok(perRequest * Math.ceil(sizer.bytes / (512 * 1024)) <= 2 * TARGET_READ_SECONDS);
});

test('shrinks at once when the drive slows down, never below one cluster', () => {
  const sizer = createReadSizer(CLUSTER, MAX);
  sizesFor(sizer, atRate(500e6), 10);
  assert.equal(sizer.bytes, MAX);
  sizer.record(MAX, MAX / 1e6);
  assert.equal(sizer.bytes, Math.floor((1e6 * TARGET_READ_SECONDS) / CLUSTER) * CLUSTER, 'one slow read is enough');
  sizesFor(sizer, atRate(10e3), 2);
  assert.equal(sizer.bytes, CLUSTER);
});

test('reads issued before a change do not change it again', () => {
  const sizer = createReadSizer(CLUSTER, MAX);
  sizesFor(sizer, atRate(500e6), 7);
  assert.equal(sizer.bytes, MAX);
  // Two more small reads that were in flight while the size grew report back: the size stays.
  sizer.record(CLUSTER, CLUSTER / 500e6);
  sizer.record(2 * CLUSTER, (2 * CLUSTER) / 500e6);
  assert.equal(sizer.bytes, MAX);
});

test('a cluster that does not divide the largest read: sizes stay whole clusters below it', () => {
  const cluster = 7 * 2048;
  const sizer = createReadSizer(cluster, MAX);
  const sizes = sizesFor(sizer, atRate(500e6), 12);
  assert.ok(sizes.every((bytes) => bytes % cluster === 0 && bytes <= MAX));
  assert.equal(sizer.bytes, Math.floor(MAX / cluster) * cluster);
});
