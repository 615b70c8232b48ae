import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { createAuthService } from '../../src/auth/service.js';
import { loadConfig } from '../../src/config/load.js';
import { databaseFile, openDatabase } from '../../src/db/database.js';
import { MIGRATION_NAMES, migrationProvider } from '../../src/db/migrations/index.js';
import { runScheduledBackup, scheduledBackupFile, scheduledBackups } from '../../src/system/backup.js';
import { api, embeddedTestEnv, adminKey as testAdminKey, useApiKey, waitFor } from '../http/client.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type ServeProcess, serve } from '../tools/serve.js';
import { runCli } from './run-cli.js';

/**
 * Backups copy the embedded database's file: this file is about SQLite alone and stays out of the
 * PostgreSQL pass (test/server/database-url.test.ts shows the refusals there).
 */
async function createAdminKey(dataDir: string): Promise<string> {
  const database = await openDatabase({ file: databaseFile(dataDir) });
  try {
    return await testAdminKey(createAuthService({ database, dataDir }));
  } finally {
    await database.close();
  }
}

const execFileAsync = promisify(execFile);
const DUMPED_TABLES = ['users', 'api_keys', 'archives', 'settings'] as const;

/** Every row of the tables a restore must bring back whole, and the ids of jobs and audit entries. */
function dump(dataDir: string): Record<string, unknown> {
  const db = new BetterSqlite3(databaseFile(dataDir), { readonly: true });
  try {
    const tables: Record<string, unknown> = {};
    for (const table of DUMPED_TABLES) tables[table] = db.prepare(`select * from ${table} order by rowid`).all();
    tables.jobs = db.prepare('select id, name, output_file, created_by from jobs order by id').all();
    tables.audit_log = db.prepare('select id, event_type, action, user from audit_log order by id').all();
    return tables;
  } finally {
    db.close();
  }
}

async function filesAndHashes(dir: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const name of await readdir(dir, { recursive: true })) {
    const path = join(dir, name);
    if ((await stat(path)).isFile())
      result[name] = createHash('sha256')
        .update(await readFile(path))
        .digest('hex');
  }
  return result;
}

describe('disk2iso backup and restore', () => {
  let work: string;
  let dataDir: string;
  let fault: FaultFs;
  let loop: LoopDevice;
  let service: ServeProcess;
  let url: string;
  let adminKey: string;
  let backupFile: string;
  const env = (dir = dataDir) => embeddedTestEnv(dir, [loop.path], { DISK2ISO_SERVER_PORT: '0', DISK2ISO_BACKUP_INTERVAL_HOURS: '24' });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-backup-'));
    dataDir = join(work, 'data');
    const iso = await makeIso({ dir: work, label: 'BACKUP_DISC', dataMiB: 16, files: 4, seed: 31 });
    fault = await mountFaultFs({ backingFile: iso.path, delayMs: 200 });
    loop = await attachLoop(fault.file, { sectorSize: 2048 });
    adminKey = await createAdminKey(dataDir);
    service = serve([], env());
    url = await service.address;
    useApiKey(url, adminKey);
  });

  after(async () => {
    service.child.kill('SIGTERM');
    await service.exited;
    await loop.detach();
    await fault.unmount();
    await rm(work, { recursive: true, force: true });
  });

  it('backs up online while a job runs; the backup restores into a fresh data directory with every record', async () => {
    const created = await api(url, 'POST', '/api/v1/jobs', { device: loop.name, name: 'running-during-backup' });
    assert.equal(created.status, 201);
    await waitFor('the job to read', async () => (await api(url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.bytes_done > 0);
    // A bearer token makes the signing key, which the backup must carry for the token to stay valid.
    const token = await api(url, 'POST', '/api/v1/auth/token', { api_key: adminKey });
    assert.equal(token.status, 200);

    backupFile = join(work, 'backup', 'disk2iso_backup.tar.gz');
    const result = await runCli(['backup', '--output', backupFile], env());
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^Backed up the running service's database online \(pid \d+\) to .*disk2iso_backup\.tar\.gz: disk2iso\.db, jwt\.key, vapid\.json \(/,
    );
    assert.equal((await stat(backupFile)).mode & 0o777, 0o600);
    assert.equal((await api(url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.status, 'running', 'the job went on reading');
    const atBackup = dump(dataDir);

    const fresh = join(work, 'fresh');
    const restored = await runCli(['restore', '--input', backupFile], env(fresh));
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /Restored .* into .*fresh; schema now \d{4}_\w+\.\nStart the service when ready\./);
    const back = dump(fresh);
    for (const table of DUMPED_TABLES) assert.deepEqual(back[table], atBackup[table], table);
    assert.deepEqual(back.jobs, atBackup.jobs);
    assert.deepEqual(back.audit_log, (atBackup.audit_log as Array<{ id: number }>).slice(0, (back.audit_log as unknown[]).length));
    assert.ok((back.audit_log as unknown[]).length > 0);
    assert.deepEqual(await readFile(join(fresh, 'jwt.key')), await readFile(join(dataDir, 'jwt.key')));
    // Subscribed devices know the service by its VAPID key: a restore keeps it, privately.
    assert.deepEqual(await readFile(join(fresh, 'vapid.json')), await readFile(join(dataDir, 'vapid.json')));
    assert.equal((await stat(join(fresh, 'vapid.json'))).mode & 0o777, 0o600);
    assert.equal((await stat(databaseFile(fresh))).mode & 0o777, 0o600);

    // A service on the restored directory knows the old API key.
    const second = serve([], env(fresh));
    try {
      const secondUrl = await second.address;
      const jobs = await api(secondUrl, 'GET', '/api/v1/jobs', undefined, { 'x-api-key': adminKey });
      assert.equal(jobs.status, 200);
      const withToken = await api(secondUrl, 'GET', '/api/v1/auth/me', undefined, { authorization: `Bearer ${token.body.access_token}` });
      assert.equal(withToken.status, 200, 'a token signed before the backup is still valid after the restore');
      assert.ok(jobs.body.jobs.some((job: { id: string }) => job.id === created.body.id));
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });

  it('refuses a damaged, truncated or foreign archive and changes nothing', async () => {
    const target = join(work, 'fresh');
    const before = await filesAndHashes(target);
    const damaged = join(work, 'damaged.tar.gz');
    const bytes = await readFile(backupFile);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0xff;
    await writeFile(damaged, bytes);
    const truncated = join(work, 'truncated.tar.gz');
    await copyFile(backupFile, truncated);
    await truncate(truncated, Math.floor(bytes.length / 2));
    const foreignDir = join(work, 'foreign');
    await mkdir(foreignDir);
    await writeFile(join(foreignDir, 'notes.txt'), 'hello');
    const foreign = join(work, 'foreign.tar.gz');
    await execFileAsync('tar', ['-czf', foreign, '-C', foreignDir, 'notes.txt']);

    for (const [file, reason] of [
      [damaged, /damaged or truncated|does not match its checksum/],
      [truncated, /damaged or truncated/],
      [foreign, /not a disk2iso backup/],
      [join(work, 'missing.tar.gz'), /damaged or truncated/],
    ] as const) {
      const result = await runCli(['restore', '--input', file], env(target));
      assert.equal(result.code, 2, `${file}: ${result.stderr}`);
      assert.match(result.stderr, reason);
      assert.match(result.stderr, /nothing was changed/);
    }
    assert.deepEqual(await filesAndHashes(target), before);
  });

  it('refuses a backup of a newer schema', async () => {
    const unpacked = join(work, 'newer');
    await mkdir(unpacked);
    await execFileAsync('tar', ['-xzf', backupFile, '-C', unpacked]);
    const db = new BetterSqlite3(join(unpacked, 'disk2iso.db'));
    db.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run('9999_from_the_future', new Date().toISOString());
    db.close();
    const manifest = JSON.parse(await readFile(join(unpacked, 'manifest.json'), 'utf8'));
    manifest.schema.migrations.push('9999_from_the_future');
    const entry = manifest.files.find((file: { name: string }) => file.name === 'disk2iso.db');
    entry.sha256 = createHash('sha256')
      .update(await readFile(join(unpacked, 'disk2iso.db')))
      .digest('hex');
    await writeFile(join(unpacked, 'manifest.json'), JSON.stringify(manifest));
    const newer = join(work, 'newer.tar.gz');
    await execFileAsync('tar', ['-czf', newer, '-C', unpacked, 'manifest.json', 'disk2iso.db', 'jwt.key']);
    const result = await runCli(['restore', '--input', newer], env(join(work, 'other-target')));
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /comes from a newer disk2iso .*9999_from_the_future/);
  });

  it('refuses to restore over a running service, and stops it first with --stop-service', async () => {
    const refused = await runCli(['restore', '--input', backupFile], env());
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /the service is running \(pid \d+\); stop it first .*Nothing was changed/);

    const restored = await runCli(['restore', '--input', backupFile, '--stop-service'], env());
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stderr, /stopped the service \(pid \d+\); its running jobs are paused/);
    assert.match(restored.stdout, /The files it replaced are in .*before-restore-/);
    const exit = await service.exited;
    assert.equal(exit.code, 0, 'the service shut down cleanly');
    const aside = (await readdir(join(dataDir, 'backups'))).find((name) => name.startsWith('before-restore-'));
    assert.ok(aside);
    assert.ok((await readdir(join(dataDir, 'backups', aside))).includes('disk2iso.db'));
    service = serve([], env());
    url = await service.address;
    useApiKey(url, adminKey);
    assert.equal((await api(url, 'GET', '/api/v1/jobs')).status, 200, 'a working service on the restored data');
  });

  it('makes scheduled backups and removes those past backup.keep_days, never the newest', async () => {
    const config = loadConfig({ env: { ...env(), DISK2ISO_BACKUP_KEEP_DAYS: '2' } });
    const [atStart] = await scheduledBackups(config);
    assert.ok(atStart, 'the service wrote one at its start');
    assert.equal((await stat(atStart.file)).mode & 0o777, 0o600);
    const database = await openDatabase({ file: databaseFile(dataDir) });
    try {
      const day = 86_400_000;
      const now = new Date();
      const old = scheduledBackupFile(config, new Date(now.getTime() - 5 * day));
      await copyFile(atStart.file, old);
      await utimes(old, new Date(now.getTime() - 5 * day), new Date(now.getTime() - 5 * day));
      await utimes(atStart.file, new Date(now.getTime() - 1.5 * day), new Date(now.getTime() - 1.5 * day));
      const round = await runScheduledBackup({ config, database, version: 'test', now });
      assert.ok(round.created, 'due: the newest was older than 24 hours');
      assert.deepEqual(round.removed, [old]);
      const left = (await scheduledBackups(config)).map((backup) => backup.file);
      assert.deepEqual(left.sort(), [atStart.file, round.created].sort());
      const again = await runScheduledBackup({ config, database, version: 'test', now });
      assert.equal(again.created, null, 'not due again');
    } finally {
      await database.close();
    }
  });

  it('copies the database before a migration changes it', async () => {
    const dir = join(work, 'migrating');
    const file = databaseFile(dir);
    const backupDir = join(dir, 'backups');
    const first = await openDatabase({ file, backupDir });
    await first.close();
    assert.deepEqual(await readdir(backupDir).catch(() => []), [], 'a new database needs no copy');
    // Take the newest migration back, as if this database came from the version before it.
    const latest = MIGRATION_NAMES.at(-1) ?? '';
    const older = await openDatabase({ file });
    await (await migrationProvider.getMigrations())[latest]?.down?.(older.kysely);
    await sql`delete from kysely_migration where name = ${latest}`.execute(older.kysely);
    await older.close();
    const migrated = await openDatabase({ file, backupDir });
    assert.equal((await migrated.appliedMigrations()).at(-1), latest);
    await migrated.close();
    const copies = await readdir(backupDir);
    assert.equal(copies.length, 1);
    assert.match(copies[0] ?? '', new RegExp(`^disk2iso-before-${latest}-.*\\.db$`));
    const copy = new BetterSqlite3(join(backupDir, copies[0] ?? ''), { readonly: true });
    try {
      assert.equal((copy.prepare('select count(*) as n from kysely_migration where name = ?').get(latest) as { n: number }).n, 0, 'the copy is from before');
    } finally {
      copy.close();
    }
  });
});
