import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeUdfImage, makeXorrisoImage, writeSourceTree } from '../tools/image-fixtures.js';
import { fuzzImage } from '../tools/image-fuzz.js';
import { buildUdf250Image, udf250SampleFiles } from '../tools/udf250-image.js';

let workdir: string;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'image-fuzz-'));
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

/** Heap a walk of these small images may use at most, whatever the mutation; far above the few MiB one needs. */
const HEAP_BOUND = 512 * 1024 * 1024;

test('mutated ISO 9660 images (Rock Ridge, Joliet) give typed errors or listings, nothing else', async () => {
  const source = join(workdir, 'source');
  await writeSourceTree(source);
  const image = await makeXorrisoImage(source, join(workdir, 'fuzz.iso'), ['-R', '-J', '-joliet-long']);
  const report = await fuzzImage(image, join(workdir, 'fuzz-scratch.iso'), { seed: 14, iterations: 2000, metadataBytes: 200 * 1024 });
  assert.deepEqual(report.findings, []);
  assert.equal(report.iterations, 2000);
  assert.ok(report.typedErrors > 0 && report.clean > 0, `both outcomes occur: ${JSON.stringify({ ...report, findings: undefined })}`);
  assert.ok(report.peakHeapBytes < HEAP_BOUND, `heap ${report.peakHeapBytes}`);
});

test('mutated UDF images give typed errors or listings, nothing else', async () => {
  const image = await makeUdfImage(join(workdir, 'fuzz.udf'), [
    { path: 'a/b/c.txt', content: Buffer.from('c\n') },
    { path: 'random.bin', content: randomBytes(100_000) },
    { path: 'x.txt', content: Buffer.from('x') },
  ]);
  const report = await fuzzImage(image, join(workdir, 'fuzz-scratch.udf'), { seed: 14, iterations: 1500, metadataBytes: 1024 * 1024 });
  assert.deepEqual(report.findings, []);
  assert.ok(report.typedErrors > 0 && report.clean > 0, `both outcomes occur: ${JSON.stringify({ ...report, findings: undefined })}`);
  assert.ok(report.peakHeapBytes < HEAP_BOUND, `heap ${report.peakHeapBytes}`);
});

test('mutated UDF 2.50 images (metadata partition, mirror file) give typed errors or listings, nothing else', async () => {
  const image = await buildUdf250Image({ path: join(workdir, 'fuzz-250.udf'), label: 'FUZZ', files: udf250SampleFiles() });
  // Descriptors, both metadata file entries and both copies of the metadata partition.
  const report = await fuzzImage(image.path, join(workdir, 'fuzz-scratch-250.udf'), { seed: 14, iterations: 1500, metadataBytes: image.structureBytes });
  assert.deepEqual(report.findings, []);
  assert.ok(report.typedErrors > 0 && report.clean > 0, `both outcomes occur: ${JSON.stringify({ ...report, findings: undefined })}`);
  assert.ok(report.peakHeapBytes < HEAP_BOUND, `heap ${report.peakHeapBytes}`);
});
