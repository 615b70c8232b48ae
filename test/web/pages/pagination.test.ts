import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pagination } from '../../../src/web/pages/pagination.js';

describe('pagination', () => {
  it('says which items are shown and links pages with gaps, as drawn', () => {
    const first = pagination(1, 20, 156);
    assert.deepEqual(
      { first: first.first, last: first.last, pages: first.pageCount, previous: first.previous, next: first.next },
      { first: 1, last: 20, pages: 8, previous: null, next: 2 },
    );
    assert.deepEqual(first.links, [1, 2, 3, null, 8]);
    assert.deepEqual(pagination(5, 20, 156).links, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(pagination(5, 20, 400).links, [1, 2, 3, 4, 5, 6, 7, null, 20]);
    const last = pagination(8, 20, 156);
    assert.deepEqual([last.first, last.last, last.next], [141, 156, null]);
  });

  it('clamps pages outside the range and handles an empty list', () => {
    assert.equal(pagination(99, 20, 45).page, 3);
    assert.equal(pagination(-3, 20, 45).page, 1);
    const empty = pagination(1, 20, 0);
    assert.deepEqual([empty.first, empty.last, empty.pageCount, empty.links.length], [0, 0, 1, 1]);
  });
});
