import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { SIGNING_KEY_FILE } from '../auth/tokens.js';
import type { Config } from '../config/schema.js';
import { type EmbeddedDatabase, databaseFile, forgetWorkersIn, giveToFolderOwner, integrityOf, unknownMigrations } from '../db/database.js';
import { ValidationError, errnoCode, errorMessage } from '../errors.js';
import { pathExists } from '../imaging/output-state.js';
import { VAPID_KEY_FILE } from '../notifications/push.js';

const execFileAsync = promisify(execFile);

/** Bumped when the archive's layout changes in a way an older restore could not read. */
const FORMAT = 1;
const MANIFEST = 'manifest.json';
const DATABASE_MEMBER = 'disk2iso.db';
const CONFIG_MEMBER = 'config.json';
/** Everything a backup may hold; anything else in an archive means it is not one of ours. */
/** The data dir's private keys: the token signing key, and the VAPID key pair subscribed devices know the service by. */
const KEY_FILES = [SIGNING_KEY_FILE, VAPID_KEY_FILE];
const MEMBERS = new Set([MANIFEST, DATABASE_MEMBER, ...KEY_FILES, CONFIG_MEMBER]);
const PRIVATE = 0o600;
/** Scheduled backups are named so pruning can never touch another file in the folder. */
const SCHEDULED = /^disk2iso-backup-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z\.tar\.gz$/;

export interface BackupManifest {
  format: number;
  app: 'disk2iso';
  version: string;
  created_at: string;
  /** The migrations applied to the database: its schema version. */
  schema: { migrations: string[] };
  /** Where the configuration file was, when there was one. */
  config_file: string | null;
  files: Array<{ name: string; size: number; sha256: string }>;
}

async function sha256Of(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/** Renames, or copies and removes when `to` is on another file system. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if (errnoCode(error) !== 'EXDEV') throw error;
    await copyFile(from, to);
    await rm(from);
  }
}

/** Copies an optional file (the signing key before its first use, a configuration file) as private; false when there is none. */
async function copyIfPresent(from: string, to: string): Promise<boolean> {
  try {
    await copyFile(from, to);
    await chmod(to, PRIVATE);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false;
    throw error;
  }
}

/**
 * One .tar.gz with the database (SQLite's online backup: consistent while jobs keep writing), the
 * token signing key, the VAPID key pair, the configuration file and a manifest with the schema version and every
 * file's checksum. The archive is written next to its destination first and renamed into place,
 * mode 0600: it holds password hashes and the signing key.
 */
export async function createBackup(options: {
  config: Config;
  database: EmbeddedDatabase;
  output: string;
  version: string;
  now?: Date;
}): Promise<BackupManifest> {
  const { config, database, output } = options;
  await mkdir(dirname(output), { recursive: true, mode: 0o700 });
  const staging = await mkdtemp(join(dirname(output), '.disk2iso-backup-'));
  try {
    await database.backup(join(staging, DATABASE_MEMBER));
    const names = [DATABASE_MEMBER];
    for (const key of KEY_FILES) if (await copyIfPresent(join(config.data_dir, key), join(staging, key))) names.push(key);
    if (config.config_file !== null && (await copyIfPresent(config.config_file, join(staging, CONFIG_MEMBER)))) names.push(CONFIG_MEMBER);
    const files = [];
    for (const name of names) {
      const path = join(staging, name);
      files.push({ name, size: (await stat(path)).size, sha256: await sha256Of(path) });
    }
    const manifest: BackupManifest = {
      format: FORMAT,
      app: 'disk2iso',
      version: options.version,
      created_at: (options.now ?? new Date()).toISOString(),
      schema: { migrations: await database.appliedMigrations() },
      config_file: names.includes(CONFIG_MEMBER) ? config.config_file : null,
      files,
    };
    await writeFile(join(staging, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: PRIVATE });
    const partial = join(staging, 'backup.tar.gz');
    await execFileAsync('tar', ['-czf', partial, '-C', staging, MANIFEST, ...names]);
    await chmod(partial, PRIVATE);
    await rename(partial, output);
    return manifest;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function refuse(file: string, reason: string): ValidationError {
  return new ValidationError('backup_invalid', `${file} cannot be restored: ${reason}; nothing was changed`, [{ field: 'input', reason }]);
}

/**
 * Unpacks a backup into `into` and proves it whole: only known members, every checksum as the
 * manifest says, a database that passes SQLite's integrity check and whose schema this version
 * knows (a newer one is refused: this version could not run it).
 */
async function unpackBackup(file: string, into: string): Promise<BackupManifest> {
  let listing: string;
  try {
    listing = (await execFileAsync('tar', ['-tzf', file], { maxBuffer: 1024 * 1024 })).stdout;
  } catch (error) {
    const detail =
      errorMessage(error)
        .split('\n')
        .find((line) => line.startsWith('tar:') || line.startsWith('gzip:')) ?? 'unreadable';
    throw refuse(file, `it is damaged or truncated (${detail.trim()})`);
  }
  const members = listing.split('\n').filter((line) => line !== '');
  const strangers = members.filter((member) => !MEMBERS.has(member));
  if (strangers.length > 0 || !members.includes(MANIFEST) || !members.includes(DATABASE_MEMBER)) {
    throw refuse(file, `it is not a disk2iso backup (members: ${members.slice(0, 10).join(', ')})`);
  }
  try {
    await execFileAsync('tar', ['-xzf', file, '-C', into, '--no-same-owner', '--no-same-permissions', ...members]);
  } catch (error) {
    throw refuse(file, `it is damaged or truncated (${errorMessage(error).split('\n')[1] ?? 'unreadable'})`);
  }
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(await readFile(join(into, MANIFEST), 'utf8')) as BackupManifest;
  } catch {
    throw refuse(file, 'its manifest is unreadable');
  }
  if (manifest.app !== 'disk2iso' || manifest.format !== FORMAT || !Array.isArray(manifest.files) || !Array.isArray(manifest.schema?.migrations)) {
    throw refuse(file, `its manifest is of another format (${String(manifest.format)})`);
  }
  for (const member of members.filter((name) => name !== MANIFEST)) {
    const listed = manifest.files.find((entry) => entry.name === member);
    if (listed === undefined || listed.sha256 !== (await sha256Of(join(into, member)))) throw refuse(file, `${member} does not match its checksum`);
  }
  const unknown = unknownMigrations(manifest.schema.migrations);
  if (unknown.length > 0) {
    throw refuse(file, `it comes from a newer disk2iso (${manifest.version}, schema ${unknown.join(', ')}); install that version or newer to restore it`);
  }
  const integrity = integrityOf(join(into, DATABASE_MEMBER));
  if (integrity !== 'ok') throw refuse(file, `its database fails SQLite's integrity check (${integrity})`);
  return manifest;
}

export interface RestoreResult {
  manifest: BackupManifest;
  /** Where the files that were replaced went. */
  previous: string | null;
  configFile: string | null;
}

/**
 * Puts a checked backup in place of the data directory's database, signing key and configuration
 * file. What was there is moved aside into the backup folder first, never deleted. The service
 * must not be running (the caller checks).
 */
export async function restoreBackup(options: { config: Config; input: string }): Promise<RestoreResult> {
  const { config, input } = options;
  await mkdir(config.data_dir, { recursive: true, mode: 0o700 });
  const staging = await mkdtemp(join(config.data_dir, '.disk2iso-restore-'));
  try {
    const manifest = await unpackBackup(input, staging);
    // The register of running services describes the processes of the installation backed up, not of this one.
    forgetWorkersIn(join(staging, DATABASE_MEMBER));
    const target = databaseFile(config.data_dir);
    const configTarget = config.config_file ?? join(config.data_dir, CONFIG_MEMBER);
    const replaced = [
      target,
      `${target}-wal`,
      `${target}-shm`,
      ...KEY_FILES.map((key) => join(config.data_dir, key)),
      ...(manifest.config_file ? [configTarget] : []),
    ];
    // The configuration file keeps its owner (the package gives it to the service's user).
    const configOwner = manifest.config_file === null ? null : await stat(configTarget).catch(() => null);
    const present = [];
    for (const path of replaced) if (await pathExists(path)) present.push(path);
    let previous: string | null = null;
    if (present.length > 0) {
      const aside = join(config.backup.dir, `before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      await mkdir(aside, { recursive: true, mode: 0o700 });
      for (const path of present) await moveFile(path, join(aside, basename(path)));
      previous = aside;
    }
    await moveFile(join(staging, DATABASE_MEMBER), target);
    await chmod(target, PRIVATE);
    giveToFolderOwner(target);
    for (const key of KEY_FILES.filter((name) => manifest.files.some((entry) => entry.name === name))) {
      await moveFile(join(staging, key), join(config.data_dir, key));
      await chmod(join(config.data_dir, key), PRIVATE);
      giveToFolderOwner(join(config.data_dir, key));
    }
    let configFile: string | null = null;
    if (manifest.config_file !== null) {
      await mkdir(dirname(configTarget), { recursive: true, mode: 0o700 });
      await copyFile(join(staging, CONFIG_MEMBER), configTarget);
      await chmod(configTarget, PRIVATE);
      if (configOwner !== null) await chown(configTarget, configOwner.uid, configOwner.gid);
      configFile = configTarget;
    }
    return { manifest, previous, configFile };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The name a scheduled backup gets.
 * @internal exported for its tests
 */
export function scheduledBackupFile(config: Config, at: Date): string {
  return join(config.backup.dir, `disk2iso-backup-${at.toISOString().replace(/[:.]/g, '-')}.tar.gz`);
}

/**
 * Scheduled backups in the folder, newest first, with their times.
 * @internal exported for its tests
 */
export async function scheduledBackups(config: Config): Promise<Array<{ file: string; modifiedAt: Date }>> {
  let names: string[];
  try {
    names = await readdir(config.backup.dir);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw error;
  }
  const found = [];
  for (const name of names.filter((candidate) => SCHEDULED.test(candidate))) {
    const file = join(config.backup.dir, name);
    found.push({ file, modifiedAt: (await stat(file)).mtime });
  }
  return found.sort((a, b) => b.modifiedAt.getTime() - a.modifiedAt.getTime());
}

/**
 * The scheduled backup: one when the newest is `backup.interval_hours` old (or there is none),
 * then the removal of scheduled backups older than `backup.keep_days` (never the newest one).
 * Returns the new file, or null when none was due.
 */
export async function runScheduledBackup(options: {
  config: Config;
  database: EmbeddedDatabase;
  version: string;
  now?: Date;
}): Promise<{ created: string | null; removed: string[] }> {
  const { config } = options;
  const now = options.now ?? new Date();
  if (config.backup.interval_hours === 0) return { created: null, removed: [] };
  const existing = await scheduledBackups(config);
  const newest = existing[0];
  let created: string | null = null;
  if (newest === undefined || now.getTime() - newest.modifiedAt.getTime() >= config.backup.interval_hours * 3_600_000) {
    created = scheduledBackupFile(config, now);
    await createBackup({ config, database: options.database, output: created, version: options.version, now });
  }
  const cutoff = now.getTime() - config.backup.keep_days * 86_400_000;
  const removed: string[] = [];
  for (const old of (await scheduledBackups(config)).slice(1)) {
    if (old.modifiedAt.getTime() < cutoff) {
      await rm(old.file, { force: true });
      removed.push(old.file);
    }
  }
  return { created, removed };
}
