import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ARCHIVE_CONDITIONS, ARCHIVE_STATUSES } from '../../src/archive/model.js';
import { USER_ROLES } from '../../src/auth/roles.js';
import { PRIORITIES } from '../../src/config/schema.js';
import { JOB_STATUSES } from '../../src/jobs/model.js';
import { LOG_LEVELS } from '../../src/log.js';
import { LANGUAGES, allCatalogs, cookieValue, createTranslator, flattenCatalog, negotiateLanguage, requestLanguage } from '../../src/web/i18n.js';
import { webRoot } from '../../src/web/paths.js';

async function filesUnder(dir: string, suffixes: string[]): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile() && suffixes.some((suffix) => entry.name.endsWith(suffix))).map((entry) => join(entry.parentPath, entry.name));
}

/** Every catalog key written literally in a template, page module or browser script. */
async function literalKeys(): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  const files = await filesUnder(webRoot(), ['.eta', '.ts', '.js']);
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    for (const match of text.matchAll(/\bt\(\s*'([a-z_]+(?:\.[a-z0-9_-]+)+)'\s*[,)]/g)) keys.set(match[1] as string, file);
  }
  return keys;
}

describe('translations', () => {
  it('German and English have exactly the same keys, none of them empty', () => {
    const { en, de } = allCatalogs();
    assert.deepEqual([...de.keys()].sort(), [...en.keys()].sort());
    for (const [language, catalog] of Object.entries({ en, de })) {
      for (const [key, text] of catalog) assert.notEqual(text.trim(), '', `${language}: ${key} is empty`);
    }
  });

  it('every key the templates and scripts name exists', async () => {
    const { en } = allCatalogs();
    const keys = await literalKeys();
    assert.ok(keys.size > 150, `found only ${keys.size} keys; the scan is broken`);
    const missing = [...keys].filter(([key]) => !en.has(key)).map(([key, file]) => `${key} (${file})`);
    assert.deepEqual(missing, []);
  });

  it('every value a template turns into a key has a translation', () => {
    const { en } = allCatalogs();
    const families: Array<[string, readonly string[]]> = [
      ['status', JOB_STATUSES],
      ['phase', ['preparing', 'copying', 'trimming', 'scraping', 'retrying', 'hashing', 'finalizing', 'verifying']],
      ['priority', PRIORITIES],
      ['log', LOG_LEVELS],
      ['archive_status', ARCHIVE_STATUSES],
      ['archive_condition', ARCHIVE_CONDITIONS],
      ['disc_kind', ['data', 'dvd-video', 'bd-video', 'audio', 'blank', 'unknown']],
      ['drive_kind', ['optical', 'block', 'file', 'demo']],
      ['roles', USER_ROLES],
      ['languages', LANGUAGES],
      ['actions', ['pause', 'resume', 'cancel', 'retry']],
      ['sector_map', ['finished', 'nontried', 'nontrimmed', 'nonscraped', 'bad']],
      ['config.section', ['storage', 'imaging', 'notifications', 'account']],
      ['archive.sort', ['date', 'name', 'size']],
      [
        'notices',
        [
          'job_pause',
          'job_resume',
          'job_cancel',
          'job_retry',
          'job_priority',
          'job_created',
          'drive_ejected',
          'archive_saved',
          'archive_verification_started',
          'archive_verification_cancelled',
          'archive_verification_stopping',
          'archive_deleted',
          'archives_verification_started',
          'archives_deleted',
          'settings_saved',
          'settings_unchanged',
        ],
      ],
    ];
    const missing = families.flatMap(([prefix, values]) => values.map((value) => `${prefix}.${value}`)).filter((key) => !en.has(key));
    assert.deepEqual(missing, []);
  });

  it('fills placeholders and leaves unknown ones visible', () => {
    const t = createTranslator(flattenCatalog({ greeting: { hello: 'Hello {name}, {count} new' } }));
    assert.equal(t('greeting.hello', { name: 'Ada', count: 3 }), 'Hello Ada, 3 new');
    assert.equal(t('greeting.hello', { name: 'Ada' }), 'Hello Ada, {count} new');
    assert.equal(t('greeting.missing'), 'greeting.missing');
  });

  it('chooses the language from the cookie, then Accept-Language by quality, then English', () => {
    assert.equal(negotiateLanguage('de-CH,de;q=0.9,en;q=0.8'), 'de');
    assert.equal(negotiateLanguage('fr-FR,fr;q=0.9,en;q=0.5,de;q=0.7'), 'de');
    assert.equal(negotiateLanguage('en;q=0,de;q=0.1'), 'de');
    assert.equal(negotiateLanguage('fr,es'), undefined);
    assert.equal(negotiateLanguage(undefined), undefined);
    assert.equal(requestLanguage({ 'accept-language': 'de-DE' }), 'de');
    assert.equal(requestLanguage({ cookie: 'a=1; lang=en', 'accept-language': 'de-DE' }), 'en');
    assert.equal(requestLanguage({ cookie: 'lang=xx', 'accept-language': 'de' }), 'de');
    assert.equal(requestLanguage({}), 'en');
    assert.equal(cookieValue('lang=%E0%A4%A', 'lang'), undefined);
  });
});
