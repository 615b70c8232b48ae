import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ProgressSnapshot, createProgressTracker } from '../../src/imaging/progress.js';
import type { ImagingProgress } from '../../src/imaging/types.js';

function snapshot(bytesDone: number, phase: ProgressSnapshot['phase'] = 'copying'): ProgressSnapshot {
  return { phase, bytesDone, badBytes: 0, errorCount: 0, position: bytesDone, buffered: false, readCalls: 0, readBytes: 0 };
}

function trackerWithClock(bytesTotal: number): {
  events: ImagingProgress[];
  update: (s: ProgressSnapshot, force?: boolean) => void;
  advance: (ms: number) => void;
} {
  let clock = 0;
  const events: ImagingProgress[] = [];
  const tracker = createProgressTracker({ bytesTotal, onProgress: (event) => events.push(event), now: () => clock, intervalMs: 250, windowMs: 5000 });
  return { events, update: (s, force) => tracker.update(s, force), advance: (ms) => (clock += ms) };
}

test('events are throttled to the interval, except on a phase change or when forced', () => {
  const { events, update, advance } = trackerWithClock(1000);
  update(snapshot(0));
  for (let step = 1; step <= 10; step++) {
    advance(50);
    update(snapshot(step * 10));
  }
  // t=0 emits; then every 250 ms of the 500 ms that passed.
  assert.deepEqual(
    events.map((event) => event.bytesDone),
    [0, 50, 100],
  );
  update(snapshot(100, 'trimming'));
  update(snapshot(100, 'trimming'), true);
  assert.deepEqual(
    events.slice(-2).map((event) => event.phase),
    ['trimming', 'trimming'],
  );
});

test('rate comes from the sliding window and ETA from the rate', () => {
  const { events, update, advance } = trackerWithClock(100_000_000);
  update(snapshot(0));
  for (let second = 1; second <= 10; second++) {
    advance(1000);
    // 1 MB/s for 5 s, then 4 MB/s: the window forgets the slow start.
    update(snapshot(second <= 5 ? second * 1e6 : 5e6 + (second - 5) * 4e6));
  }
  const last = events[events.length - 1];
  assert.ok(last !== undefined);
  assert.equal(last.bytesDone, 25e6);
  assert.equal(last.rateBps, 4e6);
  assert.equal(last.etaSeconds, 75e6 / 4e6);
  assert.equal(last.percent, 25);
  assert.equal(events[0]?.etaSeconds, null, 'no rate yet, no ETA');
});

test('a new phase restarts the rate; a finished total has ETA 0', () => {
  const { events, update, advance } = trackerWithClock(1000);
  update(snapshot(0));
  advance(1000);
  update(snapshot(1000));
  assert.equal(events[events.length - 1]?.etaSeconds, 0);
  update(snapshot(0, 'hashing'));
  assert.equal(events[events.length - 1]?.rateBps, 0);
  advance(500);
  update(snapshot(500, 'hashing'));
  assert.equal(events[events.length - 1]?.rateBps, 1000);
  assert.equal(events[events.length - 1]?.etaSeconds, 0.5);
});
