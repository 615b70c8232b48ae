import { execFile } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/config/load.js';
import { parseMapfile } from '../src/imaging/mapfile.js';
import { type ByteRange, type FaultFs, type FaultFsStats, mountFaultFs } from '../test/tools/faultfs.js';
import { sha256File } from '../test/tools/iso.js';
import { attachLoop } from '../test/tools/loop.js';
import { machineDescription, markdownTable, productNodeFlags, writeRandomFile, writeSection } from './report.js';

const run = promisify(execFile);
const SECTOR = 2048;
const SIZE_MIB = Number(process.env.BENCH_RESCUE_MIB ?? 128);
const ROUNDS = Number(process.env.BENCH_RESCUE_ROUNDS ?? 3);
if (!Number.isSafeInteger(SIZE_MIB) || SIZE_MIB < 16) throw new Error(`BENCH_RESCUE_MIB must be a whole number >= 16, got ${process.env.BENCH_RESCUE_MIB}`);
if (!Number.isSafeInteger(ROUNDS) || ROUNDS < 1) throw new Error(`BENCH_RESCUE_ROUNDS must be a whole number >= 1, got ${process.env.BENCH_RESCUE_ROUNDS}`);
/** The drive's speed: a DVD drive reading at about 6x. */
const RATE_BPS = 8_000_000;
const READ_ATTEMPTS = 3;

/** Three scratches: one sector, 64 sectors (128 KiB) and 120 sectors, at 10, 45 and 80 % of the disc. */
function badAreas(sectors: number): ByteRange[] {
  const area = (fraction: number, count: number): ByteRange => {
    const first = Math.floor(sectors * fraction);
    return [first * SECTOR, (first + count) * SECTOR];
  };
  return [area(0.1, 1), area(0.45, 64), area(0.8, 120)];
}

interface ToolRun {
  wallSeconds: number;
  /** Read requests and bytes as the drive (the FUSE file system under the loop device) saw them. */
  driveReads: number;
  driveBytes: number;
  /** read() calls the program itself made on the device. */
  readCalls: number;
  /** The bad areas of the final map. */
  badMap: string;
  /** SHA-256 of the image it wrote. */
  imageSha256: string;
  note: string;
}

/** What bench/engine-run.js prints (the fields this benchmark uses). */
interface EngineReport {
  engineSeconds: number;
  copySeconds: number;
  reads: { calls: number; bytes: number; failed: number; probes: number };
}

function badMapOf(text: string): string {
  const { map } = parseMapfile(text);
  const blocks = map.blocks();
  const unfinished = blocks.filter((block) => block.status !== '+' && block.status !== '-');
  if (unfinished.length > 0) throw new Error(`the map is not finished: ${JSON.stringify(unfinished)}`);
  return blocks
    .filter((block) => block.status === '-')
    .map((block) => `${block.pos / SECTOR}+${block.size / SECTOR}`)
    .join(' ');
}

function driveDelta(before: FaultFsStats, after: FaultFsStats): { driveReads: number; driveBytes: number } {
  return { driveReads: after.reads - before.reads, driveBytes: after.readBytes - before.readBytes };
}

async function runDdrescue(faultFs: FaultFs, device: string, out: string): Promise<ToolRun> {
  const readLog = join(out, 'ddrescue-reads.log');
  const mapPath = join(out, 'ddrescue.map');
  const before = await faultFs.stats();
  const started = performance.now();
  await run('ddrescue', ['-q', '-d', '-b', String(SECTOR), `-r${READ_ATTEMPTS}`, `--log-reads=${readLog}`, device, join(out, 'ddrescue.img'), mapPath]);
  const wallSeconds = (performance.now() - started) / 1000;
  const after = await faultFs.stats();
  // One line per read, starting with its position in hex; the rest are comments and pass headers.
  const readCalls = (await readFile(readLog, 'utf8')).split('\n').filter((line) => line.startsWith('0x')).length;
  return {
    wallSeconds,
    ...driveDelta(before, after),
    readCalls,
    badMap: badMapOf(await readFile(mapPath, 'utf8')),
    imageSha256: await sha256File(join(out, 'ddrescue.img')),
    note: '',
  };
}

async function runEngine(faultFs: FaultFs, device: string, sizeBytes: number, out: string, nodeFlags: string[]): Promise<ToolRun> {
  const outputPath = join(out, 'disk2iso.iso');
  const engineRun = join(packageRoot(), 'dist', 'bench', 'engine-run.js');
  const before = await faultFs.stats();
  const started = performance.now();
  const { stdout } = await run(process.execPath, [...nodeFlags, engineRun, device, String(sizeBytes), outputPath, String(READ_ATTEMPTS)], {
    maxBuffer: 16 * 2 ** 20,
  });
  const wallSeconds = (performance.now() - started) / 1000;
  const after = await faultFs.stats();
  const report = JSON.parse(stdout) as EngineReport;
  return {
    wallSeconds,
    ...driveDelta(before, after),
    readCalls: report.reads.calls,
    badMap: badMapOf(await readFile(`${outputPath}.map`, 'utf8')),
    imageSha256: await sha256File(outputPath),
    note: `rescue passes ${report.copySeconds.toFixed(1)} s, runImaging ${report.engineSeconds.toFixed(1)} s (with md5 + sha256); engine counted ${report.reads.bytes} bytes in ${report.reads.calls} reads, ${report.reads.failed} failed, ${report.reads.probes} probe reads of a known-good sector`,
  };
}

const DDRESCUE = `GNU ddrescue -d -b ${SECTOR} -r${READ_ATTEMPTS}`;
const ENGINE = `disk2iso engine, read_attempts ${READ_ATTEMPTS} (its own process, Node start to exit)`;

export async function benchRescue(): Promise<void> {
  const work = join(packageRoot(), 'bench', 'work', `rescue-${process.pid}`);
  await mkdir(work, { recursive: true });
  const sizeBytes = SIZE_MIB * 2 ** 20;
  const areas = badAreas(sizeBytes / SECTOR);
  const source = join(work, 'source.img');
  console.log(`rescue benchmark: ${SIZE_MIB} MiB behind faultfs at ${RATE_BPS / 1e6} MB/s with ${areas.length} bad areas, ${ROUNDS} rounds`);
  const nodeFlags = await productNodeFlags();
  const loadBefore = loadavg()[0] ?? 0;
  await writeRandomFile(source, sizeBytes);
  const faultFs = await mountFaultFs({ backingFile: source, badRanges: areas, rateBps: RATE_BPS });
  const results = new Map<string, ToolRun[]>([
    [DDRESCUE, []],
    [ENGINE, []],
  ]);
  try {
    const loop = await attachLoop(faultFs.file, { sectorSize: SECTOR, readOnly: true });
    try {
      for (let round = 1; round <= ROUNDS; round += 1) {
        const out = join(work, 'out');
        await rm(out, { recursive: true, force: true });
        await mkdir(out);
        results.get(DDRESCUE)?.push(await runDdrescue(faultFs, loop.path, out));
        results.get(ENGINE)?.push(await runEngine(faultFs, loop.path, sizeBytes, out, nodeFlags));
        console.log(`round ${round} done`);
      }
    } finally {
      await loop.detach();
    }
  } finally {
    await faultFs.unmount();
    await rm(work, { recursive: true, force: true });
  }

  const loadAfter = loadavg()[0] ?? 0;
  const best = (runs: ToolRun[]): ToolRun => runs.reduce((fastest, current) => (current.wallSeconds < fastest.wallSeconds ? current : fastest));
  const ddrescueRuns = results.get(DDRESCUE) ?? [];
  const engineRuns = results.get(ENGINE) ?? [];
  const ddrescue = best(ddrescueRuns);
  const engine = best(engineRuns);
  const rows = [...results.entries()].map(([name, runs]) => {
    const fastest = best(runs);
    return [
      name,
      fastest.wallSeconds.toFixed(1),
      runs.map((current) => current.wallSeconds.toFixed(1)).join(', '),
      (fastest.driveBytes / 2 ** 20).toFixed(1),
      String(fastest.driveReads),
      String(fastest.readCalls),
      fastest.note,
    ];
  });
  const sameMaps = [...ddrescueRuns, ...engineRuns].every((current) => current.badMap === ddrescue.badMap);
  const sameImages = [...ddrescueRuns, ...engineRuns].every((current) => current.imageSha256 === ddrescue.imageSha256);
  const expectedMap = areas.map(([start, end]) => `${start / SECTOR}+${(end - start) / SECTOR}`).join(' ');
  const verdict = (met: boolean): string => (met ? 'met' : 'NOT met');
  const table = markdownTable(
    ['method', 'wall s (best)', 'wall s, every round', 'MiB read from the drive', 'drive reads', 'read calls of the program', 'note'],
    rows,
  );
  const goals = [
    `- final bad map (first sector + sectors) of every run: ${ddrescue.badMap}; the injected areas are ${expectedMap}; identical in all runs of both: ${sameMaps ? 'yes' : 'NO'} (goal: identical): ${verdict(sameMaps && ddrescue.badMap === expectedMap)}`,
    `- images (bad sectors zero-filled by both) byte-identical in all runs of both: ${sameImages ? 'yes' : 'NO'}`,
    `- time, best round of each: disk2iso ${engine.wallSeconds.toFixed(1)} s, ddrescue ${ddrescue.wallSeconds.toFixed(1)} s, ${(engine.wallSeconds / ddrescue.wallSeconds).toFixed(2)}x (goal <= 1x): ${verdict(engine.wallSeconds <= ddrescue.wallSeconds)}`,
    `- bytes read from the drive: ${(engine.driveBytes / ddrescue.driveBytes).toFixed(3)}x ddrescue's; drive reads ${(engine.driveReads / ddrescue.driveReads).toFixed(2)}x; read calls ${(engine.readCalls / ddrescue.readCalls).toFixed(2)}x`,
  ].join('\n');
  const body = `## Rescue of a faulty disc (\`npm run bench:rescue\`)\n\nMachine: ${machineDescription()}. Source: ${SIZE_MIB} MiB of random data served by faultfs (test/tools/faultfs.c) at ${RATE_BPS / 1e6} MB/s (each read takes its length / rate, failed ones too), with bad sectors that fail with EIO: ${expectedMap} (first sector + count), under a read-only loop device with 2048-byte sectors. Both tools read the loop device with O_DIRECT and ${READ_ATTEMPTS} retry passes; best of ${ROUNDS} rounds, each running both once; 1-minute load average ${loadBefore.toFixed(1)} at the start, ${loadAfter.toFixed(1)} at the end (the drive's speed is a sleep in faultfs, but the loop driver, faultfs and the programs share the CPU with whatever else runs). "Drive reads" and "MiB read from the drive" are faultfs's own counters, so both tools are measured the same way; the loop driver splits large reads into several. "Read calls of the program" are ddrescue's \`--log-reads\` lines and the engine's own counter. The engine also computes MD5 and SHA-256 while it reads, which ddrescue does not; it runs with the Node flags \`bin/disk2iso\` starts with (\`${nodeFlags.join(' ')}\`).\n\n${table}\n\n${goals}\n`;
  console.log(body);
  await writeSection('rescue', body);
}
