import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { insideWindow } from '../../src/archive/reverify-schedule.js';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { createReadThrottle } from '../../src/imaging/throttle.js';
import { withDatabase } from '../db/support.js';

describe('the re-verification window', () => {
  it('holds hours from start up to end, across midnight too; start = end is the whole day', () => {
    const hours = (start: number, end: number) => [...Array(24).keys()].filter((hour) => insideWindow(hour, start, end));
    assert.deepEqual(hours(1, 6), [1, 2, 3, 4, 5]);
    assert.deepEqual(hours(22, 2), [0, 1, 22, 23]);
    assert.equal(hours(5, 5).length, 24);
  });
});

describe('the read throttle (a token bucket)', () => {
  /** A clock that only moves when the throttle waits, so the waits it asks for are its whole behaviour. */
  function fakeTime(rate: () => number) {
    let clock = 0;
    const waits: number[] = [];
    const throttle = createReadThrottle(rate, {
      now: () => clock,
      wait: async (ms) => {
        waits.push(ms);
        clock += ms;
      },
    });
    return { throttle, waits, advance: (ms: number) => (clock += ms) };
  }

  it('lets a reader use its rate and no more, with one second of burst', async () => {
    const { throttle, waits, advance } = fakeTime(() => 1000);
    await throttle.take(500);
    assert.deepEqual(waits, [500], 'nothing saved up at the start: 500 bytes at 1000 B/s wait half a second');
    advance(2000);
    await throttle.take(800);
    assert.deepEqual(waits, [500], 'two idle seconds saved up one second (the cap), which covers 800 bytes');
    await throttle.take(700);
    assert.equal(waits.at(-1), 500, '200 bytes left, 700 asked: the 500 beyond wait half a second');
  });

  it('reads freely without a cap, holds while the rate is 0, and lets an abort through at once', async () => {
    let rate = Number.POSITIVE_INFINITY;
    const { throttle, waits } = fakeTime(() => rate);
    await throttle.take(10 ** 9);
    assert.deepEqual(waits, []);
    const controller = new AbortController();
    rate = 0;
    let polls = 0;
    const held = createReadThrottle(() => rate, {
      wait: async () => {
        polls += 1;
        if (polls === 3) controller.abort();
      },
    });
    await held.take(1, controller.signal);
    assert.equal(polls, 3, 'held until the abort');
  });
});

describe('archives due for a scheduled verification', () => {
  it('lists the never verified first, then the longest unverified; leaves out the recent and the missing', async () => {
    await withDatabase(async (database) => {
      const archives = createArchiveRepository(database);
      const source = { deviceId: null, devicePath: null, discKind: 'data' as const, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] };
      const make = async (name: string, verifiedDaysAgo: number | null, status?: 'missing') => {
        const record = await archives.create({ filename: name, path: `/out/${name}`, sizeBytes: 1, checksums: {}, source, ...(status ? { status } : {}) });
        if (verifiedDaysAgo !== null) {
          const at = new Date(Date.now() - verifiedDaysAgo * 86_400_000);
          await archives.recordVerification(record.id, { startedAt: at, finishedAt: at, ok: true, results: {}, seconds: 0, archiveStatus: status ?? 'ok' });
        }
        return record.id;
      };
      const recent = await make('recent.iso', 1);
      const old = await make('old.iso', 40);
      const older = await make('older.iso', 90);
      const never = await make('never.iso', null);
      await make('gone.iso', null, 'missing');
      const due = await archives.dueForVerification(new Date(Date.now() - 30 * 86_400_000), { limit: 10 });
      assert.deepEqual(
        due.map((archive) => archive.id),
        [never, older, old],
      );
      assert.ok(!due.some((archive) => archive.id === recent));
      const excluding = await archives.dueForVerification(new Date(Date.now() - 30 * 86_400_000), { limit: 10, excludeIds: [never] });
      assert.deepEqual(
        excluding.map((archive) => archive.id),
        [older, old],
      );
    });
  });
});
