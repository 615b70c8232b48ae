import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import pg from 'pg';
import { packageRoot } from '../../src/config/load.js';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { databaseFile, openDatabase } from '../../src/db/database.js';
import { fullTextHits } from '../../src/db/dialect.js';
import { createFileIndexRepository } from '../../src/db/file-index-repository.js';
import { MIGRATION_NAMES } from '../../src/db/migrations/index.js';
import { createNotificationRepository } from '../../src/db/notification-repository.js';
import { openPostgres } from '../../src/db/postgres.js';
import { createSettingsRepository } from '../../src/db/settings-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { currentLeaseHolder } from '../../src/jobs/lease-holder.js';
import { usePostgres } from '../support/postgres.js';
import { runCli } from './run-cli.js';

const server = usePostgres();
let work: string;
/** A data dir filled through the CLI and the repositories the service uses. */
let filled: string;

const SOURCE_TABLES_WITH_ROWS = [
  'users',
  'api_keys',
  'audit_log',
  'settings',
  'jobs',
  'archives',
  'archive_verifications',
  'archive_file_entries',
  'archive_file_index',
  'notification_events',
  'webhook_endpoints',
];

async function fillDataDir(dir: string): Promise<void> {
  const env = { DISK2ISO_DATA_DIR: dir };
  const cli = async (args: string[], stdin?: string) => {
    const result = await runCliWithInput(args, env, stdin);
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
  };
  await cli(['user', 'add', 'alice', '--role', 'admin', '--password-stdin'], 'Alice-passw0rd-123\n');
  await cli(['user', 'add', 'ops', '--role', 'operator', '--password-stdin'], 'Ops-passw0rd-1234\n');
  await cli(['apikey', 'create', '--user', 'ops', '--name', 'nightly', '--scopes', 'jobs:read']);
  await cli(['apikey', 'create', '--user', 'alice', '--name', 'admin key']);
  const database = await openDatabase({ file: databaseFile(dir) });
  try {
    await createSettingsRepository(database).set({ 'imaging.read_attempts': 3 }, 'alice');
    const queue = createSqliteQueue(database);
    for (const name of ['Disc one', 'Disc two ünïcode', 'Disc three']) {
      await queue.enqueue({ name, deviceId: 'sr0', devicePath: '/dev/sr0', outputFile: `/srv/images/${name}.iso`, sizeBytes: 549_755_813_888 });
    }
    const archives = createArchiveRepository(database);
    const files = createFileIndexRepository(database);
    for (const [index, label] of ['Kreta Urlaub', 'Steuer 2024', 'Music Café'].entries()) {
      const archive = await archives.create({
        filename: `image-${index}.iso`,
        path: `/srv/images/image-${index}.iso`,
        sizeBytes: 700_000_000 + index,
        checksums: { sha256: `${index}`.repeat(64) },
        metadata: { label, tags: ['photos', `t${index}`], notes: 'a note', customFields: { shelf: `B${index}` } },
        source: { deviceId: 'sr0', devicePath: '/dev/sr0', discKind: 'data', volumeLabel: `VOL_${index}`, volumeId: null, mediaType: null, fileSystems: [] },
      });
      await archives.recordVerification(archive.id, {
        startedAt: new Date(),
        finishedAt: new Date(),
        ok: true,
        results: { source: 'test' },
        seconds: 1.25,
        requestedBy: 'alice',
      });
      await files.add(archive.id, [
        { path: 'DCIM', name: 'DCIM', kind: 'directory', sizeBytes: 0, mtime: null },
        { path: `DCIM/IMG_000${index}.JPG`, name: `IMG_000${index}.JPG`, kind: 'file', sizeBytes: 1234, mtime: '2020-01-01T00:00:00.000Z' },
      ]);
      await files.finish(archive.id, { status: 'indexed', entries: 2 }, new Date().toISOString());
    }
    const notifications = createNotificationRepository(database);
    await notifications.createEndpoint(
      { name: 'hook', url: 'https://example.invalid/hook', events: ['job.completed'], enabled: true },
      'whsec_test',
      new Date(),
    );
    await notifications.record(
      { id: 'evt_1', type: 'job.completed', at: new Date().toISOString(), payload: { job_id: 'x' } },
      { email: false, webhooks: true },
    );
  } finally {
    await database.close();
  }
}

async function runCliWithInput(args: string[], env: Record<string, string>, stdin?: string) {
  if (stdin === undefined) return runCli(args, env);
  const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'disk2iso'), ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdin.end(stdin);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolveRun, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** A copy of the filled data dir, so a test may change its database. */
function copyOfFilled(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const file of ['disk2iso.db']) copyFileSync(join(filled, file), join(dir, file));
  return dir;
}

function fileHash(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

async function targetCounts(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ name: string }>(
      "select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' and table_name not like 'kysely%' order by 1",
    );
    const counts: Record<string, number> = {};
    for (const { name } of tables) counts[name] = Number((await client.query<{ count: string }>(`select count(*) from "${name}"`)).rows[0]?.count);
    return counts;
  } finally {
    await client.end();
  }
}

function sourceCounts(file: string): Record<string, number> {
  const source = new BetterSqlite3(file, { readonly: true });
  try {
    return Object.fromEntries(
      SOURCE_TABLES_WITH_ROWS.map((table) => [table, (source.prepare(`select count(*) as count from "${table}"`).get() as { count: number }).count]),
    );
  } finally {
    source.close();
  }
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'disk2iso-migrate-'));
  filled = join(work, 'filled');
  mkdirSync(filled);
  await fillDataDir(filled);
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

test('migrate copies every table into PostgreSQL, checked by counts and checksums, and leaves the source alone', async () => {
  const dir = copyOfFilled('full');
  const before = fileHash(databaseFile(dir));
  const url = await server().createDatabase();
  const result = await runCli(['migrate', '--to', url], { DISK2ISO_DATA_DIR: dir });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(`${result.stdout}${result.stderr}`.includes(server().password), false, 'the password is never printed');
  assert.match(result.stdout, /every table's count and checksum match/);
  assert.match(result.stdout, /^archive_file_entries\s+6\s+[0-9a-f]{16}$/m);
  assert.match(result.stdout, /^archive_file_search\s+6\s+\(rebuilt by PostgreSQL\)$/m);
  assert.equal(fileHash(databaseFile(dir)), before, 'the source file is unchanged');

  const expected = sourceCounts(databaseFile(dir));
  const counts = await targetCounts(url);
  for (const [table, count] of Object.entries(expected)) {
    assert.ok(count > 0, `the source has ${table} rows`);
    assert.equal(counts[table], count, `${table} rows in PostgreSQL`);
  }
  assert.equal(counts.archives_fts, expected.archives);

  const target = await openPostgres(url);
  try {
    const hits = fullTextHits('postgres', 'archives', [{ text: 'kreta', prefix: true }], 'hits');
    assert.ok(hits !== null);
    const found = await sql<{ filename: string }>`select archives.filename from ${hits} join archives on archives.id = hits.id`.execute(target.kysely);
    assert.deepEqual(found.rows, [{ filename: 'image-0.iso' }], 'the rebuilt search index finds a copied archive');
    // The identity columns continue after the copied ids.
    const job = await target.kysely.selectFrom('jobs').select('id').limit(1).executeTakeFirstOrThrow();
    await target.kysely.insertInto('job_logs').values({ job_id: job.id, at: new Date().toISOString(), level: 'info', message: 'after migrating' }).execute();
    const { rows } = await sql<{ version: number }>`select version from table_versions where name = 'jobs'`.execute(target.kysely);
    assert.ok((rows[0]?.version ?? 0) >= 0);
  } finally {
    await target.close();
  }

  const again = await runCli(['migrate', '--to', url], { DISK2ISO_DATA_DIR: dir });
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /already holds data \(table \w+\): migrate into an empty database\. Nothing was changed/);
  assert.equal(again.stderr.includes(server().password), false);
  const afterSecond = await targetCounts(url);
  assert.deepEqual(afterSecond, { ...counts, job_logs: (counts.job_logs ?? 0) + 1 }, 'the second run changed nothing');
});

test('a bad URL or an unreachable server gives a clear error without the password', async () => {
  const dir = copyOfFilled('bad-url');
  const notUrl = await runCli(['migrate', '--to', 'mysql://user:hunter2@db/x'], { DISK2ISO_DATA_DIR: dir });
  assert.equal(notUrl.code, 2);
  assert.match(notUrl.stderr, /--to needs a postgres:\/\/user:password@host:port\/database URL, not mysql:\/\/user:\*\*\*@db\/x/);
  assert.equal(notUrl.stderr.includes('hunter2'), false);
  const unreachable = await runCli(['migrate', '--to', 'postgres://postgres:hunter2@127.0.0.1:1/x'], { DISK2ISO_DATA_DIR: dir });
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /Cannot open database postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/x: .*ECONNREFUSED/);
  assert.equal(unreachable.stderr.includes('hunter2'), false);
});

test('a failure in the middle of the copy leaves the target empty, and a later run succeeds', async () => {
  const dir = copyOfFilled('crash');
  // SQLite stores a NUL inside text; PostgreSQL refuses it: the copy fails after earlier tables went in.
  const source = new BetterSqlite3(databaseFile(dir));
  source.prepare("insert into logs (at, level, source, message) values ('2026-01-01T00:00:00.000Z', 'info', 'test', ?)").run('nul \u0000 inside');
  source.close();
  const url = await server().createDatabase();
  const failed = await runCli(['migrate', '--to', url], { DISK2ISO_DATA_DIR: dir });
  assert.equal(failed.code, 1, failed.stdout);
  assert.match(failed.stderr, /0x00/);
  const counts = await targetCounts(url);
  const withRows = Object.entries(counts).filter(([table, count]) => count > 0 && table !== 'table_versions');
  assert.deepEqual(withRows, [], 'nothing was committed');

  const fixed = new BetterSqlite3(databaseFile(dir));
  fixed.prepare("delete from logs where source = 'test'").run();
  fixed.close();
  const retried = await runCli(['migrate', '--to', url], { DISK2ISO_DATA_DIR: dir });
  assert.equal(retried.code, 0, retried.stderr);
});

test('migrate refuses while the service is running, before touching the target', async () => {
  const dir = copyOfFilled('running');
  const source = new BetterSqlite3(databaseFile(dir));
  // This test process stands in for a service that heartbeats into the database.
  const now = new Date().toISOString();
  source
    .prepare('insert into job_workers (id, holder, started_at, seen_at) values (?, ?, ?, ?)')
    .run('wrk_test', JSON.stringify(await currentLeaseHolder()), now, now);
  source.close();
  const url = await server().createDatabase();
  const refused = await runCli(['migrate', '--to', url], { DISK2ISO_DATA_DIR: dir });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, new RegExp(`the service is running \\(pid ${process.pid} on .*\\); stop it first`));
  assert.deepEqual(await targetCounts(url), {}, 'the target was not even migrated');
});

test('migrate refuses a target with a schema of a newer version, and changes nothing', async () => {
  const dir = copyOfFilled('newer');
  const url = await server().createDatabase();
  const target = await openPostgres(url);
  await sql`insert into kysely_migration (name, timestamp) values ('9999_future', ${new Date().toISOString()})`.execute(target.kysely);
  await target.close();
  const before = await targetCounts(url);
  const refused = await runCli(['migrate', '--to', url], { DISK2ISO_DATA_DIR: dir });
  assert.equal(refused.code, 2, refused.stderr);
  assert.ok(
    refused.stderr.includes(
      `has another schema (9999_future; this version makes ${MIGRATION_NAMES.at(-1)}): migrate into an empty database. Nothing was changed`,
    ),
    refused.stderr,
  );
  assert.deepEqual(await targetCounts(url), before);
});
