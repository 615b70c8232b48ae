import { setTimeout as sleep } from 'node:timers/promises';
import { createDispatch } from '../src/cluster/dispatch.js';
import { type BridgedEvent, type ClusterLogger, createEventBridge } from '../src/cluster/event-bridge.js';
import { openPostgres } from '../src/db/postgres.js';
import { startPostgres } from '../test/support/postgres.js';
import { machineDescription, markdownTable, percentile, writeSection } from './report.js';

const quiet: ClusterLogger = { info: () => undefined, warn: () => undefined };

interface Figures {
  what: string;
  events: number;
  p50: number;
  p99: number;
  max: number;
  perSecond: number | null;
}

/**
 * Sends `count` events from one bridge to another, `gapMs` apart (0: all at once), and measures
 * from publish() to the other bridge's listener. Both bridges run in this process, so their clocks
 * agree; what is measured is the database's round trip plus both event loops.
 */
async function latency(url: string, what: string, count: number, gapMs: number, payload: (index: number) => object): Promise<Figures> {
  const from = createEventBridge({ url, nodeId: 'bench-a', log: quiet });
  const to = createEventBridge({ url, nodeId: 'bench-b', log: quiet });
  await Promise.all([from.start(), to.start()]);
  const sentAt = new Map<number, number>();
  const delays: number[] = [];
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  to.subscribe((event: BridgedEvent) => {
    const index = (event.payload as { index: number }).index;
    delays.push(performance.now() - (sentAt.get(index) ?? Number.NaN));
    if (delays.length === count) done();
  });
  const started = performance.now();
  const sends: Array<Promise<void>> = [];
  for (let index = 0; index < count; index++) {
    sentAt.set(index, performance.now());
    sends.push(from.publish('jobs', 'job.updated', { index, ...payload(index) }));
    if (gapMs > 0) await sleep(gapMs);
  }
  await Promise.all(sends);
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await Promise.all([from.close(), to.close()]);
  return {
    what,
    events: count,
    p50: percentile(delays, 0.5),
    p99: percentile(delays, 0.99),
    max: Math.max(...delays),
    perSecond: gapMs === 0 ? count / seconds : null,
  };
}

/**
 * From the commit of a job's message to its node's handler: sent by the node itself (it wakes at
 * the commit), or by another instance without a wake-up (the node finds it at its next look, every
 * second by default).
 */
async function dispatchLatency(url: string, count: number, sender: 'itself' | 'another instance'): Promise<Figures> {
  const database = await openPostgres(url);
  const node = createDispatch({ url, nodeId: 'bench-node', log: quiet });
  const other = createDispatch({ url, nodeId: 'bench-web', log: quiet });
  await Promise.all([node.start(), other.start()]);
  const committedAt = new Map<string, number>();
  const delays: number[] = [];
  node.onWork(async (jobId) => {
    delays.push(performance.now() - (committedAt.get(jobId) ?? Number.NaN));
  });
  const sending = sender === 'itself' ? node : other;
  for (let index = 0; index < count; index++) {
    const jobId = `job_${sender.length}_${index}`;
    await database.transaction(async (tx) => {
      await sending.sendWithin(tx, 'bench-node', jobId, 'normal');
      tx.afterCommit(() => committedAt.set(jobId, performance.now()));
    });
    while (delays.length <= index) await sleep(5);
    // An idle node's next look comes at any point of its interval, as a new job's would.
    await sleep(Math.random() * 1000);
  }
  await Promise.all([node.stop(), other.stop()]);
  await database.close();
  return {
    what: `job message sent by ${sender}, commit to the node's handler`,
    events: count,
    p50: percentile(delays, 0.5),
    p99: percentile(delays, 0.99),
    max: Math.max(...delays),
    perSecond: null,
  };
}

export async function benchCluster(): Promise<void> {
  console.log('cluster benchmark: events between two bridges (LISTEN/NOTIFY), job messages (pg-boss), on a PostgreSQL of its own');
  const server = await startPostgres();
  try {
    const url = await server.createDatabase();
    const rows = [
      await latency(url, 'event, 200 a second', 2000, 5, () => ({ progress: 42.5, bytesDone: 123_456_789 })),
      await latency(url, 'event, 20,000 at once', 20_000, 0, () => ({ progress: 42.5, bytesDone: 123_456_789 })),
      await latency(url, 'event of 100 KB (15 parts), 20 a second', 200, 50, () => ({ log: 'x'.repeat(100_000) })),
      await dispatchLatency(url, 30, 'itself'),
      await dispatchLatency(url, 30, 'another instance'),
    ];
    const ms = (value: number) => value.toFixed(1);
    const table = markdownTable(
      ['what', 'count', 'p50 ms', 'p99 ms', 'max ms', 'per second'],
      rows.map((row) => [row.what, String(row.events), ms(row.p50), ms(row.p99), ms(row.max), row.perSecond === null ? '' : row.perSecond.toFixed(0)]),
    );
    console.log(table);
    await writeSection(
      'cluster',
      `## Cluster engines (\`npm run bench:cluster\`)\n\n${machineDescription()}, a throwaway PostgreSQL cluster on this machine (fsync off).\nBoth ends in one process: the figures are the database's round trip plus the event loops, no network.\n\n${table}`,
    );
  } finally {
    await server.stop();
  }
}
