import { STORED_SOURCE, getPath, settingLeaves } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { type SettingLock, isSecretLeaf, settingLock, shownValue } from '../system/settings.js';
import type { FormFields } from './request.js';
import type { I18n } from './types.js';

/**
 * The configuration page's forms, built from the configuration schema: a field per setting, its
 * input type from the setting's type, its label from the catalog. Settings the schema gains later
 * (notifications) appear by themselves.
 */
export type SettingsSection = 'storage' | 'imaging' | 'archive' | 'notifications' | 'mqtt' | 'backup';
export const SETTINGS_SECTIONS: readonly SettingsSection[] = ['storage', 'imaging', 'archive', 'notifications', 'mqtt', 'backup'];

/** Order on the page where it differs from the schema's: the specification's drawings first. */
const ORDER: readonly string[] = [
  'storage.output_dir',
  'storage.delete_source_on_success',
  'storage.keep_partial_on_cancel',
  'storage.log_retention_days',
  'storage.warn_threshold_percent',
  'storage.stop_threshold_percent',
  'imaging.read_attempts',
  'imaging.sector_size',
  'imaging.verify',
  'imaging.checksums',
  'imaging.priority',
];

/** Tuning settings, shown folded away under "Advanced". */
const ADVANCED = new Set(['imaging.cluster_sectors', 'imaging.direct_io', 'imaging.map_save_interval_seconds']);

/**
 * Settings that must be filled in while a switch is on, by the switch: e-mails without an address
 * would be turned on to do nothing.
 */
const REQUIRED_WHILE_ON: Readonly<Record<string, string>> = {
  'notifications.email_address': 'notifications.email_on_completion',
  'mqtt.broker_url': 'mqtt.enabled',
};

type FieldKind = 'checkbox' | 'select' | 'number' | 'text' | 'checkboxes' | 'secret';

export interface SettingField {
  key: string;
  /** The form field name: the key with dots replaced, so it is a plain identifier in HTML. */
  name: string;
  kind: FieldKind;
  /**
   * Never the value of a secret: those are write-only (empty, with `secretSet` saying whether one
   * exists). Credentials in URLs are masked (shownValue).
   */
  value: string | boolean | string[];
  secretSet: boolean;
  /**
   * The value in effect as shown (credentials masked), which a submitted value is compared with: a
   * masked URL sent back as shown is no change, and the settings service keeps the real one anyway.
   */
  current: unknown;
  options: string[];
  min: number | null;
  max: number | null;
  /** For text: the longest value (in characters) and the form it must have (the schema's regular expression). */
  maxLength: number | null;
  pattern: string | null;
  label: string;
  help: string;
  /** Where a value comes from that this page cannot override (or, when `notApplicable`, why nothing reads it), or null. */
  fixedBy: string | null;
  /** The setting does nothing in this mode (backups while the state is in PostgreSQL). */
  notApplicable: boolean;
  advanced: boolean;
}

interface LeafSchema {
  type?: string;
  enum?: unknown[];
  items?: { enum?: unknown[] };
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxLength?: number;
  pattern?: string;
  description?: string;
}

function fieldKind(schema: LeafSchema): FieldKind {
  if (schema.type === 'boolean') return 'checkbox';
  if (schema.type === 'array' && schema.items?.enum) return 'checkboxes';
  if (schema.enum) return 'select';
  if (schema.type === 'integer' || schema.type === 'number') return 'number';
  return 'text';
}

function displayValue(kind: FieldKind, value: unknown): string | boolean | string[] {
  if (kind === 'checkbox') return value === true;
  if (kind === 'checkboxes') return Array.isArray(value) ? value.map(String) : [];
  return value === undefined || value === null ? '' : String(value);
}

function fieldName(key: string): string {
  return key.replace(/\./g, '__');
}

/**
 * Where a value comes from, in the reader's language. The config loader names its layers in English
 * for logs and the API (`environment DISK2ISO_X`, `--set key`, `config file /path`, STORED_SOURCE, `default`);
 * the pages translate the kind and keep the name, which is code.
 */
function settingOrigin(i18n: I18n, source: string): string {
  const named = /^(environment|config file|--set) (.+)$/.exec(source);
  if (named?.[1] === 'environment') return i18n.t('config.origin.environment', { name: named[2] as string });
  if (named?.[1] === 'config file') return i18n.t('config.origin.file', { path: named[2] as string });
  if (named?.[1] === '--set') return i18n.t('config.origin.flag', { flag: `--set ${named[2] as string}` });
  if (source === STORED_SOURCE) return i18n.t('config.origin.stored');
  if (source === 'default') return i18n.t('config.origin.default');
  return source;
}

function lockText(i18n: I18n, lock: SettingLock | null): string | null {
  if (lock === null) return null;
  if (lock.by === 'cluster') return i18n.t('config.not_in_cluster');
  return lock.source === null ? i18n.t('config.server_only') : settingOrigin(i18n, lock.source);
}

export function sectionFields(config: Config, section: SettingsSection, i18n: I18n): SettingField[] {
  const rank = (key: string): number => (ORDER.includes(key) ? ORDER.indexOf(key) : ORDER.length);
  return settingLeaves()
    .filter((leaf) => leaf.path.startsWith(`${section}.`))
    .sort((a, b) => rank(a.path) - rank(b.path))
    .map((leaf) => {
      const schema = leaf.schema as LeafSchema;
      const secret = isSecretLeaf(leaf);
      const kind = secret ? 'secret' : fieldKind(schema);
      const current = getPath(config as unknown as Record<string, unknown>, leaf.path);
      const shown = shownValue(leaf, current);
      const lock = settingLock(config, leaf);
      const labelKey = `config.fields.${leaf.path}`;
      const helpKey = `config.help.${leaf.path}`;
      return {
        key: leaf.path,
        name: fieldName(leaf.path),
        kind,
        value: secret ? '' : displayValue(kind, shown),
        secretSet: secret && current !== undefined && current !== null && current !== '',
        current: secret ? null : shown,
        options: (kind === 'checkboxes' ? (schema.items?.enum ?? []) : (schema.enum ?? [])).map(String),
        min: schema.minimum ?? null,
        max: schema.maximum ?? null,
        maxLength: schema.maxLength ?? null,
        pattern: schema.pattern ?? null,
        label: i18n.has(labelKey) ? i18n.t(labelKey) : (schema.description ?? leaf.path),
        help: i18n.has(helpKey) ? i18n.t(helpKey) : '',
        fixedBy: lockText(i18n, lock),
        notApplicable: lock?.by === 'cluster',
        advanced: ADVANCED.has(leaf.path),
      };
    });
}

/** The fields showing what was submitted (a refused form comes back with what the user typed, not the values in effect). */
export function withSubmitted(fields: SettingField[], form: FormFields): SettingField[] {
  return fields.map((field) => {
    if (field.fixedBy !== null || field.kind === 'secret') return field;
    if (field.kind === 'checkbox') return { ...field, value: form.has(field.name) };
    if (field.kind === 'checkboxes') return { ...field, value: form.all(field.name) };
    return { ...field, value: form.all(field.name)[0] ?? '' };
  });
}

/**
 * The settings a submitted section form changes, typed as the schema wants, and a message per
 * field that does not parse. Unchanged values are left out, so saving a form never touches
 * settings the user did not edit. A checkbox that is not sent is unticked.
 */
export function parseSettingsForm(i18n: I18n, fields: SettingField[], form: FormFields): { changes: Record<string, unknown>; errors: Record<string, string> } {
  const changes: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const field of fields) {
    if (field.fixedBy !== null) continue;
    let value: unknown;
    switch (field.kind) {
      case 'checkbox':
        value = form.has(field.name);
        break;
      case 'checkboxes': {
        const chosen = form.all(field.name);
        if (chosen.length === 0 || chosen.some((option) => !field.options.includes(option))) {
          errors[field.key] = i18n.t('config.errors.choose_one');
          continue;
        }
        value = field.options.filter((option) => chosen.includes(option));
        break;
      }
      case 'select': {
        const chosen = form.one(field.name) ?? '';
        if (!field.options.includes(chosen)) {
          errors[field.key] = i18n.t('config.errors.choose_one');
          continue;
        }
        value = /^\d+$/.test(chosen) && field.options.every((option) => /^\d+$/.test(option)) ? Number(chosen) : chosen;
        break;
      }
      case 'number': {
        const text = form.one(field.name) ?? '';
        const number = /^-?\d{1,9}$/.test(text) ? Number(text) : NaN;
        if (Number.isNaN(number) || (field.min !== null && number < field.min) || (field.max !== null && number > field.max)) {
          errors[field.key] = i18n.t('config.errors.range', { min: field.min ?? '', max: field.max ?? '' });
          continue;
        }
        value = number;
        break;
      }
      case 'text': {
        const text = form.one(field.name) ?? '';
        if (field.maxLength !== null && [...text].length > field.maxLength) {
          errors[field.key] = i18n.t('config.errors.too_long', { max: field.maxLength });
          continue;
        }
        // The same expression the settings service checks, so the message can say in words what is expected.
        if (field.pattern !== null && !new RegExp(field.pattern, 'u').test(text)) {
          const key = `config.invalid.${field.key}`;
          errors[field.key] = i18n.has(key) ? i18n.t(key) : i18n.t('config.errors.format');
          continue;
        }
        value = text;
        break;
      }
      case 'secret': {
        // An empty secret field keeps the stored secret: the page never shows it, so it cannot send it back.
        const given = form.one(field.name) ?? '';
        if (given === '') continue;
        changes[field.key] = given;
        continue;
      }
    }
    if (JSON.stringify(value) !== JSON.stringify(field.current)) changes[field.key] = value;
  }
  for (const field of fields) {
    const switchKey = REQUIRED_WHILE_ON[field.key];
    const switchField = fields.find((candidate) => candidate.key === switchKey);
    if (switchField === undefined || errors[field.key] !== undefined) continue;
    const effective = (candidate: SettingField): unknown => (candidate.key in changes ? changes[candidate.key] : candidate.current);
    if (effective(switchField) === true && effective(field) === '')
      errors[field.key] = i18n.t('config.errors.required_while_on', { setting: switchField.label });
  }
  return { changes, errors };
}
