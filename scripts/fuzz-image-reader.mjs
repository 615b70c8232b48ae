#!/usr/bin/env node
// The long fuzz run of the image reader (the test suite runs a short one with a fixed seed):
//   npx tsc -p . && node scripts/fuzz-image-reader.mjs [--iterations N] [--seed S] [--image FILE]
// Without --image it builds a Rock Ridge/Joliet image of a test tree with xorriso. Exits 1 and
// prints each finding (an error that is not one of the reader's typed errors) when there is one.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url);
const { fuzzImage } = await import(new URL('dist/test/tools/image-fuzz.js', root).href);
const { makeXorrisoImage, writeSourceTree } = await import(new URL('dist/test/tools/image-fixtures.js', root).href);

const { values } = parseArgs({
  options: { iterations: { type: 'string', default: '100000' }, seed: { type: 'string', default: String(Date.now() % 1_000_000) }, image: { type: 'string' } },
});
const iterations = Number(values.iterations);
const seed = Number(values.seed);
if (!Number.isSafeInteger(iterations) || iterations < 1 || !Number.isSafeInteger(seed)) {
  process.stderr.write('--iterations and --seed take whole numbers\n');
  process.exit(2);
}
const work = await mkdtemp(join(tmpdir(), 'fuzz-image-reader-'));
try {
  let image = values.image;
  if (image === undefined) {
    await writeSourceTree(join(work, 'source'));
    image = await makeXorrisoImage(join(work, 'source'), join(work, 'fuzz.iso'), ['-R', '-J', '-joliet-long']);
  }
  process.stdout.write(`fuzzing ${image}: ${iterations} iterations, seed ${seed}\n`);
  const report = await fuzzImage(image, join(work, 'scratch.img'), { seed, iterations, metadataBytes: 1024 * 1024 });
  process.stdout.write(
    `${report.clean} clean, ${report.typedErrors} typed errors, ${report.findings.length} findings, peak heap ${(report.peakHeapBytes / 2 ** 20).toFixed(0)} MiB\n`,
  );
  for (const finding of report.findings) process.stdout.write(`iteration ${finding.iteration}:\n${finding.error}\n`);
  process.exitCode = report.findings.length === 0 ? 0 : 1;
} finally {
  await rm(work, { recursive: true, force: true });
}
