import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFormatters } from '../../src/web/format.js';

describe('formatters', () => {
  const en = createFormatters('en');
  const de = createFormatters('de');

  it('write sizes in decimal units with the language’s decimal mark', () => {
    assert.equal(en.bytes(4_700_000_000), '4.7 GB');
    assert.equal(de.bytes(4_700_000_000), '4,7 GB');
    assert.equal(en.bytes(999), '999 B');
    assert.equal(en.bytes(2_048_000), '2 MB');
    assert.equal(de.rate(2_450_000), '2,5 MB/s');
    assert.equal(en.bytes(null), '–');
  });

  it('write percentages, numbers and durations', () => {
    assert.equal(en.percent(45.25), '45.3%');
    assert.equal(de.percent(45.25), '45,3\u00a0%');
    assert.equal(de.number(1234567), '1.234.567');
    assert.equal(en.number(1234567), '1,234,567');
    assert.equal(en.duration(263), '4:23');
    assert.equal(en.duration(3723), '1:02:03');
    assert.equal(en.duration(null), '–');
    assert.equal(en.duration(-1), '–');
  });

  it('write dates as each language does', () => {
    const iso = '2025-12-30T20:00:00Z';
    assert.match(en.date(iso), /^30 Dec 2025$/);
    assert.match(de.date(iso), /^30\.12\.2025$/);
    assert.notEqual(en.dateTime(iso), de.dateTime(iso));
    assert.equal(en.dateTime('not a date'), '–');
    assert.equal(de.timestamp(null), '–');
  });
});
