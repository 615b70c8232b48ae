import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ARCHIVE_CONDITIONS, ARCHIVE_STATUSES } from '../../src/archive/model.js';
import { USER_ROLES } from '../../src/auth/roles.js';
import { NOTIFICATION_EVENT_TYPES, PRIORITIES } from '../../src/config/schema.js';
import { JOB_STATUSES } from '../../src/jobs/model.js';
import { LOG_LEVELS } from '../../src/log.js';
import {
  LANGUAGES,
  LOCALES,
  allCatalogs,
  cookieValue,
  createPluralTranslator,
  createTranslator,
  flattenCatalog,
  negotiateLanguage,
  requestLanguage,
} from '../../src/web/i18n.js';
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

/** A text's placeholders, `{name}` and the like, sorted: every translation must keep them all. */
function placeholders(text: string): string {
  return [...text.matchAll(/\{(\w+)\}/g)]
    .map((match) => match[1])
    .sort()
    .join(' ');
}

/**
 * The lower-case words of a text (names such as "MQTT (Home Assistant)" have none): a text of more
 * than two of them that reads the same as in English is untranslated.
 */
function words(text: string): string[] {
  return text.replace(/\{\w+\}/g, ' ').match(/(?<!\p{L})\p{Ll}\p{L}+/gu) ?? [];
}

const PLURAL_CATEGORIES = new Set(['zero', 'one', 'two', 'few', 'many', 'other']);

describe('translations', () => {
  it('every language has every English key with the same placeholders, no other key, none empty or left in English', () => {
    const catalogs = allCatalogs();
    const { en } = catalogs;
    const problems: string[] = [];
    for (const language of LANGUAGES) {
      const catalog = catalogs[language];
      const list = (title: string, keys: string[]) => {
        if (keys.length > 0) problems.push(`${language}: ${keys.length} ${title}:\n  ${keys.join('\n  ')}`);
      };
      list(
        'keys missing',
        [...en.keys()].filter((key) => !catalog.has(key)),
      );
      list(
        'keys English does not have',
        [...catalog.keys()].filter((key) => !en.has(key)),
      );
      list(
        'empty texts',
        [...catalog].filter(([, text]) => text.trim() === '').map(([key]) => key),
      );
      list(
        'texts with other placeholders than English',
        [...en]
          .filter(([key, text]) => catalog.has(key) && placeholders(catalog.get(key) as string) !== placeholders(text))
          .map(([key, text]) => `${key}: "${catalog.get(key)}" for "${text}"`),
      );
      if (language !== 'en')
        list(
          'texts still in English',
          [...en].filter(([key, text]) => words(text).length > 2 && catalog.get(key) === text).map(([key]) => key),
        );
    }
    assert.equal(problems.join('\n\n'), '', 'translate the keys listed above');
  });

  it('every plural group has the forms each language’s plural rules choose', () => {
    const catalogs = allCatalogs();
    const groups = [...catalogs.en.keys()].filter((key) => key.endsWith('.other')).map((key) => key.slice(0, -'.other'.length));
    assert.ok(groups.length >= 7, `found only ${groups.length} plural groups`);
    const problems: string[] = [];
    for (const language of LANGUAGES) {
      const catalog = catalogs[language];
      // `many` (French and Spanish millions) falls back to `other`: the counts are written in digits.
      const needed = new Intl.PluralRules(LOCALES[language]).resolvedOptions().pluralCategories.filter((category) => category !== 'many');
      for (const group of groups) {
        for (const category of needed) if (!catalog.has(`${group}.${category}`)) problems.push(`${language}: ${group}.${category}`);
        const forms = [...catalog.keys()].filter((key) => key.startsWith(`${group}.`)).map((key) => key.slice(group.length + 1));
        for (const form of forms) if (!PLURAL_CATEGORIES.has(form)) problems.push(`${language}: ${group}.${form} is no plural form`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('chooses plural forms by each language’s rules', () => {
    const catalog = flattenCatalog({ sectors: { one: '{n} sector', other: '{n} sectors' } });
    const en = createPluralTranslator(catalog, 'en');
    const fr = createPluralTranslator(catalog, 'fr');
    assert.equal(en('sectors', 1, { n: 1 }), '1 sector');
    assert.equal(en('sectors', 0, { n: 0 }), '0 sectors');
    assert.equal(fr('sectors', 0, { n: 0 }), '0 sector');
    assert.equal(fr('sectors', 1.5, { n: '1,5' }), '1,5 sector');
    assert.equal(fr('sectors', 2, { n: 2 }), '2 sectors');
    // French and Spanish call a million `many`; without that form the `other` one is used.
    assert.equal(createPluralTranslator(catalog, 'es')('sectors', 1_000_000, { n: '1.000.000' }), '1.000.000 sectors');
    const de = createPluralTranslator(allCatalogs().de, 'de');
    assert.equal(de('auth.wait.minutes', 1, { n: 1 }), '1 Minute');
    assert.equal(de('auth.wait.minutes', 5, { n: 5 }), '5 Minuten');
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
      ['event_type', NOTIFICATION_EVENT_TYPES],
      ['drive_name', ['optical', 'loop', 'block', 'block_product', 'file', 'demo']],
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
    assert.equal(negotiateLanguage('fr-FR,fr;q=0.9,en;q=0.5,de;q=0.7'), 'fr');
    assert.equal(negotiateLanguage('es-MX,es;q=0.9,en;q=0.5'), 'es');
    assert.equal(negotiateLanguage('pt-BR,fr-CA;q=0.8,de;q=0.7'), 'fr');
    assert.equal(negotiateLanguage('en;q=0,de;q=0.1'), 'de');
    assert.equal(negotiateLanguage('pt,it'), undefined);
    assert.equal(negotiateLanguage(undefined), undefined);
    assert.equal(requestLanguage({ 'accept-language': 'de-DE' }), 'de');
    assert.equal(requestLanguage({ 'accept-language': 'es-ES,es;q=0.9' }), 'es');
    assert.equal(requestLanguage({ cookie: 'lang=fr', 'accept-language': 'es' }), 'fr');
    assert.equal(requestLanguage({ cookie: 'a=1; lang=en', 'accept-language': 'de-DE' }), 'en');
    assert.equal(requestLanguage({ cookie: 'lang=xx', 'accept-language': 'de' }), 'de');
    assert.equal(requestLanguage({}), 'en');
    assert.equal(cookieValue('lang=%E0%A4%A', 'lang'), undefined);
  });
});
