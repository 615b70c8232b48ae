import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/config/load.js';
import { attachLoop } from '../test/tools/loop.js';
import { machineDescription, markdownTable, writeSection, writeRandomFile } from './report.js';

const run = promisify(execFile);
const SIZE_MIB = Number(process.env.BENCH_IMAGING_MIB ?? 1024);
const ROUNDS = 2;

interface Measurement {
  wallSeconds: number;
  cpuSeconds: number;
}

/** Runs a command under GNU time so a child's CPU seconds are measured the same way for every tool. */
async function timed(command: string, args: string[], cwd: string): Promise<Measurement & { stdout: string }> {
  const timesFile = join(cwd, `time-${process.pid}.txt`);
  const { stdout } = await run('/usr/bin/time', ['-f', '%e %U %S', '-o', timesFile, command, ...args], { cwd, maxBuffer: 16 * 2 ** 20 });
  const [wall, user, system] = (await readFile(timesFile, 'utf8')).trim().split(/\s+/).map(Number);
  await rm(timesFile);
  return { wallSeconds: wall ?? NaN, cpuSeconds: (user ?? NaN) + (system ?? NaN), stdout };
}

async function dropCaches(): Promise<void> {
  await run('sync');
  await writeFile('/proc/sys/vm/drop_caches', '3');
}


function sum(parts: Measurement[]): Measurement {
  return parts.reduce((total, part) => ({ wallSeconds: total.wallSeconds + part.wallSeconds, cpuSeconds: total.cpuSeconds + part.cpuSeconds }), { wallSeconds: 0, cpuSeconds: 0 });
}

export async function benchImaging(): Promise<void> {
  const work = join(packageRoot(), 'bench', 'work', `imaging-${process.pid}`);
  await mkdir(work, { recursive: true });
  const bytes = SIZE_MIB * 2 ** 20;
  const source = join(work, 'source.img');
  console.log(`imaging benchmark: ${SIZE_MIB} MiB random data on a read-only loop device (2048-byte sectors), ${ROUNDS} rounds, best kept`);
  await writeRandomFile(source, bytes);
  const loop = await attachLoop(source, { sectorSize: 2048, readOnly: true });
  const best = new Map<string, Measurement & { note?: string }>();
  const keep = (name: string, measurement: Measurement & { note?: string }): void => {
    const previous = best.get(name);
    if (!previous || measurement.wallSeconds < previous.wallSeconds) best.set(name, measurement);
  };
  try {
    for (let round = 1; round <= ROUNDS; round += 1) {
      const out = join(work, 'out');
      await rm(out, { recursive: true, force: true });
      await mkdir(out);

      await dropCaches();
      keep('dd bs=2M (copy only)', await timed('dd', [`if=${loop.path}`, `of=${join(out, 'dd.img')}`, 'bs=2M', 'status=none'], work));

      await dropCaches();
      keep('md5sum alone (hash only)', await timed('md5sum', [loop.path], work));

      await dropCaches();
      const ddrescue = await timed('ddrescue', ['-b', '2048', '-q', loop.path, join(out, 'up.img'), join(out, 'up.map')], work);
      const md5 = await timed('md5sum', [join(out, 'up.img')], work);
      const sha256 = await timed('sha256sum', [join(out, 'up.img')], work);
      keep('upstream: ddrescue -b 2048, then md5sum, then sha256sum', sum([ddrescue, md5, sha256]));

      await dropCaches();
      const engineRun = join(packageRoot(), 'dist', 'bench', 'engine-run.js');
      const ours = await timed(process.execPath, [engineRun, loop.path, String(bytes), join(out, 'ours.iso')], work);
      const report = JSON.parse(ours.stdout) as { loopDelayP99Ms: number; loopDelayMaxMs: number; buffered: boolean };
      keep('disk2iso engine (copy + md5 + sha256)', { ...ours, note: `event-loop delay p99 ${report.loopDelayP99Ms.toFixed(1)} ms (max ${report.loopDelayMaxMs.toFixed(1)} ms)${report.buffered ? ', buffered reads' : ', O_DIRECT reads'}` });
      console.log(`round ${round} done`);
    }
  } finally {
    await loop.detach();
    await rm(work, { recursive: true, force: true });
  }

  const gb = bytes / 1e9;
  const rows = [...best.entries()].map(([name, m]) => [name, (bytes / 1e6 / m.wallSeconds).toFixed(0), (m.cpuSeconds / gb).toFixed(2), m.wallSeconds.toFixed(2), m.note ?? '']);
  const ours = best.get('disk2iso engine (copy + md5 + sha256)');
  const md5Only = best.get('md5sum alone (hash only)');
  const upstream = best.get('upstream: ddrescue -b 2048, then md5sum, then sha256sum');
  const goals =
    ours && md5Only && upstream
      ? [
          `- engine throughput vs md5sum alone: ${(md5Only.wallSeconds / ours.wallSeconds).toFixed(2)}x (goal >= 0.8x)`,
          `- engine end-to-end vs upstream pipeline: ${(upstream.wallSeconds / ours.wallSeconds).toFixed(2)}x faster (goal >= 1.5x)`,
          `- ${ours.note ?? ''} (goal p99 < 20 ms)`,
        ].join('\n')
      : '';
  const table = markdownTable(['method', 'MB/s', 'CPU s per GB', 'wall s', 'note'], rows);
  const body = `## Imaging (\`npm run bench:imaging\`)\n\nMachine: ${machineDescription()}. Source: ${SIZE_MIB} MiB of random data on a read-only loop device with 2048-byte sectors; page cache dropped before each method; best of ${ROUNDS} rounds.\n\n${table}\n\n${goals}\n`;
  console.log(body);
  await writeSection('imaging', body);
}
