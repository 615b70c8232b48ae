import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { webRoot } from './paths.js';

/** The interface languages, first the one used when the browser asks for none of them. */
export const LANGUAGES = ['en', 'de', 'es', 'fr'] as const;
export type Language = (typeof LANGUAGES)[number];

/** Which Intl locale formats numbers and dates for each language. */
export const LOCALES: Record<Language, string> = { en: 'en-GB', de: 'de-DE', es: 'es-ES', fr: 'fr-FR' };

export const LANGUAGE_COOKIE = 'lang';

export type Catalog = ReadonlyMap<string, string>;
export type Translate = (key: string, params?: Record<string, string | number>) => string;
/** A text that depends on a count: `key` is a group of plural forms (`one`, `other`, …) chosen by the language's rules. */
export type TranslatePlural = (key: string, count: number, params?: Record<string, string | number>) => string;

export function isLanguage(value: unknown): value is Language {
  return typeof value === 'string' && (LANGUAGES as readonly string[]).includes(value);
}

/**
 * Nested JSON objects become dotted keys: `{"nav": {"archive": "Archive"}}` -> `nav.archive`.
 * @internal exported for its tests
 */
export function flattenCatalog(tree: unknown, prefix = ''): Map<string, string> {
  const flat = new Map<string, string>();
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) throw new TypeError(`catalog entry ${prefix || '(root)'} must be an object`);
  for (const [key, value] of Object.entries(tree)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (typeof value === 'string') flat.set(path, value);
    else for (const [childKey, childValue] of flattenCatalog(value, path)) flat.set(childKey, childValue);
  }
  return flat;
}

function loadCatalog(language: Language): Catalog {
  return flattenCatalog(JSON.parse(readFileSync(join(webRoot(), 'i18n', `${language}.json`), 'utf8')));
}

let catalogs: Record<Language, Catalog> | undefined;

export function allCatalogs(): Record<Language, Catalog> {
  catalogs ??= Object.fromEntries(LANGUAGES.map((language) => [language, loadCatalog(language)])) as Record<Language, Catalog>;
  return catalogs;
}

/**
 * `{name}` placeholders are replaced by params. A key missing from the catalog comes back as the
 * key itself, so a gap shows up on the page instead of breaking it (a test keeps both catalogs complete).
 */
export function createTranslator(catalog: Catalog): Translate {
  return (key, params) => {
    const text = catalog.get(key) ?? key;
    if (params === undefined) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
  };
}

/**
 * Plural forms as CLDR names them for the language (`one`, `few`, `many`, `other`, …). English and
 * German need `one` and `other`; French and Spanish also have `many` (for millions), which falls back
 * to `other` as the numbers here are written in digits. The browser does the same in static/js/format.js.
 */
export function createPluralTranslator(catalog: Catalog, language: Language): TranslatePlural {
  const rules = new Intl.PluralRules(LOCALES[language]);
  const t = createTranslator(catalog);
  return (key, count, params) => {
    const form = `${key}.${rules.select(count)}`;
    return t(catalog.has(form) ? form : `${key}.other`, params);
  };
}

/**
 * The best supported language from an Accept-Language header (`de-CH,de;q=0.9,en;q=0.8`).
 * @internal exported for its tests
 */
export function negotiateLanguage(header: string | undefined): Language | undefined {
  if (!header) return undefined;
  const ranked = header
    .split(',')
    .map((part, index) => {
      const [range = '', ...params] = part.trim().split(';');
      const quality = params.map((param) => /^\s*q=([0-9.]+)\s*$/.exec(param)?.[1]).find((value) => value !== undefined);
      return { language: range.trim().toLowerCase().split('-')[0] ?? '', quality: quality === undefined ? 1 : Number(quality), index };
    })
    .filter((entry) => entry.quality > 0 && Number.isFinite(entry.quality))
    .sort((a, b) => b.quality - a.quality || a.index - b.index);
  return ranked.map((entry) => entry.language).find(isLanguage);
}

/**
 * The value of one cookie from a Cookie header.
 * @internal exported for its tests
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const separator = part.indexOf('=');
    if (separator < 0) continue;
    if (part.slice(0, separator).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(separator + 1).trim());
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The cookie the language switch sets first, then the browser's preference, then English. */
export function requestLanguage(headers: { cookie?: string | undefined; 'accept-language'?: string | undefined }): Language {
  const chosen = cookieValue(headers.cookie, LANGUAGE_COOKIE);
  if (isLanguage(chosen)) return chosen;
  return negotiateLanguage(headers['accept-language']) ?? LANGUAGES[0];
}
