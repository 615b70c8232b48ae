import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { type Server, type Socket, createServer } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../src/config/load.js';
import { attachLoop } from '../test/tools/loop.js';
import { machineDescription, markdownTable, productNodeFlags, writeRandomFile, writeSection } from './report.js';

const run = promisify(execFile);
const SIZE_MIB = Number(process.env.BENCH_NOTIFICATIONS_MIB ?? 1024);
/** Runs per configuration, alternating, so a drift of the shared machine's speed hits both alike. */
const ROUNDS = Number(process.env.BENCH_NOTIFICATIONS_ROUNDS ?? 2);
if (!Number.isSafeInteger(ROUNDS) || ROUNDS < 1)
  throw new Error(`BENCH_NOTIFICATIONS_ROUNDS must be a whole number >= 1, got ${process.env.BENCH_NOTIFICATIONS_ROUNDS}`);

interface ServiceReport {
  loopSampleMs: number;
  loopHistogramP99Ms: number;
  loopHistogramMaxMs: number;
  wallSeconds: number;
  jobSeconds: number;
  sizeBytes: number;
  jobWrites: number;
  outboxEvents: number;
  deliveries: Array<{ status: string; attempts: number; channel: string; error: string | null }>;
}

/** A receiver that accepts TCP connections and never says a word: a webhook that never answers, an SMTP server that never greets. */
interface DeadReceiver {
  port: number;
  connections: number;
  close(): Promise<void>;
}

async function startDeadReceiver(): Promise<DeadReceiver> {
  const sockets = new Set<Socket>();
  const receiver = { port: 0, connections: 0 } as DeadReceiver;
  const server: Server = createServer((socket) => {
    receiver.connections += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    // Reads whatever comes and never writes back.
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  receiver.port = typeof address === 'object' && address !== null ? address.port : 0;
  receiver.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return receiver;
}

async function dropCaches(): Promise<void> {
  await run('sync');
  await writeFile('/proc/sys/vm/drop_caches', '3');
}

function describeOutbox(report: ServiceReport): string {
  const byStatus = new Map<string, number>();
  for (const delivery of report.deliveries) byStatus.set(delivery.status, (byStatus.get(delivery.status) ?? 0) + 1);
  const attempts = report.deliveries.reduce((total, delivery) => total + delivery.attempts, 0);
  const statuses = [...byStatus.entries()].map(([status, count]) => `${count} ${status}`).join(', ');
  return report.deliveries.length === 0 ? 'no deliveries' : `${report.deliveries.length} deliveries (${statuses}), ${attempts} attempts ended`;
}

export async function benchNotifications(): Promise<void> {
  const work = join(packageRoot(), 'bench', 'work', `notifications-${process.pid}`);
  await mkdir(work, { recursive: true });
  const bytes = SIZE_MIB * 2 ** 20;
  const source = join(work, 'source.img');
  console.log(`notifications benchmark: the service images ${SIZE_MIB} MiB without channels and with a dead webhook and SMTP server, ${ROUNDS} rounds`);
  const loadBefore = loadavg()[0] ?? 0;
  const nodeFlags = await productNodeFlags();
  await writeRandomFile(source, bytes);
  const loop = await attachLoop(source, { sectorSize: 2048, readOnly: true });
  const [webhook, smtp] = await Promise.all([startDeadReceiver(), startDeadReceiver()]);
  const runs: Array<{ mode: 'none' | 'channels'; round: number; report: ServiceReport }> = [];
  try {
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const mode of ['none', 'channels'] as const) {
        const dataDir = join(work, `data-${mode}-${round}`);
        await mkdir(dataDir);
        await dropCaches();
        const child = join(packageRoot(), 'dist', 'bench', 'service-run.js');
        const { stdout } = await run(process.execPath, [...nodeFlags, child, dataDir, loop.path, mode, String(webhook.port), String(smtp.port)], {
          maxBuffer: 16 * 2 ** 20,
        });
        runs.push({ mode, round, report: JSON.parse(stdout) as ServiceReport });
        // The 1 GiB image goes before the next run, so the output file system is as full for every run.
        await rm(dataDir, { recursive: true, force: true });
        console.log(`round ${round}, ${mode === 'none' ? 'no channels' : 'dead webhook and SMTP server'}: done`);
      }
    }
  } finally {
    await Promise.all([webhook.close(), smtp.close()]);
    await loop.detach();
    await rm(work, { recursive: true, force: true });
  }

  const loadAfter = loadavg()[0] ?? 0;
  const rows = runs.map(({ mode, round, report }) => [
    mode === 'none' ? 'no channels' : 'webhook never answers, SMTP server never greets',
    String(round),
    (report.sizeBytes / 2 ** 20 / report.jobSeconds).toFixed(0),
    Math.max(0, report.loopHistogramP99Ms - report.loopSampleMs).toFixed(1),
    Math.max(0, report.loopHistogramMaxMs - report.loopSampleMs).toFixed(1),
    report.wallSeconds.toFixed(2),
    String(report.jobWrites),
    String(report.outboxEvents),
    describeOutbox(report),
  ]);
  const table = markdownTable(
    [
      'channels',
      'round',
      'MiB/s (job start to end)',
      'event-loop delay p99 ms',
      'max ms',
      'wall s (POST to completed)',
      'job row writes',
      'events recorded',
      'outbox when the job completed',
    ],
    rows,
  );
  const mean = (mode: 'none' | 'channels', pick: (report: ServiceReport) => number): number => {
    const values = runs.filter((entry) => entry.mode === mode).map((entry) => pick(entry.report));
    return values.reduce((total, value) => total + value, 0) / values.length;
  };
  const throughput = (report: ServiceReport): number => report.sizeBytes / 2 ** 20 / report.jobSeconds;
  const p99 = (report: ServiceReport): number => Math.max(0, report.loopHistogramP99Ms - report.loopSampleMs);
  const errors = [...new Set(runs.flatMap((entry) => entry.report.deliveries.map((delivery) => delivery.error).filter((error) => error !== null)))];
  const summary = [
    `- throughput with the dead receivers over without, mean of the rounds: ${(mean('channels', throughput) / mean('none', throughput)).toFixed(2)}x (${mean('channels', throughput).toFixed(0)} vs ${mean('none', throughput).toFixed(0)} MiB/s)`,
    `- event-loop delay p99 beyond the ${runs[0]?.report.loopSampleMs ?? 0} ms sampling interval, mean of the rounds: ${mean('channels', p99).toFixed(1)} ms with them, ${mean('none', p99).toFixed(1)} ms without`,
    `- connections the dead receivers accepted in all: webhook ${webhook.connections}, SMTP ${smtp.connections}; delivery errors recorded when the job completed: ${errors.length === 0 ? 'none yet (every attempt was still waiting for its 10 s timeout)' : errors.join('; ')}`,
    `- progress does not fill the outbox: the jobs table was written ${runs.map((entry) => entry.report.jobWrites).join(', ')} times per run (progress updates and state changes), while the events recorded stay ${runs.map((entry) => entry.report.outboxEvents).join(', ')} (service.started, job.queued, job.started, job.completed)`,
  ].join('\n');
  const body = `## Notifications never slow imaging (\`npm run bench:notifications\`)\n\nMachine: ${machineDescription()}; 2 cores shared with other tenants and with whatever else runs on the machine (above 2, processes wait for a core; 1-minute load average ${loadBefore.toFixed(1)} at the start, ${loadAfter.toFixed(1)} at the end), so single figures drift; compare the rows of a round. The real service (\`startServer\`, as \`disk2iso serve\` runs it, with the Node flags of \`bin/disk2iso\`, \`${nodeFlags.join(' ')}\`) runs as a process of its own and images ${SIZE_MIB} MiB of random data on a read-only loop device (2048-byte sectors; md5 + sha256, verified, the defaults) through \`POST /api/v1/jobs\`, page cache dropped before each run. Once with no channel configured, once with every event subscribed by e-mail and by a webhook, where the webhook's receiver accepts the TCP connection and never answers, and the SMTP server accepts and never greets (both started by the benchmark on free ports; \`notifications.allow_private_destinations\` on). The event-loop delay is \`monitorEventLoopDelay\` in the service's process from the POST until the job is seen completed, less its ${runs[0]?.report.loopSampleMs ?? 0} ms sampling interval; MiB/s is the image size over the job's own started_at to finished_at (copy, hashing, verification). The outbox is read through \`GET /api/v1/notifications/deliveries\` as the job completes: attempts still waiting for their answer (10 s timeout) are counted as pending with no attempt ended.\n\n${table}\n\n${summary}\n`;
  console.log(body);
  await writeSection('notifications', body);
}
