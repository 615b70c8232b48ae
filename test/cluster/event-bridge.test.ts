import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { type BridgedEvent, type EventBridge, type Resync, createEventBridge, utf8Parts } from '../../src/cluster/event-bridge.js';
import { createEventBus } from '../../src/events/bus.js';
import { usePostgres } from '../support/postgres.js';
import { recordingLogger, until } from './support.js';

const postgres = usePostgres();
const opened: EventBridge[] = [];
after(() => Promise.all(opened.map((bridge) => bridge.close())));

async function bridge(url: string, nodeId: string): Promise<EventBridge & { received: BridgedEvent[]; resyncs: Resync[] }> {
  const created = createEventBridge({ url, nodeId, log: recordingLogger(), pingMs: 1000 });
  opened.push(created);
  const received: BridgedEvent[] = [];
  const resyncs: Resync[] = [];
  created.subscribe((event) => received.push(event));
  created.onResync((resync) => resyncs.push(resync));
  await created.start();
  return Object.assign(created, { received, resyncs });
}

test('utf8Parts cuts text below the byte limit and never inside a character', () => {
  const text = `${'a'.repeat(5)}ä€😀`.repeat(40);
  for (const maxBytes of [4, 5, 7, 100]) {
    const parts = utf8Parts(text, maxBytes);
    assert.equal(parts.join(''), text);
    for (const part of parts) {
      assert.ok(Buffer.byteLength(part) <= maxBytes, `a part of ${Buffer.byteLength(part)} bytes for a limit of ${maxBytes}`);
      assert.ok(!part.includes('\uFFFD'), 'a character was cut');
    }
  }
  assert.deepEqual(utf8Parts('', 10), ['']);
});

test('events reach the other bridge in publish order, and a bridge never receives its own', async () => {
  const url = await postgres().createDatabase();
  const [a, b] = [await bridge(url, 'node-a'), await bridge(url, 'node-b')];
  const sent = Array.from({ length: 300 }, (_, index) => ({ stream: index % 3 === 0 ? 'archive' : 'jobs', type: 'job.updated', payload: { index } }));
  // Not awaited one by one: the bridge batches what queued up while a send was under way.
  await Promise.all(sent.map((event) => a.publish(event.stream, event.type, event.payload)));
  await until(() => b.received.length >= sent.length, 'node-b received every event');
  assert.deepEqual(
    b.received,
    sent.map((event) => ({ from: 'node-a', ...event })),
  );
  // node-a's own events were queued before this one, so they would have reached it first.
  await b.publish('jobs', 'job.removed', { jobId: 'job_1' });
  await until(() => a.received.length >= 1, 'node-a received node-b event');
  assert.deepEqual(a.received, [{ from: 'node-b', stream: 'jobs', type: 'job.removed', payload: { jobId: 'job_1' } }]);
  assert.equal(b.received.length, sent.length, 'node-b received nothing of its own');
});

test('an event far beyond the 8000-byte NOTIFY limit arrives whole, in its place', async () => {
  const url = await postgres().createDatabase();
  const [a, b] = [await bridge(url, 'node-a'), await bridge(url, 'node-b')];
  const large = { log: 'ä€😀 line of a long job log\n'.repeat(4000), nested: { values: Array.from({ length: 2000 }, (_, index) => index) } };
  assert.ok(Buffer.byteLength(JSON.stringify(large)) > 100_000);
  await Promise.all([a.publish('jobs', 'before', { n: 1 }), a.publish('jobs', 'large', large), a.publish('jobs', 'after', { n: 2 })]);
  await until(() => b.received.length >= 3, 'node-b received three events');
  assert.deepEqual(
    b.received.map((event) => event.type),
    ['before', 'large', 'after'],
  );
  assert.deepEqual(b.received[1]?.payload, large);
  assert.deepEqual(b.resyncs, []);
});

test('attachBus carries a local event to the other buses and does not send an event back where it came from', async () => {
  const url = await postgres().createDatabase();
  const [a, b, observer] = [await bridge(url, 'node-a'), await bridge(url, 'node-b'), await bridge(url, 'node-c')];
  type Events = { 'job.updated': { id: string }; 'job.removed': { jobId: string } };
  const failures: unknown[] = [];
  const busA = createEventBus<Events>((error) => failures.push(error));
  const busB = createEventBus<Events>((error) => failures.push(error));
  const seenA: string[] = [];
  const seenB: string[] = [];
  busA.onAny((type, payload) => seenA.push(`${type}:${JSON.stringify(payload)}`));
  busB.onAny((type, payload) => seenB.push(`${type}:${JSON.stringify(payload)}`));
  a.attachBus(busA, 'jobs');
  const detachB = b.attachBus(busB, 'jobs');
  busA.emit('job.updated', { id: 'job_1' });
  busB.emit('job.removed', { jobId: 'job_2' });
  await until(() => seenA.length >= 2 && seenB.length >= 2 && observer.received.length >= 2, 'both buses saw both events');
  // A marker from each bridge after both buses saw both events: a bus that sent back what it received
  // did so when it received it, so before its bridge's marker, which the observer gets after it.
  await Promise.all([a.publish('marker', 'end', {}), b.publish('marker', 'end', {})]);
  await until(() => observer.received.filter((event) => event.stream === 'marker').length === 2, 'the observer received both markers');
  const observed = observer.received.filter((event) => event.stream !== 'marker').map((event) => `${event.from} ${event.stream} ${event.type}`);
  // Two publishers' events have no order between them.
  assert.deepEqual(observed.toSorted(), ['node-a jobs job.updated', 'node-b jobs job.removed']);
  assert.deepEqual(seenA, ['job.updated:{"id":"job_1"}', 'job.removed:{"jobId":"job_2"}']);
  assert.deepEqual(seenB.toSorted(), ['job.removed:{"jobId":"job_2"}', 'job.updated:{"id":"job_1"}']);
  assert.deepEqual(failures, []);
  detachB();
  busA.emit('job.updated', { id: 'job_3' });
  await until(() => b.received.some((event) => JSON.stringify(event.payload) === '{"id":"job_3"}'), 'node-b received the event after the detach');
  assert.equal(seenB.length, 2, 'a detached bus receives nothing more');
});

test('a skip in a publisher\u2019s sequence asks for a resync, and half a message is never delivered', async () => {
  const url = await postgres().createDatabase();
  const b = await bridge(url, 'node-b');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const notify = (text: string) => client.query("select pg_notify('disk2iso_events', $1)", [text]);
    await notify('d2i1 node-x 0123456789ab 1 1 1\n["jobs","first",{}]');
    // The second part of a message whose first part never came.
    await notify('d2i1 node-x 0123456789ab 2 2 2\n,{}]');
    await notify('d2i1 node-x 0123456789ab 3 1 1\n["jobs","third",{}]');
    await notify('not a cluster event');
    await until(() => b.received.length >= 2, 'node-b received the whole messages');
    assert.deepEqual(
      b.received.map((event) => event.type),
      ['first', 'third'],
    );
    assert.deepEqual(b.resyncs, [{ reason: 'missed', from: 'node-x' }]);
  } finally {
    await client.end();
  }
});

test('the bridges survive a PostgreSQL restart: they reconnect, report the gap, and events flow again', async () => {
  const url = await postgres().createDatabase();
  const [a, b] = [await bridge(url, 'node-a'), await bridge(url, 'node-b')];
  await a.publish('jobs', 'before', {});
  await until(() => b.received.length === 1, 'node-b received the event before the restart');
  await postgres().restart();
  await until(() => a.resyncs.length > 0 && b.resyncs.length > 0, 'both bridges reconnected');
  assert.equal(b.resyncs[0]?.reason, 'reconnected');
  // The sender's pooled connection died with the server; the first send may find out, a later one gets through.
  await until(async () => {
    await a.publish('jobs', 'after', {}).catch(() => undefined);
    return b.received.some((event) => event.type === 'after');
  }, 'an event after the restart arrived');
  assert.deepEqual(b.received[0], { from: 'node-a', stream: 'jobs', type: 'before', payload: {} });
  await b.publish('jobs', 'back', {});
  await until(() => a.received.some((event) => event.type === 'back'), 'node-a received an event after the restart');
});
