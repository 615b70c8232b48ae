import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Value from 'typebox/value';
import { ValidationError, errorMessage } from '../errors.js';
import { type Config, ConfigSchema, type Settings } from './schema.js';

/** A leaf of the settings tree: `imaging.read_attempts` and the JSON Schema that governs it. */
export interface SettingLeaf {
  path: string;
  schema: JsonSchemaNode;
  envName: string;
}

interface JsonSchemaNode {
  type?: string;
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  /** A nullable setting (database.url): null or a value of the other schema. */
  anyOf?: JsonSchemaNode[];
  enum?: unknown[];
  description?: string;
  /** Set on the server only (see ConfigSchema). */
  readOnly?: boolean;
  writeOnly?: boolean;
  format?: string;
}

/** Older, shorter environment names for the most common settings (README, configuration). */
const ENV_ALIASES: Record<string, string> = {
  DISK2ISO_OUTPUT_DIR: 'storage.output_dir',
  DISK2ISO_EXTRA_DEVICES: 'drives.extra',
};
/** Variables read before the settings (they decide where the settings come from). */
const ENV_BOOTSTRAP = new Set(['DISK2ISO_DATA_DIR', 'DISK2ISO_CONFIG']);

export function settingLeaves(): SettingLeaf[] {
  const leaves: SettingLeaf[] = [];
  const walk = (node: JsonSchemaNode, prefix: string): void => {
    if (node.type === 'object' && node.properties) {
      for (const [key, child] of Object.entries(node.properties)) walk(child, prefix ? `${prefix}.${key}` : key);
      return;
    }
    leaves.push({ path: prefix, schema: node, envName: `DISK2ISO_${prefix.replace(/\./g, '_').toUpperCase()}` });
  };
  walk(ConfigSchema as unknown as JsonSchemaNode, '');
  return leaves;
}

/** The package root, found from this file whether it runs from src/ (tsx) or dist/src/ (compiled). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('disk2iso: cannot find its package.json');
    dir = parent;
  }
  return dir;
}

export interface LoadConfigOptions {
  /** --data-dir */
  dataDir?: string | undefined;
  /** --config */
  configFile?: string | undefined;
  /** --set key=value pairs, applied last. */
  overrides?: string[] | undefined;
  env?: NodeJS.ProcessEnv;
}

type Layer = { source: string; values: Record<string, unknown> };

/**
 * Settings an older version had and this one dropped: still accepted (and ignored) in a config
 * file, the environment and --set, so an upgrade never stops the service from starting. Their
 * stored rows are removed by a migration (0012).
 * - imaging.compression: only `none` was ever allowed and nothing read it; images are always raw.
 * - notifications.webhook_enabled and webhook_url: they sent nothing; webhooks are endpoints now, each
 *   with its own secret and events (migration 0011 turned a stored URL into one; a URL in a config
 *   file is added on the configuration page, since its secret must be shown once).
 */
const RETIRED_SETTINGS: ReadonlySet<string> = new Set(['imaging.compression', 'notifications.webhook_enabled', 'notifications.webhook_url']);
const retiredEnvName = (path: string): string => `DISK2ISO_${path.replace(/\./g, '_').toUpperCase()}`;

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const root = packageRoot();
  const inCheckout = existsSync(join(root, '.git'));
  const dataDir = resolve(options.dataDir ?? env.DISK2ISO_DATA_DIR ?? (inCheckout ? join(root, 'data') : '/var/lib/disk2iso'));

  const explicitConfig = options.configFile ?? env.DISK2ISO_CONFIG;
  const implicitConfig = join(dataDir, 'config.json');
  const configFile = explicitConfig ? resolve(explicitConfig) : existsSync(implicitConfig) ? implicitConfig : null;

  const leaves = settingLeaves();
  const layers: Layer[] = [];
  if (configFile) layers.push({ source: `config file ${configFile}`, values: flattenFile(configFile, leaves) });
  layers.push(...envLayers(env, leaves));
  for (const assignment of options.overrides ?? []) layers.push(overrideLayer(assignment, leaves));

  const settings = Value.Default(ConfigSchema, {}) as Settings;
  const sourceOf = new Map<string, string>();
  for (const layer of layers) {
    for (const [path, value] of Object.entries(layer.values)) {
      setPath(settings as unknown as Record<string, unknown>, path, value);
      sourceOf.set(path, layer.source);
    }
  }
  assertValid(settings, sourceOf);
  assertClusterTiming(settings, sourceOf);

  const outputDir = settings.storage.output_dir === '' ? join(dataDir, 'output') : resolve(dataDir, settings.storage.output_dir);
  const backupDir = settings.backup.dir === '' ? join(dataDir, 'backups') : resolve(dataDir, settings.backup.dir);
  return {
    ...settings,
    storage: { ...settings.storage, output_dir: outputDir },
    backup: { ...settings.backup, dir: backupDir },
    cluster: { ...settings.cluster, node_name: settings.cluster.node_name === '' ? nodeNameOf(hostname()) : settings.cluster.node_name },
    data_dir: dataDir,
    config_file: configFile,
    in_checkout: inCheckout,
    setting_sources: Object.fromEntries(sourceOf),
  };
}

/**
 * How `setting_sources` names values that came from the settings stored in the database; those are
 * put in by applyStoredSettings (src/system/settings.ts), the one place that applies run-time changes.
 */
export const STORED_SOURCE = 'stored settings';

/** Validates a complete settings object, naming the first bad key and where it came from. */
export function assertValid(settings: unknown, sourceOf: Map<string, string> = new Map()): void {
  const errors = [...Value.Errors(ConfigSchema, settings)];
  if (errors.length === 0) return;
  const details = errors
    // A nullable setting's value fails both `null` and the other schema; the other one says what is wrong.
    .filter((error) => error.keyword !== 'boolean' && error.keyword !== 'anyOf' && !(error.keyword === 'type' && error.params.type === 'null'))
    .map((error) => {
      const key = error.instancePath
        .replace(/^\//, '')
        .replace(/\//g, '.')
        .replace(/\.\d+$/, '');
      const source = sourceOf.get(key);
      return { key, message: error.message, ...(source ? { source } : {}) };
    });
  const first = details[0] ?? { key: '', message: 'invalid configuration' };
  const from = 'source' in first ? ` (from ${String(first.source)})` : '';
  throw new ValidationError('invalid_config', `config: ${first.key || '(root)'} ${first.message}${from}`, details);
}

/** A node is called offline only after it missed a heartbeat: a shorter limit would flag every node between two beats. */
function assertClusterTiming(settings: Settings, sourceOf: Map<string, string>): void {
  const { heartbeat_seconds: heartbeat, offline_after_seconds: offlineAfter } = settings.cluster;
  if (offlineAfter > heartbeat) return;
  const key = 'cluster.offline_after_seconds';
  const source = sourceOf.get(key) ?? sourceOf.get('cluster.heartbeat_seconds');
  throw new ValidationError(
    'invalid_config',
    `config: ${key} (${offlineAfter}) must exceed cluster.heartbeat_seconds (${heartbeat})${source ? ` (from ${source})` : ''}`,
    [{ key, message: 'must exceed cluster.heartbeat_seconds', ...(source ? { source } : {}) }],
  );
}

/**
 * The host name as a node name: its first label, lower-cased, with anything but letters, digits and
 * hyphens made a hyphen (cluster.node_name's rule); `node` when nothing is left.
 * @internal exported for its tests
 */
export function nodeNameOf(host: string): string {
  const name = (host.split('.')[0] ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63);
  return name === '' ? 'node' : name;
}

function flattenFile(file: string, leaves: SettingLeaf[]): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ValidationError('invalid_config', `config: cannot read ${file}: ${errorMessage(error)}`);
  }
  const known = new Set(leaves.map((leaf) => leaf.path));
  const flat: Record<string, unknown> = {};
  const walk = (node: unknown, prefix: string): void => {
    if (prefix !== '' && known.has(prefix)) {
      flat[prefix] = node;
      return;
    }
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      throw new ValidationError('invalid_config', `config: ${prefix || '(root)'} must be an object (in ${file})`, [{ key: prefix }]);
    }
    for (const [key, child] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (RETIRED_SETTINGS.has(path)) continue;
      if (!known.has(path) && ![...known].some((leaf) => leaf.startsWith(`${path}.`))) {
        throw new ValidationError('invalid_config', `config: unknown key ${path} (in ${file})`, [{ key: path }]);
      }
      walk(child, path);
    }
  };
  walk(parsed, '');
  return flat;
}

function envLayers(env: NodeJS.ProcessEnv, leaves: SettingLeaf[]): Layer[] {
  const byName = new Map(leaves.map((leaf) => [leaf.envName, leaf]));
  const layers: Layer[] = [];
  const retired = new Set([...RETIRED_SETTINGS].map(retiredEnvName));
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('DISK2ISO_') || raw === undefined || ENV_BOOTSTRAP.has(name) || retired.has(name)) continue;
    const leaf = byName.get(name) ?? leaves.find((candidate) => candidate.path === ENV_ALIASES[name]);
    if (!leaf) throw new ValidationError('invalid_config', `config: unknown environment variable ${name}`, [{ key: name }]);
    layers.push({ source: `environment ${name}`, values: { [leaf.path]: coerce(raw, leaf) } });
  }
  return layers;
}

function overrideLayer(assignment: string, leaves: SettingLeaf[]): Layer {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ValidationError('invalid_config', `config: --set expects KEY=VALUE, got "${assignment}"`);
  const key = assignment.slice(0, eq);
  if (RETIRED_SETTINGS.has(key)) return { source: `--set ${key}`, values: {} };
  const leaf = leaves.find((candidate) => candidate.path === key);
  if (!leaf) throw new ValidationError('invalid_config', `config: unknown key ${key} (in --set)`, [{ key }]);
  return { source: `--set ${key}`, values: { [key]: coerce(assignment.slice(eq + 1), leaf) } };
}

/**
 * Turns a string from the environment or a flag into the type the schema wants. A value that does
 * not convert is passed through unchanged so validation names it with the schema's own message.
 */
export function coerce(raw: string, leaf: SettingLeaf): unknown {
  // An empty variable or `--set key=` puts a nullable setting back to null.
  if (raw.trim() === '' && leaf.schema.anyOf?.some((option) => option.type === 'null')) return null;
  switch (leaf.schema.type) {
    case 'integer':
    case 'number':
      return /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
    case 'boolean': {
      const lowered = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(lowered)) return true;
      if (['0', 'false', 'no', 'off'].includes(lowered)) return false;
      return raw;
    }
    case 'array':
      return raw
        .split(',')
        .map((part) => part.trim())
        .filter((part) => part !== '');
    default:
      return raw;
  }
}

export function getPath(target: Record<string, unknown>, path: string): unknown {
  let node: unknown = target;
  for (const part of path.split('.')) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}
