import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coalescedRead } from '../../src/db/table-versions.js';

/** A read whose answer is the value at its start, and which ends when the test says so. */
function controlledRead() {
  let value = 0;
  const started: Array<{ value: number; finish: () => void; fail: (error: Error) => void }> = [];
  const read = (): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      const at = value;
      started.push({ value: at, finish: () => resolve(at), fail: reject });
    });
  return {
    read,
    started,
    change: () => {
      value += 1;
    },
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('coalesced reads of a change counter', () => {
  it('answers callers that came while a read ran with one read begun after them all, never with the older read', async () => {
    const source = controlledRead();
    const version = coalescedRead(source.read);
    const first = version();
    source.change();
    const later = [version(), version(), version()];
    assert.equal(source.started.length, 1, 'the later callers wait for the running read to end before a read of their own');
    source.started[0]?.finish();
    assert.equal(await first, 0);
    await tick();
    assert.equal(source.started.length, 2, 'one read for all the later callers');
    assert.equal(source.started[1]?.value, 1, 'begun after the change they may have seen');
    source.started[1]?.finish();
    assert.deepEqual(await Promise.all(later), [1, 1, 1]);
  });

  it('reads again for a caller after the reads ended, and passes a failed read on to the callers it answers', async () => {
    const source = controlledRead();
    const version = coalescedRead(source.read);
    const first = version();
    const joined = version();
    source.started[0]?.fail(new Error('connection lost'));
    await assert.rejects(first, /connection lost/);
    await tick();
    source.started[1]?.fail(new Error('still lost'));
    await assert.rejects(joined, /still lost/);
    const again = version();
    assert.equal(source.started.length, 3, 'a new caller starts a read of its own once none runs');
    source.started[2]?.finish();
    assert.equal(await again, 0);
  });
});
