import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createFailureJournal } from '../../src/imaging/failure-journal.js';
import { type RescueMap, rescueMapFromBlocks } from '../../src/imaging/mapfile.js';

function compact(map: RescueMap): string {
  return map
    .blocks()
    .map((block) => `${block.pos}+${block.size}${block.status}`)
    .join(' ');
}

/** 100 bytes: finished, a non-trimmed area [10, 60), finished again. */
function trimmingMap(): RescueMap {
  return rescueMapFromBlocks([
    { pos: 0, size: 10, status: '+' },
    { pos: 10, size: 50, status: '*' },
    { pos: 60, size: 40, status: '+' },
  ]);
}

test('marks apply at once, stay out of the map to save until confirmed, and then stand', () => {
  const map = trimmingMap();
  let clock = 1000;
  const journal = createFailureJournal(map, () => clock);
  assert.equal(journal.unconfirmed, 0);
  assert.equal(journal.oldestAt, undefined);
  assert.equal(journal.confirmedMap(), map, 'nothing pending: the map itself');

  journal.mark(20, 1, '-');
  clock = 1500;
  journal.mark(21, 30, '/');
  journal.mark(51, 1, '-');
  assert.equal(journal.unconfirmed, 3);
  assert.equal(journal.oldestAt, 1000);
  assert.equal(compact(map), '0+10+ 10+10* 20+1- 21+30/ 51+1- 52+8* 60+40+');
  const saved = journal.confirmedMap();
  assert.equal(compact(saved), '0+10+ 10+50* 60+40+');
  assert.equal(compact(map), '0+10+ 10+10* 20+1- 21+30/ 51+1- 52+8* 60+40+', 'the map to save is a copy');

  journal.confirm();
  assert.equal(journal.unconfirmed, 0);
  assert.equal(journal.oldestAt, undefined);
  assert.equal(journal.confirmedMap(), map);
  journal.revert();
  assert.equal(compact(map), '0+10+ 10+10* 20+1- 21+30/ 51+1- 52+8* 60+40+', 'confirmed marks are not undone');
});

test('revert gives every unconfirmed area back the status it had, overlapping marks included', () => {
  const map = trimmingMap();
  const journal = createFailureJournal(map);
  journal.mark(20, 1, '-');
  journal.confirm();
  journal.mark(21, 30, '/');
  journal.mark(30, 1, '-');
  // A retry pass marks a bad sector with the status it already has; it still counts as a failure.
  journal.mark(20, 1, '-');
  assert.equal(journal.unconfirmed, 3);
  journal.revert();
  assert.equal(compact(map), '0+10+ 10+10* 20+1- 21+39* 60+40+');
  assert.equal(journal.unconfirmed, 0);
});

test('a range that does not have one status is refused and changes nothing', () => {
  const map = trimmingMap();
  const journal = createFailureJournal(map);
  assert.throws(() => journal.mark(5, 10, '-'), RangeError);
  assert.throws(() => journal.mark(55, 10, '-'), RangeError);
  assert.equal(compact(map), '0+10+ 10+50* 60+40+');
  assert.equal(journal.unconfirmed, 0);
});
