import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { type Dispatch, createDispatch } from '../../src/cluster/dispatch.js';
import type { Database } from '../../src/db/database.js';
import { openPostgres } from '../../src/db/postgres.js';
import type { JobPriority } from '../../src/jobs/model.js';
import { usePostgres } from '../support/postgres.js';
import { recordingLogger, until } from './support.js';

const postgres = usePostgres();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function database(): Promise<{ url: string; database: Database }> {
  const url = await postgres().createDatabase();
  const opened = await openPostgres(url);
  cleanups.push(() => opened.close());
  return { url, database: opened };
}

async function dispatch(url: string, nodeId: string, retryDelaySeconds = 1, pollMs = 100): Promise<Dispatch> {
  const created = createDispatch({ url, nodeId, log: recordingLogger(), pollMs, retryDelaySeconds });
  cleanups.push(() => created.stop());
  await created.start();
  return created;
}

/** The messages pg-boss holds for a job, in whatever state. */
async function messagesOf(url: string, jobId: string): Promise<Array<{ name: string; state: string; retry_count: number }>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query("select name, state, retry_count from pgboss.job where data->>'jobId' = $1", [jobId]);
    return rows;
  } finally {
    await client.end();
  }
}

test('a message sent in a transaction that rolls back is never delivered; one that commits is', async () => {
  const { url, database: db } = await database();
  const node = await dispatch(url, 'node-a');
  const received: string[] = [];
  node.onWork(async (jobId) => {
    received.push(jobId);
  });
  await assert.rejects(
    db.transaction(async (tx) => {
      await node.sendWithin(tx, 'node-a', 'job_rolled_back', 'high');
      throw new Error('the job row could not be written');
    }),
    /could not be written/,
  );
  await db.transaction((tx) => node.sendWithin(tx, 'node-a', 'job_committed', 'low'));
  await until(() => received.length >= 1, 'the committed job was delivered');
  await until(async () => (await messagesOf(url, 'job_committed'))[0]?.state === 'completed', 'the delivery was completed');
  // The rolled-back one had the higher priority: had it been stored, it would have come first.
  assert.deepEqual(received, ['job_committed']);
  assert.deepEqual(await messagesOf(url, 'job_rolled_back'), []);
});

test("a node's worker gets only the jobs addressed to it, higher priorities first", async () => {
  const { url, database: db } = await database();
  const [nodeA, nodeB] = [await dispatch(url, 'node-a'), await dispatch(url, 'node-b')];
  const jobs: Array<[string, string, JobPriority]> = [
    ['node-b', 'job_b_low', 'low'],
    ['node-a', 'job_a_normal', 'normal'],
    ['node-b', 'job_b_high', 'high'],
    ['node-b', 'job_b_normal', 'normal'],
    // A node that never started: its queue is made in the same transaction.
    ['node-c', 'job_c_high', 'high'],
  ];
  // All sent before any handler runs, so the order they come in is the queue's.
  await db.transaction(async (tx) => {
    for (const [nodeId, jobId, priority] of jobs) await nodeA.sendWithin(tx, nodeId, jobId, priority);
  });
  const receivedA: string[] = [];
  const receivedB: string[] = [];
  nodeB.onWork(async (jobId) => {
    receivedB.push(jobId);
  });
  nodeA.onWork(async (jobId) => {
    receivedA.push(jobId);
  });
  await until(() => receivedA.length >= 1 && receivedB.length >= 3, 'both nodes received their jobs');
  assert.deepEqual(receivedB, ['job_b_high', 'job_b_normal', 'job_b_low']);
  assert.deepEqual(receivedA, ['job_a_normal']);
  const nodeC = await dispatch(url, 'node-c');
  const receivedC: string[] = [];
  nodeC.onWork(async (jobId) => {
    receivedC.push(jobId);
  });
  await until(() => receivedC.length >= 1, 'node-c received its job once it started');
  assert.deepEqual(receivedC, ['job_c_high']);
  assert.deepEqual(
    (await messagesOf(url, 'job_c_high')).map((message) => message.name),
    ['disk2iso-node-node-c'],
  );
});

test('a job whose handler throws (its drive is busy) is delivered again until the handler takes it', async () => {
  const { url, database: db } = await database();
  const node = await dispatch(url, 'node-a');
  const attempts: string[] = [];
  node.onWork(async (jobId) => {
    attempts.push(jobId);
    if (jobId === 'job_waiting' && attempts.filter((id) => id === jobId).length < 3) throw new Error('device_busy: a job runs on sr0');
  });
  await db.transaction((tx) => node.sendWithin(tx, 'node-a', 'job_waiting', 'normal'));
  await until(async () => (await messagesOf(url, 'job_waiting'))[0]?.state === 'completed', 'the waiting job was taken');
  assert.deepEqual(attempts, ['job_waiting', 'job_waiting', 'job_waiting']);
  assert.equal((await messagesOf(url, 'job_waiting'))[0]?.retry_count, 2);
});

test('an idle node looks for work at once when its own send commits or when it is woken', async () => {
  const { url, database: db } = await database();
  // Polling every ten minutes: within the test, only a wake-up brings a delivery.
  const [nodeA, nodeB] = [await dispatch(url, 'node-a', 1, 600_000), await dispatch(url, 'node-b', 1, 600_000)];
  const received: string[] = [];
  await db.transaction((tx) => nodeA.sendWithin(tx, 'node-a', 'job_first', 'normal'));
  nodeA.onWork(async (jobId) => {
    received.push(jobId);
  });
  await until(() => received.length === 1, 'the first job was delivered when the handler came');
  // Lets the loop finish that delivery, look once more and settle into its wait.
  await until(async () => (await messagesOf(url, 'job_first'))[0]?.state === 'completed', 'the first delivery was completed');
  await new Promise((resolve) => setTimeout(resolve, 300));
  await db.transaction((tx) => nodeA.sendWithin(tx, 'node-a', 'job_own', 'normal'));
  await until(() => received.length === 2, 'its own send woke the node');
  await until(async () => (await messagesOf(url, 'job_own'))[0]?.state === 'completed', 'the second delivery was completed');
  await new Promise((resolve) => setTimeout(resolve, 300));
  // Another instance's send: that instance announces it (through the event bridge), and the node is woken.
  await db.transaction((tx) => nodeB.sendWithin(tx, 'node-a', 'job_other', 'normal'));
  nodeA.wake();
  await until(() => received.length === 3, 'wake() brought the job another instance sent');
  assert.deepEqual(received, ['job_first', 'job_own', 'job_other']);
});

test('delivery resumes after a PostgreSQL restart', async () => {
  const { url, database: db } = await database();
  const node = await dispatch(url, 'node-a');
  const received: string[] = [];
  node.onWork(async (jobId) => {
    received.push(jobId);
  });
  await db.transaction((tx) => node.sendWithin(tx, 'node-a', 'job_before', 'normal'));
  await until(() => received.includes('job_before'), 'the job before the restart was delivered');
  await postgres().restart();
  // The service's pool finds its connections dead at the first use after the restart; a later attempt gets through.
  await until(async () => {
    try {
      await db.transaction((tx) => node.sendWithin(tx, 'node-a', 'job_after', 'normal'));
      return true;
    } catch {
      return false;
    }
  }, 'the job after the restart was sent');
  await until(() => received.includes('job_after'), 'the job after the restart was delivered');
  assert.deepEqual(received, ['job_before', 'job_after']);
});

test('nodes starting together on a new database all start: pg-boss is installed once, every queue made', async () => {
  const { url } = await database();
  const nodes = Array.from({ length: 12 }, (_, index) => `node-${index}`);
  const started = await Promise.allSettled(nodes.map((node) => dispatch(url, node)));
  assert.deepEqual(
    started.flatMap((outcome) => (outcome.status === 'rejected' ? [String(outcome.reason)] : [])),
    [],
  );
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query("select name from pgboss.queue where name like 'disk2iso-node-%' order by name");
    assert.deepEqual(rows.map((row: { name: string }) => row.name).toSorted(), nodes.map((node) => `disk2iso-node-${node}`).toSorted());
  } finally {
    await client.end();
  }
});
