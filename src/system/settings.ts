import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isStrictlyInside } from '../archive/naming.js';
import { STORED_SOURCE, type SettingLeaf, assertValid, getPath, setPath, settingLeaves } from '../config/load.js';
import { type Config, ConfigSchema, type Settings } from '../config/schema.js';
import type { SettingsRepository } from '../db/settings-repository.js';
import { ConflictError, DomainError, ValidationError } from '../errors.js';
import type { JsonObject, JsonValue } from '../json.js';

/**
 * Shown instead of a secret and of the credentials in a URL; a value sent back exactly as it was
 * shown keeps what it stands for.
 * @internal exported for its tests
 */
export const SECRET_MASK = '********';

/** Settings that are read once at start; changing them takes effect after a restart. */
const RESTART_KEYS = new Set([
  'jobs.max_running',
  'jobs.lease_seconds',
  'log.level',
  'security.session_idle_minutes',
  'security.session_lifetime_hours',
  'security.max_sessions_per_user',
  'security.password_max_age_days',
  'security.token_lifetime_minutes',
]);
const SECTIONS = Object.keys(ConfigSchema.properties) as Array<keyof Settings>;

interface SettingsView {
  settings: Settings;
  /** Where every setting's value comes from: `default`, `config file …`, `stored settings`, `environment …`, `--set …`. */
  sources: Record<string, string>;
  /** Settings the API cannot change: fixed by the environment or command-line flags, or set on the server only. */
  fixed: string[];
  restart_required: string[];
  data_dir: string;
  config_file: string | null;
}

export interface SettingsService {
  view(): SettingsView;
  /** Validates, stores and applies a partial settings tree; returns the new view and what needs a restart. */
  update(patch: JsonObject, updatedBy: string | null): Promise<SettingsView>;
  /** Runs every check `update` runs, changing nothing: a form shows all its refusals at once, those of values it could not parse included. */
  check(patch: JsonObject): Promise<void>;
  /**
   * Applies what another process stored since (`disk2iso config set`), with the same checks and
   * change reports as `update`; a stored value that no longer passes them is left out. Returns the
   * keys it applied.
   */
  syncStored(): Promise<string[]>;
}

/** Told of each applied change, with the values as they may be shown (shownValue), never a secret or a URL's credentials. */
export type SettingChangeSink = (key: string, from: unknown, to: unknown, restartRequired: boolean) => void;

/** A leaf holding a credential: its value is never shown (notification passwords, tokens, …). */
export function isSecretLeaf(leaf: SettingLeaf): boolean {
  const { schema } = leaf;
  return schema.writeOnly === true || schema.format === 'password' || /(password|secret|token|api_key)$/i.test(leaf.path);
}

/**
 * A leaf only the server's own configuration may set: `readOnly` in ConfigSchema.
 * @internal exported for its tests
 */
export function isServerOnlyLeaf(leaf: SettingLeaf): boolean {
  return leaf.schema.readOnly === true;
}

/**
 * A URL as `scheme://authority path ?query #fragment`, split by hand rather than with URL so the
 * rest of the text is shown exactly as stored. As a URL parser does, any run of slashes and
 * backslashes after the scheme is skipped; the authority then runs to the first / ? or #, never
 * shorter than a parser takes it (which also stops at a backslash), so the user info, up to its
 * last @, is never less than what a client would send as credentials. The URL settings' own
 * pattern requires the `//`, so a URL without it never reaches a client.
 */
const URL_PARTS = /^([a-z][a-z0-9+.-]*:[/\\]{2,})([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$/is;

/** `text` with `replace` applied to each credential of a URL: its user info and every query value (or bare query part). */
function mapUrlCredentials(text: string, replace: (credential: string) => string): string {
  const parts = URL_PARTS.exec(text);
  if (parts === null) return text;
  const [, scheme = '', authority = '', path = '', query, fragment = ''] = parts;
  const at = authority.lastIndexOf('@');
  const host = at === -1 ? authority : `${replace(authority.slice(0, at))}${authority.slice(at)}`;
  const pairs = query?.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    return eq === -1 ? replace(pair) : `${pair.slice(0, eq + 1)}${replace(pair.slice(eq + 1))}`;
  });
  return `${scheme}${host}${path}${pairs === undefined ? '' : `?${pairs.join('&')}`}${fragment}`;
}

/**
 * `https://user:pass@host/hook?token=abc` as `https://********@host/hook?token=********`. Query
 * values are all masked, whatever their names: webhooks carry their tokens under any name.
 */
export function maskUrlCredentials(text: string): string {
  return mapUrlCredentials(text, (credential) => (credential === '' ? '' : SECRET_MASK));
}

/** True when a value holds SECRET_MASK where a URL's credential goes: a shown value edited instead of typed in full. */
function holdsMaskedCredential(value: unknown): boolean {
  const texts = typeof value === 'string' ? [value] : Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
  let found = false;
  for (const text of texts) {
    mapUrlCredentials(text, (credential) => {
      found ||= credential.includes(SECRET_MASK);
      return credential;
    });
  }
  return found;
}

/**
 * A setting's value as it may be shown or logged anywhere (API, pages, application log, stdout):
 * a set secret as SECRET_MASK, and the credentials of any URL in it masked.
 */
export function shownValue(leaf: SettingLeaf, value: unknown): unknown {
  if (isSecretLeaf(leaf)) return value === undefined || value === null || value === '' ? value : SECRET_MASK;
  if (typeof value === 'string') return maskUrlCredentials(value);
  if (Array.isArray(value)) return value.map((item: unknown) => (typeof item === 'string' ? maskUrlCredentials(item) : item));
  return structuredClone(value);
}

/**
 * A copy of the settings as they may be shown: every leaf through shownValue.
 * @internal exported for its tests
 */
export function maskSecrets<T extends object>(settings: T, leaves: readonly SettingLeaf[]): T {
  const copy = structuredClone(settings);
  for (const leaf of leaves) {
    const value = getPath(copy as Record<string, unknown>, leaf.path);
    if (value !== undefined) setPath(copy as Record<string, unknown>, leaf.path, shownValue(leaf, value));
  }
  return copy;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The settings part of a resolved config (without data_dir and the bookkeeping fields). */
function settingsOf(config: Config): Settings {
  return Object.fromEntries(SECTIONS.map((section) => [section, structuredClone(config[section])])) as unknown as Settings;
}

function isFixedSource(source: string | undefined): source is string {
  return source !== undefined && (source.startsWith('environment ') || source.startsWith('--set '));
}

/**
 * Why a setting cannot be changed at run time: it is server-only (and may also be set by the
 * environment or a flag, `source`), or the environment variable or flag `source` sets it.
 */
export type SettingLock = { by: 'server'; source: string | null } | { by: 'source'; source: string } | { by: 'cluster' };

/**
 * Settings nothing reads while the state is in PostgreSQL (database.url): backups copy the embedded
 * file, so there are no scheduled ones and no copies before migrations; PostgreSQL is backed up
 * with its own tools.
 */
function appliesOnlyToEmbedded(config: Config, leaf: SettingLeaf): boolean {
  return config.database.url !== null && leaf.path.startsWith('backup.');
}

/**
 * The one rule for what may change at run time, which the API, the pages (through the settings
 * service) and stored settings all follow: null when the setting may change, else why not.
 */
export function settingLock(config: Config, leaf: SettingLeaf): SettingLock | null {
  const source = config.setting_sources[leaf.path];
  const fixedBy = isFixedSource(source) ? source : null;
  if (isServerOnlyLeaf(leaf)) return { by: 'server', source: fixedBy };
  if (appliesOnlyToEmbedded(config, leaf)) return { by: 'cluster' };
  return fixedBy === null ? null : { by: 'source', source: fixedBy };
}

function lockError(key: string, lock: SettingLock): ConflictError {
  if (lock.by === 'cluster')
    return new ConflictError(
      'backup_not_embedded',
      `${key} does not apply while the state is in PostgreSQL (database.url): back it up with pg_dump or base backups`,
      { key },
    );
  if (lock.by === 'source')
    return new ConflictError('setting_fixed', `${key} is set by ${lock.source} and cannot be changed here`, { key, source: lock.source });
  const setBy = lock.source === null ? '' : `; here it is set by ${lock.source}`;
  return new ConflictError('setting_server_only', `${key} can only be set on the server (config file, environment or flags)${setBy}`, { key });
}

/** What a stored value means at run time: a relative output directory is relative to the data dir. */
function effectiveValue(config: Config, key: string, value: unknown): unknown {
  if (key !== 'storage.output_dir' || typeof value !== 'string') return structuredClone(value);
  return value === '' ? join(config.data_dir, 'output') : resolve(config.data_dir, value);
}

/** The real path of `path`, following symlinks as far as it exists; the missing rest is appended as given. */
async function realPathAsFarAsItExists(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    const parent = dirname(path);
    if (parent === path) return path;
    return join(await realPathAsFarAsItExists(parent), basename(path));
  }
}

/**
 * A run-time value (a change, or one stored earlier) may put the output directory only into the
 * data dir or a folder of `storage.output_roots`, checked after symlinks, so an API caller cannot
 * point image writes (and archive deletions and downloads) at /etc or anywhere else on the host.
 */
async function assertAllowedOutputDir(config: Config, value: string): Promise<void> {
  const target = await realPathAsFarAsItExists(effectiveValue(config, 'storage.output_dir', value) as string);
  const roots = [config.data_dir, ...config.storage.output_roots.map((root) => resolve(config.data_dir, root))];
  const realRoots = await Promise.all(roots.map(realPathAsFarAsItExists));
  if (!realRoots.some((root) => target === root || isStrictlyInside(root, target))) {
    throw new ValidationError(
      'output_dir_not_allowed',
      `storage.output_dir ${target} is outside the folders images may go to (${roots.join(', ')}); an administrator on the server can add one to storage.output_roots`,
      [{ key: 'storage.output_dir', allowed: roots }],
    );
  }
}

/**
 * Pairs of settings where the first must stay below the second. A change to either is checked
 * against the other's value in effect, so a form (or API call) changing one alone is checked too.
 */
const ORDERED_PAIRS: ReadonlyArray<{ lower: string; upper: string }> = [{ lower: 'storage.warn_threshold_percent', upper: 'storage.stop_threshold_percent' }];

function orderRefusal(candidate: Record<string, unknown>, changes: ReadonlyMap<string, JsonValue>): ValidationError | null {
  const details = ORDERED_PAIRS.filter(({ lower, upper }) => changes.has(lower) || changes.has(upper))
    .map(({ lower, upper }) => ({ lower, upper, below: getPath(candidate, lower), above: getPath(candidate, upper) }))
    .filter(({ below, above }) => typeof below === 'number' && typeof above === 'number' && below >= above)
    .map(({ lower, upper, below, above }) => ({ key: changes.has(lower) ? lower : upper, lower, upper, lower_value: below, upper_value: above }));
  if (details.length === 0) return null;
  const message = details
    .map((entry) => `${entry.lower} (${String(entry.lower_value)}) must be below ${entry.upper} (${String(entry.upper_value)})`)
    .join('; ');
  return new ValidationError('setting_order', message, details);
}

/**
 * Every reason a candidate change is refused, all at once: a form shows each at its field rather
 * than one per attempt. One refusal keeps its own code; several are `invalid_setting`, with each
 * detail carrying the code of the check it failed.
 */
async function assertAcceptable(config: Config, candidate: Settings, changes: ReadonlyMap<string, JsonValue>): Promise<void> {
  const refusals: ValidationError[] = [];
  try {
    assertValid(candidate, new Map([...changes.keys()].map((key) => [key, 'the request'])));
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    refusals.push(error);
  }
  const order = orderRefusal(candidate as unknown as Record<string, unknown>, changes);
  if (order !== null) refusals.push(order);
  const outputDir = changes.get('storage.output_dir');
  if (typeof outputDir === 'string') {
    try {
      await assertAllowedOutputDir(config, outputDir);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      refusals.push(error);
    }
  }
  const [first] = refusals;
  if (first === undefined) return;
  if (refusals.length === 1) throw first;
  const details = refusals.flatMap((refusal) => detailList(refusal).map((entry) => ({ ...entry, code: refusal.code })));
  throw new ValidationError('invalid_setting', refusals.map((refusal) => refusal.message).join('; '), details);
}

function detailList(error: DomainError): Array<Record<string, unknown>> {
  if (error.details === undefined) return [];
  return Array.isArray(error.details) ? error.details : [error.details];
}

/** Leaves named by a nested partial settings object, refusing keys the schema does not know. */
function flatten(patch: JsonObject, leaves: readonly SettingLeaf[]): Map<string, JsonValue> {
  const known = new Set(leaves.map((leaf) => leaf.path));
  const flat = new Map<string, JsonValue>();
  const walk = (node: JsonValue, prefix: string): void => {
    if (known.has(prefix)) {
      flat.set(prefix, node);
      return;
    }
    const isBranch = prefix === '' || leaves.some((leaf) => leaf.path.startsWith(`${prefix}.`));
    if (!isBranch) throw new ValidationError('unknown_setting', `unknown setting ${prefix}`, [{ key: prefix }]);
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      throw new ValidationError('invalid_setting', `${prefix || 'settings'} must be an object`, [{ key: prefix }]);
    }
    for (const [key, child] of Object.entries(node)) walk(child, prefix === '' ? key : `${prefix}.${key}`);
  };
  walk(patch, '');
  return flat;
}

/** Throws unless a stored value would pass the settings service's checks today (the schema, the folders images may go to). */
async function checkStoredValue(config: Config, key: string, value: JsonValue): Promise<void> {
  const candidate = settingsOf(config);
  setPath(candidate as unknown as Record<string, unknown>, key, value);
  assertValid(candidate, new Map([[key, STORED_SOURCE]]));
  if (key === 'storage.output_dir' && typeof value === 'string') await assertAllowedOutputDir(config, value);
}

/**
 * Puts stored settings (the settings table) into a config loaded without them: above defaults and
 * the config file, below the environment and flags. A stored value the settings service would
 * refuse today is skipped and reported: one that no longer validates (the schema changed), one of
 * a setting that became server-only (an older version stored it through the API), an output
 * directory outside the folders now allowed.
 */
export async function applyStoredSettings(config: Config, stored: Record<string, JsonValue>, onSkipped: (key: string, reason: string) => void): Promise<void> {
  const leaves = settingLeaves();
  for (const [key, value] of Object.entries(stored)) {
    const leaf = leaves.find((candidate) => candidate.path === key);
    if (leaf === undefined) {
      onSkipped(key, 'not a known setting');
      continue;
    }
    const lock = settingLock(config, leaf);
    // A backup setting stored while the state was embedded waits, unread, for a return to SQLite.
    if (lock?.by === 'source' || lock?.by === 'cluster') continue;
    if (lock?.by === 'server') {
      onSkipped(key, 'it can only be set on the server now (config file, environment or flags); put it there if it is still wanted');
      continue;
    }
    try {
      await checkStoredValue(config, key, value);
    } catch (error) {
      onSkipped(key, error instanceof DomainError ? error.message : String(error));
      continue;
    }
    setPath(config as unknown as Record<string, unknown>, key, effectiveValue(config, key, value));
    config.setting_sources[key] = STORED_SOURCE;
  }
}

export function createSettingsService(deps: { config: Config; settings: SettingsRepository; onChange?: SettingChangeSink }): SettingsService {
  const { config } = deps;
  const leaves = settingLeaves();
  /** The leaf of a key flatten() accepted (so one exists). */
  const leafOf = (key: string): SettingLeaf => leaves.find((candidate) => candidate.path === key) as SettingLeaf;

  const view = (restartRequired: string[] = []): SettingsView => ({
    settings: maskSecrets(settingsOf(config), leaves),
    sources: Object.fromEntries(leaves.map((leaf) => [leaf.path, config.setting_sources[leaf.path] ?? 'default'])),
    fixed: leaves.filter((leaf) => settingLock(config, leaf) !== null).map((leaf) => leaf.path),
    restart_required: restartRequired,
    data_dir: config.data_dir,
    config_file: config.config_file,
  });

  /** The changes a patch makes, each checked: throws the refusal a form shows at its fields. */
  const checkedChanges = async (patch: JsonObject): Promise<Map<string, JsonValue>> => {
    const changes = flatten(patch, leaves);
    if (changes.size === 0) throw new ValidationError('invalid_setting', 'give at least one setting to change', [{ key: '' }]);
    for (const [key, value] of [...changes]) {
      const leaf = leafOf(key);
      const current = getPath(config as unknown as Record<string, unknown>, key);
      const shown = shownValue(leaf, current);
      // What GET or the page showed, sent back as it was, keeps the value behind the mask.
      if ((isSecretLeaf(leaf) && value === SECRET_MASK) || (sameJson(value, shown) && !sameJson(shown, current))) {
        changes.delete(key);
        continue;
      }
      const lock = settingLock(config, leaf);
      if (lock !== null) throw lockError(key, lock);
      if (holdsMaskedCredential(value)) {
        const message = `${key} holds ${SECRET_MASK} where a credential goes; give the whole value again, credentials included`;
        throw new ValidationError('masked_value', message, [{ key, message }]);
      }
    }
    const candidate = settingsOf(config);
    for (const [key, value] of changes) setPath(candidate as unknown as Record<string, unknown>, key, value);
    await assertAcceptable(config, candidate, changes);
    return changes;
  };

  return {
    view: () => view(),

    check: async (patch) => {
      await checkedChanges(patch);
    },

    async update(patch, updatedBy) {
      const changes = await checkedChanges(patch);
      if (changes.size > 0) await deps.settings.set(Object.fromEntries(changes), updatedBy);
      const restartRequired: string[] = [];
      for (const [key, value] of changes) {
        const before = getPath(config as unknown as Record<string, unknown>, key);
        setPath(config as unknown as Record<string, unknown>, key, effectiveValue(config, key, value));
        config.setting_sources[key] = STORED_SOURCE;
        const needsRestart = RESTART_KEYS.has(key);
        if (needsRestart) restartRequired.push(key);
        const leaf = leafOf(key);
        deps.onChange?.(key, shownValue(leaf, before), shownValue(leaf, getPath(config as unknown as Record<string, unknown>, key)), needsRestart);
      }
      return view(restartRequired);
    },

    async syncStored() {
      const applied: string[] = [];
      for (const { key, value } of await deps.settings.list()) {
        const leaf = leaves.find((candidate) => candidate.path === key);
        if (leaf === undefined || settingLock(config, leaf) !== null) continue;
        const before = getPath(config as unknown as Record<string, unknown>, key);
        const next = effectiveValue(config, key, value);
        if (sameJson(before, next)) continue;
        try {
          await checkStoredValue(config, key, value);
        } catch (error) {
          if (error instanceof DomainError) continue;
          throw error;
        }
        setPath(config as unknown as Record<string, unknown>, key, next);
        config.setting_sources[key] = STORED_SOURCE;
        deps.onChange?.(key, shownValue(leaf, before), shownValue(leaf, next), RESTART_KEYS.has(key));
        applied.push(key);
      }
      return applied;
    },
  };
}

/** The partial settings tree PATCH /system/config accepts: the config schema with nothing required and no defaults. */
export function partialSettingsSchema(): object {
  const strip = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(strip);
    if (typeof node !== 'object' || node === null) return node;
    const copy: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === 'default' || key === 'required') continue;
      copy[key] = strip(value);
    }
    return copy;
  };
  return {
    ...(strip(JSON.parse(JSON.stringify(ConfigSchema))) as object),
    description: 'Any part of the settings tree, e.g. {"imaging": {"read_attempts": 3}}',
  };
}
