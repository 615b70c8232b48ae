import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

/**
 * The reference for the event-loop delays of `npm run bench:scale`: a Node process that does
 * nothing but measure its own loop, as the services' metrics do (monitorEventLoopDelay, 10 ms
 * resolution). Its delay is what the machine's scheduler alone adds while the cluster runs: a
 * process that wants no CPU still waits for a core when other processes keep both busy.
 * Reads commands from stdin: `reset` starts a new window, `report` prints its p99 and max in ms.
 */
const histogram = monitorEventLoopDelay({ resolution: 10 });
histogram.enable();
// Keeps the loop running (and so measured) between commands.
const keepAlive = setInterval(() => undefined, 1000);
const lines = createInterface({ input: process.stdin });
lines.on('line', (command) => {
  if (command === 'reset') histogram.reset();
  if (command === 'report') process.stdout.write(`${JSON.stringify({ p99Ms: histogram.percentile(99) / 1e6, maxMs: histogram.max / 1e6 })}\n`);
});
lines.on('close', () => {
  clearInterval(keepAlive);
  histogram.disable();
});
process.stdout.write('idle loop ready\n');
