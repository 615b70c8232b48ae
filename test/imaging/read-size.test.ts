import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ReadSizer, TARGET_READ_SECONDS, createReadSizer } from '../../src/imaging/read-size.js';

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
    assert.ok(
      sizes.every((bytes) => bytes / rate <= 2 * TARGET_READ_SECONDS),
      `${rate} B/s: no read took longer than twice the target on the way: ${sizes.join(' ')}`,
    );
  }
});

test('a drive whose every request of up to 512 KiB costs a fixed time gets reads of several of them, above the target time or below', () => {
  const requestBytes = 512 * 1024;
  for (const perRequest of [0.5, 1, 1.5, 3, 5].map((factor) => factor * TARGET_READ_SECONDS)) {
    const seconds = (bytes: number): number => perRequest * Math.ceil(bytes / requestBytes);
    const sizer = createReadSizer(CLUSTER, MAX);
    sizesFor(sizer, seconds, 20);
    const settled = sizesFor(sizer, seconds, 40);
    const throughput = settled.reduce((sum, bytes) => sum + bytes, 0) / settled.reduce((sum, bytes) => sum + seconds(bytes), 0);
    assert.ok(throughput >= 0.8 * (requestBytes / perRequest), `${perRequest} s per request: ${throughput} B/s with reads of ${settled.join(' ')}`);
    assert.ok(
      settled.every((bytes) => seconds(bytes) <= Math.max(2 * TARGET_READ_SECONDS, 2 * perRequest)),
      `${perRequest} s per request: reads of ${settled.join(' ')}`,
    );
  }
});

test('a drive too slow for one cluster within the target: one read of two clusters shows the time is its speed, then one cluster', () => {
  const sizer = createReadSizer(CLUSTER, MAX);
  assert.deepEqual(
    sizesFor(sizer, atRate(150e3), 6).map((bytes) => bytes / CLUSTER),
    [1, 2, 1, 1, 1, 1],
  );
});

test('shrinks within two reads when the drive slows down, never below one cluster', () => {
  const sizer = createReadSizer(CLUSTER, MAX);
  sizesFor(sizer, atRate(500e6), 10);
  assert.equal(sizer.bytes, MAX);
  // Two slow reads are enough (one could be a measuring error): the next reads take at most twice the target at the new speed.
  sizer.record(MAX, MAX / 1e6);
  sizer.record(MAX, MAX / 1e6);
  assert.ok(sizer.bytes / 1e6 <= 2 * TARGET_READ_SECONDS, `${sizer.bytes} bytes after two reads at 1 MB/s`);
  sizesFor(sizer, atRate(10e3), 2);
  assert.equal(sizer.bytes, CLUSTER);
});

test('two reads taken in the same turn of the event loop, one looking slow and one fast, change nothing', () => {
  const sizer = createReadSizer(CLUSTER, MAX);
  sizesFor(sizer, atRate(2e6), 20);
  const settled = sizer.bytes;
  const seconds = settled / 2e6;
  sizer.record(settled, 2 * seconds);
  sizer.record(settled, 0);
  sizer.record(settled, seconds);
  assert.ok(sizer.bytes >= settled / 2, `${sizer.bytes} bytes after a pair measured ${2 * seconds} s and 0 s`);
  sizesFor(sizer, atRate(2e6), 4);
  assert.equal(sizer.bytes, settled);
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
