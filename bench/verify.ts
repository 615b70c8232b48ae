import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/config/load.js';
import { verifyImage } from '../src/imaging/verify.js';
import { machineDescription, markdownTable, writeRandomFile, writeSection } from './report.js';

const run = promisify(execFile);
const SIZE_MIB = Number(process.env.BENCH_VERIFY_MIB ?? 1024);
const ROUNDS = Number(process.env.BENCH_VERIFY_ROUNDS ?? 5);
if (!Number.isSafeInteger(SIZE_MIB) || SIZE_MIB < 16) throw new Error(`BENCH_VERIFY_MIB must be a whole number >= 16, got ${process.env.BENCH_VERIFY_MIB}`);
if (!Number.isSafeInteger(ROUNDS) || ROUNDS < 1) throw new Error(`BENCH_VERIFY_ROUNDS must be a whole number >= 1, got ${process.env.BENCH_VERIFY_ROUNDS}`);
/** The goal: MD5 and SHA-256 together at least this fraction of md5sum's speed alone. */
const GOAL = 0.8;

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/**
 * Re-hashing an archived image, warm cache: disk2iso's verification (MD5 and SHA-256 in two
 * worker threads over shared buffers, buffered reads so the page cache serves them) beside
 * coreutils' md5sum and sha256sum on the same file. Rounds alternate the tools, so a drift of the
 * machine's speed hits each alike; the median of each is reported.
 */
export async function benchVerify(): Promise<void> {
  // On the data disk, not tmpfs: the page cache of a real file system is what a warm re-hash reads.
  await mkdir(join(packageRoot(), 'data'), { recursive: true });
  const dir = await mkdtemp(join(packageRoot(), 'data', 'bench-verify-'));
  try {
    const image = join(dir, 'image.iso');
    await writeRandomFile(image, SIZE_MIB * 2 ** 20);
    const [md5] = (await run('md5sum', [image])).stdout.split(' ');
    const [sha256] = (await run('sha256sum', [image])).stdout.split(' ');
    await writeFile(`${image}.md5`, `${md5}  image.iso\n`);
    await writeFile(`${image}.sha256`, `${sha256}  image.iso\n`);
    const times: Record<'md5sum' | 'sha256sum' | 'disk2iso', number[]> = { md5sum: [], sha256sum: [], disk2iso: [] };
    for (let round = 0; round < ROUNDS; round += 1) {
      times.md5sum.push(await timed(() => run('md5sum', [image])));
      times.sha256sum.push(await timed(() => run('sha256sum', [image])));
      times.disk2iso.push(
        await timed(async () => {
          const report = await verifyImage(image, { directIo: 'off' });
          if (!report.ok) throw new Error(`verification of the benchmark image failed: ${JSON.stringify(report.results)}`);
        }),
      );
    }
    const mibps = (seconds: number) => (SIZE_MIB / seconds).toFixed(0);
    const md5sum = median(times.md5sum);
    const ours = median(times.disk2iso);
    const ratio = md5sum / ours;
    const rows = [
      ['md5sum (MD5 only)', median(times.md5sum).toFixed(2), mibps(median(times.md5sum)), '1.00'],
      ['sha256sum (SHA-256 only)', median(times.sha256sum).toFixed(2), mibps(median(times.sha256sum)), (md5sum / median(times.sha256sum)).toFixed(2)],
      ['disk2iso verification (MD5 + SHA-256)', ours.toFixed(2), mibps(ours), ratio.toFixed(2)],
    ];
    const body = [
      '## Verification speed (`npm run bench:verify`)',
      '',
      `Machine: ${machineDescription()}. A ${SIZE_MIB} MiB file of random bytes on the data disk, read once before (warm page cache); ${ROUNDS} rounds, each running md5sum, sha256sum and disk2iso's verifyImage (with \`directIo: 'off'\`, so the cache serves it, against .md5 and .sha256 sidecars) one after another; medians. Speed relative to md5sum is md5sum's time divided by the tool's. Goal: disk2iso at least ${GOAL} x md5sum — ${ratio >= GOAL ? 'met' : '**not met**'}.`,
      '',
      markdownTable(['tool', 'seconds', 'MiB/s', 'speed vs md5sum'], rows),
    ].join('\n');
    console.log(body);
    await writeSection('verify', body);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
