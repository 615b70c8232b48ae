import { readFileSync, readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runImaging } from '../src/imaging/engine.js';

/** Child process for the imaging and rescue benchmarks: one engine run, timed from outside, loop delay and thread CPU from inside. */
const [source, size, output, readAttempts = '1'] = process.argv.slice(2);
if (!source || !size || !output || !/^\d+$/.test(readAttempts)) {
  console.error('usage: engine-run SOURCE SIZE_BYTES OUTPUT.iso [READ_ATTEMPTS]');
  process.exit(2);
}

/** The kernel's clock ticks per second for /proc/PID/task/TID/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;
/** CPU seconds of every thread of this process seen so far; a thread that ended keeps its last reading. */
const threadSeconds = new Map<number, number>();

function sampleThreads(): void {
  for (const name of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${name}/stat`, 'utf8');
      // Fields after the command name, which may itself hold spaces: utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      threadSeconds.set(Number(name), (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND);
    } catch {
      // The thread ended between listing and reading; its previous reading stays.
    }
  }
}

/** The histogram's timer interval; every value it records includes it (an idle loop reads this much). */
const LOOP_SAMPLE_MS = 5;
const delay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
delay.enable();
// Worker threads end with the run, so their CPU time is read while they live.
const sampler = setInterval(sampleThreads, 100);
let buffered = false;
// The service calls the engine inside its running process; Node's own start is timed from outside.
const cpuBefore = process.cpuUsage();
const started = performance.now();
const result = await runImaging({
  source: { path: source, sizeBytes: Number(size), sectorSize: 2048 },
  outputPath: output,
  options: {
    readAttempts: Number(readAttempts),
    checksums: ['md5', 'sha256'],
    verify: false,
    clusterSectors: 32,
    directIo: 'auto',
    mapSaveIntervalMs: 5000,
    stopThresholdPercent: 99,
    keepPartialOnCancel: false,
  },
  metadata: { benchmark: true },
  onProgress: (progress) => {
    buffered = progress.buffered;
  },
});
const engineSeconds = (performance.now() - started) / 1000;
const engineCpu = process.cpuUsage(cpuBefore);
clearInterval(sampler);
sampleThreads();
delay.disable();
if (result.outcome !== 'completed') throw new Error(`engine run ended ${result.outcome}`);
const mainThreadSeconds = threadSeconds.get(process.pid) ?? 0;
threadSeconds.delete(process.pid);
// With md5 and sha256 the two busiest other threads are the two hash workers (md5 the busier one).
const [md5WorkerSeconds = 0, sha256WorkerSeconds = 0] = [...threadSeconds.values()].sort((a, b) => b - a);
process.stdout.write(
  JSON.stringify({
    loopSampleMs: LOOP_SAMPLE_MS,
    loopHistogramP99Ms: delay.percentile(99) / 1e6,
    loopHistogramMaxMs: delay.max / 1e6,
    buffered,
    copySeconds: result.timings.copySeconds,
    reads: result.reads,
    engineSeconds,
    engineCpuSeconds: (engineCpu.user + engineCpu.system) / 1e6,
    mainThreadSeconds,
    md5WorkerSeconds,
    sha256WorkerSeconds,
  }),
);
