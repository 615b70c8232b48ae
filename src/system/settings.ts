import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isStrictlyInside } from '../archive/naming.js';
import { STORED_SOURCE, type SettingLeaf, assertValid, getPath, setPath, settingLeaves } from '../config/load.js';
import { ConfigSchema, type Config, type Settings } from '../config/schema.js';
import type { SettingsRepository } from '../db/settings-repository.js';
import type { JsonObject, JsonValue } from '../db/values.js';
import { ConflictError, DomainError, ValidationError } from '../errors.js';

/** Shown instead of a secret; sending it back in a PATCH keeps the secret unchanged. */
export const SECRET_MASK = '********';

/** Settings that are read once at start; changing them takes effect after a restart. */
const RESTART_KEYS = new Set([
  'server.host',
  'server.port',
  'server.socket',
  'jobs.max_running',
  'jobs.lease_seconds',
  'log.level',
  'security.trusted_proxies',
  'security.session_idle_minutes',
  'security.session_lifetime_hours',
  'security.max_sessions_per_user',
  'security.password_max_age_days',
  'security.token_lifetime_minutes',
]);
const SECTIONS = Object.keys(ConfigSchema.properties) as Array<keyof Settings>;
/**
 * Settings only someone on the server may set (config file, environment, flags): they bound what
 * the web interface and the API may do, so those must not widen them.
 */
const SERVER_ONLY_KEYS = new Set(['storage.output_roots']);

export interface SettingsView {
  settings: Settings;
  /** Where every setting's value comes from: `default`, `config file …`, `stored settings`, `environment …`, `--set …`. */
  sources: Record<string, string>;
  /** Settings fixed by the environment or command-line flags; the API cannot change them. */
  fixed: string[];
  restart_required: string[];
  data_dir: string;
  config_file: string | null;
}

export interface SettingsService {
  view(): SettingsView;
  /** Validates, stores and applies a partial settings tree; returns the new view and what needs a restart. */
  update(patch: JsonObject, updatedBy?: string | null): Promise<SettingsView>;
}

export type SettingChangeSink = (key: string, from: unknown, to: unknown, restartRequired: boolean) => void;

/** A leaf holding a credential: its value is never shown (notification passwords, tokens, …). */
export function isSecretLeaf(leaf: SettingLeaf): boolean {
  const schema = leaf.schema as SettingLeaf['schema'] & { writeOnly?: boolean; format?: string };
  return schema.writeOnly === true || schema.format === 'password' || /(password|secret|token|api_key)$/i.test(leaf.path);
}

/** A copy of the settings with every non-empty secret replaced by SECRET_MASK. */
export function maskSecrets<T extends object>(settings: T, leaves: readonly SettingLeaf[]): T {
  const copy = structuredClone(settings);
  for (const leaf of leaves) {
    if (!isSecretLeaf(leaf)) continue;
    const value = getPath(copy as Record<string, unknown>, leaf.path);
    if (value !== undefined && value !== null && value !== '') setPath(copy as Record<string, unknown>, leaf.path, SECRET_MASK);
  }
  return copy;
}

/** The settings part of a resolved config (without data_dir and the bookkeeping fields). */
function settingsOf(config: Config): Settings {
  return Object.fromEntries(SECTIONS.map((section) => [section, structuredClone(config[section])])) as unknown as Settings;
}

function isFixedSource(source: string | undefined): source is string {
  return source !== undefined && (source.startsWith('environment ') || source.startsWith('--set '));
}

/**
 * Why a setting cannot be changed at run time (the web form shows it read-only with this), or null
 * when it can: the environment variable or flag that sets it, or the server's own files for the
 * settings only the server may set.
 */
export function settingFixedBy(config: Config, key: string): string | null {
  const source = config.setting_sources[key];
  if (isFixedSource(source)) return source;
  if (SERVER_ONLY_KEYS.has(key)) return 'the config file, environment or flags on the server';
  return null;
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
 * A run-time change may move the output directory only into the data dir or a folder of
 * `storage.output_roots`, checked after symlinks, so an API caller cannot point image writes (and
 * archive deletions) at /etc or anywhere else on the host.
 */
async function assertAllowedOutputDir(config: Config, value: string): Promise<void> {
  const target = await realPathAsFarAsItExists(effectiveValue(config, 'storage.output_dir', value) as string);
  const roots = [config.data_dir, ...config.storage.output_roots.map((root) => resolve(config.data_dir, root))];
  const realRoots = await Promise.all(roots.map(realPathAsFarAsItExists));
  if (!realRoots.some((root) => target === root || isStrictlyInside(root, target))) {
    throw new ValidationError(
      `storage.output_dir ${target} is outside the folders images may go to (${roots.join(', ')}); an administrator on the server can add one to storage.output_roots`,
      [{ key: 'storage.output_dir', allowed: roots }],
      'output_dir_not_allowed',
    );
  }
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
    if (!isBranch) throw new ValidationError(`unknown setting ${prefix}`, [{ key: prefix }], 'unknown_setting');
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      throw new ValidationError(`${prefix || 'settings'} must be an object`, [{ key: prefix }], 'invalid_setting');
    }
    for (const [key, child] of Object.entries(node)) walk(child, prefix === '' ? key : `${prefix}.${key}`);
  };
  walk(patch, '');
  return flat;
}

/**
 * Puts stored settings (the settings table) into a config loaded without them, with the same
 * precedence loadConfig gives them: above defaults and the config file, below the environment
 * and flags. A stored value that no longer validates (the schema changed) is skipped and reported.
 */
export function applyStoredSettings(config: Config, stored: Record<string, JsonValue>, onSkipped: (key: string, reason: string) => void): void {
  const leaves = settingLeaves();
  for (const [key, value] of Object.entries(stored)) {
    if (!leaves.some((leaf) => leaf.path === key)) {
      onSkipped(key, 'not a known setting');
      continue;
    }
    if (isFixedSource(config.setting_sources[key])) continue;
    const candidate = settingsOf(config);
    setPath(candidate as unknown as Record<string, unknown>, key, value);
    try {
      assertValid(candidate, new Map([[key, STORED_SOURCE]]));
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

  const view = (restartRequired: string[] = []): SettingsView => ({
    settings: maskSecrets(settingsOf(config), leaves),
    sources: Object.fromEntries(leaves.map((leaf) => [leaf.path, config.setting_sources[leaf.path] ?? 'default'])),
    fixed: leaves.filter((leaf) => settingFixedBy(config, leaf.path) !== null).map((leaf) => leaf.path),
    restart_required: restartRequired,
    data_dir: config.data_dir,
    config_file: config.config_file,
  });

  return {
    view: () => view(),

    async update(patch, updatedBy = null) {
      const changes = flatten(patch, leaves);
      if (changes.size === 0) throw new ValidationError('give at least one setting to change', [{ key: '' }], 'invalid_setting');
      for (const key of [...changes.keys()]) {
        const leaf = leaves.find((candidate) => candidate.path === key);
        if (leaf && isSecretLeaf(leaf) && changes.get(key) === SECRET_MASK) changes.delete(key);
      }
      for (const key of changes.keys()) {
        if (SERVER_ONLY_KEYS.has(key)) {
          throw new ConflictError(`${key} can only be set on the server (config file, environment or flags)`, { key }, 'setting_server_only');
        }
        const source = config.setting_sources[key];
        if (isFixedSource(source)) {
          throw new ConflictError(`${key} is set by ${source} and cannot be changed here`, { key, source }, 'setting_fixed');
        }
      }
      const candidate = settingsOf(config);
      for (const [key, value] of changes) setPath(candidate as unknown as Record<string, unknown>, key, value);
      assertValid(candidate, new Map([...changes.keys()].map((key) => [key, 'the request'])));
      const outputDir = changes.get('storage.output_dir');
      if (typeof outputDir === 'string') await assertAllowedOutputDir(config, outputDir);

      if (changes.size > 0) await deps.settings.set(Object.fromEntries(changes), updatedBy);
      const restartRequired: string[] = [];
      for (const [key, value] of changes) {
        const before = getPath(config as unknown as Record<string, unknown>, key);
        setPath(config as unknown as Record<string, unknown>, key, effectiveValue(config, key, value));
        config.setting_sources[key] = STORED_SOURCE;
        const needsRestart = RESTART_KEYS.has(key);
        if (needsRestart) restartRequired.push(key);
        const leaf = leaves.find((candidate) => candidate.path === key);
        const secret = leaf !== undefined && isSecretLeaf(leaf);
        deps.onChange?.(key, secret ? SECRET_MASK : before, secret ? SECRET_MASK : getPath(config as unknown as Record<string, unknown>, key), needsRestart);
      }
      return view(restartRequired);
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
  return { ...(strip(JSON.parse(JSON.stringify(ConfigSchema))) as object), description: 'Any part of the settings tree, e.g. {"imaging": {"read_attempts": 3}}' };
}
