import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runImaging } from '../src/imaging/engine.js';

/** Child process for the imaging benchmark: one engine run, timed from outside, loop delay from inside. */
const [source, size, output] = process.argv.slice(2);
if (!source || !size || !output) {
  console.error('usage: engine-run SOURCE SIZE_BYTES OUTPUT.iso');
  process.exit(2);
}
const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();
let buffered = false;
const result = await runImaging({
  source: { path: source, sizeBytes: Number(size), sectorSize: 2048 },
  outputPath: output,
  options: {
    readAttempts: 1,
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
delay.disable();
if (result.outcome !== 'completed') throw new Error(`engine run ended ${result.outcome}`);
process.stdout.write(JSON.stringify({ loopDelayP99Ms: delay.percentile(99) / 1e6, loopDelayMaxMs: delay.max / 1e6, buffered }));
