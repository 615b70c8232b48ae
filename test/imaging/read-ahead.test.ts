import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AreaReader, createReadAhead } from '../../src/imaging/read-ahead.js';
import { createSlotPool } from '../../src/imaging/slots.js';

/**
 * The reads here are controlled by hand, not by a device: that is the only way to finish them in
 * a chosen order. The engine tests exercise the same queue against real loop devices and faults.
 */
interface HeldRead {
  position: number;
  length: number;
  target: Uint8Array;
  finish(outcome: boolean | Error): void;
}

function heldReader(): { read: AreaReader; held: HeldRead[] } {
  const held: HeldRead[] = [];
  const read: AreaReader = (target, position, length) =>
    new Promise<boolean>((resolve, reject) => {
      held.push({
        position,
        length,
        target,
        finish(outcome) {
          if (outcome instanceof Error) {
            reject(outcome);
            return;
          }
          // A read fills its target with the low byte of its position, so a mix-up shows in the data.
          if (outcome) target.fill(position & 0xff, 0, length);
          resolve(outcome);
        },
      });
    });
  return { read, held };
}

/** Lets every settled promise's callbacks run. */
async function settle(): Promise<void> {
  for (let round = 0; round < 5; round++) await new Promise<void>((resolve) => setImmediate(resolve));
}

test('reads finishing in reverse order are taken in the order they were issued, each with its own data', async () => {
  const pool = createSlotPool(4096, 4);
  const { read, held } = heldReader();
  const ahead = createReadAhead(pool, read);
  for (const position of [0x1000, 0x2100, 0x3200]) await ahead.issue(position, 1024);
  assert.equal(ahead.inFlight, 3);
  assert.equal(ahead.end, 0x3200 + 1024);

  let firstTaken = false;
  const first = ahead.take().then((taken) => {
    firstTaken = true;
    return taken;
  });
  for (const pending of [...held].reverse().slice(0, 2)) pending.finish(true);
  await settle();
  assert.equal(firstTaken, false, 'the oldest read is not taken before it finished, though later ones did');
  held[0]?.finish(true);

  const taken = [await first, await ahead.take(), await ahead.take()];
  assert.deepEqual(
    taken.map((entry) => [entry?.position, entry?.length, entry?.good]),
    [
      [0x1000, 1024, true],
      [0x2100, 1024, true],
      [0x3200, 1024, true],
    ],
  );
  for (const entry of taken) {
    assert.ok(entry !== undefined);
    assert.ok(
      entry.slot.view.subarray(0, 1024).every((byte) => byte === (entry.position & 0xff)),
      `data of the read at ${entry.position}`,
    );
    entry.slot.release();
  }
  assert.equal(await ahead.take(), undefined);
  assert.equal(ahead.end, undefined);
  await pool.idle();
});

test('a failed read in the middle: it is taken as not good, and discarding the rest waits for them to finish before their slots come back', async () => {
  const pool = createSlotPool(4096, 3);
  const { read, held } = heldReader();
  const ahead = createReadAhead(pool, read);
  for (const position of [0, 4096, 8192]) await ahead.issue(position, 4096);

  held[0]?.finish(true);
  held[1]?.finish(false);
  const good = await ahead.take();
  assert.equal(good?.good, true);
  good?.slot.release();
  const failed = await ahead.take();
  assert.equal(failed?.position, 4096);
  assert.equal(failed?.good, false);
  failed?.slot.release();

  let discarded = false;
  const discarding = ahead.discard().then(() => {
    discarded = true;
  });
  let idle = false;
  const idling = pool.idle().then(() => {
    idle = true;
  });
  await settle();
  assert.equal(ahead.inFlight, 0, 'nothing is taken after a discard');
  assert.equal(discarded, false, 'discard waits for the read still in flight');
  assert.equal(idle, false, 'its slot stays held while the read may still fill it');
  held[2]?.finish(true);
  await discarding;
  await idling;
  assert.equal(idle, true);
});

test('a read that rejects: take throws its error and frees its slot; discarding the reads behind it swallows their errors', async () => {
  const pool = createSlotPool(4096, 3);
  const { read, held } = heldReader();
  const ahead = createReadAhead(pool, read);
  for (const position of [0, 4096, 8192]) await ahead.issue(position, 4096);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    held[2]?.finish(new Error('gone too'));
    held[0]?.finish(new Error('device gone'));
    await assert.rejects(ahead.take(), /device gone/);
    assert.equal(ahead.inFlight, 2);
    held[1]?.finish(true);
    await ahead.discard();
    await pool.idle();
    await settle();
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('issue waits for a free slot and refuses a read larger than a slot', async () => {
  const pool = createSlotPool(4096, 2);
  const { read, held } = heldReader();
  const ahead = createReadAhead(pool, read);
  await assert.rejects(ahead.issue(0, 8192), RangeError);
  await ahead.issue(0, 4096);
  await ahead.issue(4096, 4096);
  let issued = false;
  const third = ahead.issue(8192, 4096).then(() => {
    issued = true;
  });
  await settle();
  assert.equal(issued, false, 'both slots are held by reads in flight');
  held[0]?.finish(true);
  const taken = await ahead.take();
  taken?.slot.release();
  await third;
  assert.equal(ahead.inFlight, 2);
  for (const pending of held.slice(1)) pending.finish(true);
  await ahead.discard();
  await pool.idle();
});

test('seconds: the time the source spent on each read, from its issue or the end of the read before it, whichever is later', async () => {
  const pool = createSlotPool(4096, 3);
  const { read, held } = heldReader();
  let clock = 0;
  const ahead = createReadAhead(pool, read, () => clock);
  await ahead.issue(0, 4096);
  clock = 10;
  await ahead.issue(4096, 4096);
  clock = 100;
  held[0]?.finish(true);
  await settle();
  clock = 350;
  held[1]?.finish(true);
  await settle();
  // Taken late: the time of taking does not count, only when each read ended.
  clock = 1000;
  const first = await ahead.take();
  const second = await ahead.take();
  assert.equal(first?.seconds, 0.1);
  assert.equal(second?.seconds, 0.25, 'the second read waited for the first: counted from its end at 100, not its issue at 10');
  first?.slot.release();
  second?.slot.release();

  // Issued after the last one ended: counted from its own issue.
  clock = 2000;
  await ahead.issue(8192, 4096);
  clock = 2040;
  held[2]?.finish(false);
  const failed = await ahead.take();
  assert.equal(failed?.seconds, 0.04);
  failed?.slot.release();
  await pool.idle();
});
