import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { type Formatters, createFormatters } from '../../src/web/format.js';
import { LANGUAGES, type Language } from '../../src/web/i18n.js';
import { webRoot } from '../../src/web/paths.js';

type BrowserFormat = Pick<Formatters, 'number' | 'percent' | 'bytes' | 'rate' | 'duration'>;

/** The browser's formatter (static/js/format.js is plain ESM without the DOM): Node runs it as the page does. */
async function browserFormat(language: Language): Promise<BrowserFormat> {
  const module = (await import(pathToFileURL(join(webRoot(), 'static', 'js', 'format.js')).href)) as { createFormat(lang: string): BrowserFormat };
  return module.createFormat(language);
}

describe('formatters', () => {
  const en = createFormatters('en');
  const de = createFormatters('de');
  const es = createFormatters('es');
  const fr = createFormatters('fr');

  it('write sizes in decimal units with the language’s decimal mark', () => {
    assert.equal(en.bytes(4_700_000_000), '4.7 GB');
    assert.equal(de.bytes(4_700_000_000), '4,7 GB');
    assert.equal(es.bytes(1_500_000_000), '1,5 GB');
    assert.equal(fr.bytes(1_500_000_000), '1,5 GB');
    assert.equal(en.bytes(999), '999 B');
    assert.equal(en.bytes(2_048_000), '2 MB');
    assert.equal(de.rate(2_450_000), '2,5 MB/s');
    assert.equal(fr.rate(2_450_000), '2,5 MB/s');
    assert.equal(en.bytes(null), '–');
  });

  it('write percentages, numbers and durations', () => {
    assert.equal(en.percent(45.25), '45.3%');
    assert.equal(de.percent(45.25), '45,3\u00a0%');
    assert.equal(es.percent(45.25), '45,3\u00a0%');
    assert.equal(fr.percent(45.25), '45,3\u00a0%');
    assert.equal(de.number(1234567), '1.234.567');
    assert.equal(en.number(1234567), '1,234,567');
    assert.equal(es.number(1234567), '1.234.567');
    assert.equal(fr.number(1234567), '1\u202f234\u202f567');
    assert.equal(en.duration(263), '4:23');
    assert.equal(en.duration(3723), '1:02:03');
    assert.equal(en.duration(null), '–');
    assert.equal(en.duration(-1), '–');
  });

  it('write dates with the month as a word, never as a number, and a 24-hour time', () => {
    // Noon UTC stays on the same day in every time zone the tests may run in.
    const iso = '2026-12-04T12:00:00Z';
    assert.equal(en.date(iso), '4 Dec 2026');
    assert.equal(de.date(iso), '4. Dez. 2026');
    assert.equal(es.date(iso), '4 dic 2026');
    assert.equal(fr.date(iso), '4 déc. 2026');
    const time = /\d{2}:\d{2}$/;
    const withSeconds = /\d{2}:\d{2}:\d{2}$/;
    for (const [language, format] of Object.entries({ en, de, es, fr })) {
      const dateTime = format.dateTime(iso);
      assert.ok(dateTime.startsWith(format.date(iso)), `${language}: ${dateTime}`);
      assert.match(dateTime, time, language);
      assert.match(format.timestamp(iso), withSeconds, language);
      assert.ok(format.timestamp(iso).startsWith(format.date(iso)), `${language}: ${format.timestamp(iso)}`);
      // No 04/12, 12/04 or 04.12.: a day and month both in digits could be read either way round.
      assert.doesNotMatch(format.timestamp(iso), /\b\d{1,2}[./-]\d{1,2}[./-]/, language);
      assert.doesNotMatch(format.timestamp('2026-03-04T12:00:00Z'), /\b\d{1,2}[./-]\d{1,2}[./-]/, language);
    }
    assert.equal(en.dateTime('not a date'), '–');
    assert.equal(de.timestamp(null), '–');
  });

  it('the browser formats live values exactly as the server does, in every language', async () => {
    const values = [0, 999, 1_500_000_000, 4_700_000_000, 123_456_789_012];
    for (const language of LANGUAGES) {
      const server = createFormatters(language);
      const browser = await browserFormat(language);
      for (const value of values) {
        assert.equal(browser.bytes(value), server.bytes(value), `${language} bytes ${value}`);
        assert.equal(browser.rate(value), server.rate(value), `${language} rate ${value}`);
        assert.equal(browser.number(value), server.number(value), `${language} number ${value}`);
      }
      for (const percent of [0, 42.55, 100]) assert.equal(browser.percent(percent), server.percent(percent), `${language} percent ${percent}`);
      assert.equal(browser.duration(3723), server.duration(3723));
    }
    assert.equal((await browserFormat('fr')).bytes(1_500_000_000), '1,5 GB');
    assert.equal((await browserFormat('es')).number(1234567), '1.234.567');
  });
});
