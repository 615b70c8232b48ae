import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { createAuthService } from '../../src/auth/service.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { openPostgres } from '../../src/db/postgres.js';
import { runCli } from '../cli/run-cli.js';
import { usePostgres } from '../support/postgres.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type ServeProcess, serve } from '../tools/serve.js';

/**
 * `database.url` switches the whole installation to PostgreSQL: `disk2iso serve` and the CLI keep
 * their state in the database it names, never in a SQLite file in the data dir, and its password
 * shows nowhere. This file starts its own PostgreSQL server (it does not use the engine switch of
 * test/support/database.ts: it is about the configuration that names the database, in either pass).
 */
const postgres = usePostgres();

describe('database.url: the service and the CLI on PostgreSQL', () => {
  let work: string;
  let dataDir: string;
  let iso: MadeIso;
  let url: string;
  let env: Record<string, string>;
  let key: string;
  const running = new Set<ServeProcess>();

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-database-url-'));
    dataDir = join(work, 'data');
    await mkdir(dataDir);
    iso = await makeIso({ dir: work, label: 'CLUSTER_DISC', dataMiB: 2, files: 1 });
    await postgres.ready();
    url = await postgres().createDatabase();
    env = {
      DISK2ISO_DATA_DIR: dataDir,
      DISK2ISO_DATABASE_URL: url,
      DISK2ISO_EXTRA_DEVICES: iso.path,
      DISK2ISO_DRIVES_DEMO: 'off',
      DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
      // Left at its default (24 h): in the embedded mode the service would write a backup at start.
      DISK2ISO_BACKUP_INTERVAL_HOURS: '24',
    };
    // The admin and a key, made in the database the service is given, as `disk2iso user add` would.
    const database = await openPostgres(url);
    try {
      const auth = createAuthService({ database, dataDir });
      await auth.users.add({ name: 'pg-admin', role: 'admin', password: 'Correct-Horse-42' }, localActor('test'));
      key = (await auth.apiKeys.create({ user: 'pg-admin', name: 'tests' }, localActor('test'))).key;
    } finally {
      await database.close();
    }
  });

  after(async () => {
    for (const process of running) {
      process.child.kill('SIGKILL');
      await process.exited;
    }
    await rm(work, { recursive: true, force: true });
  });

  // biome-ignore lint/suspicious/noExplicitAny: tests read bodies field by field, as test/http/support.ts's api() does
  async function call(address: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(`${address}${path}`, {
      method,
      headers: { 'x-api-key': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: await response.json() };
  }

  it('serve: a job created through the API is listed, and its row is in PostgreSQL, not in a file of the data dir', async () => {
    const process = serve(['--port', '0'], env);
    running.add(process);
    const address = await process.address;

    const ready = await call(address, 'GET', '/api/v1/health/ready');
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.equal(ready.body.checks.database.ok, true, 'the write probe works on PostgreSQL');

    const devices = await call(address, 'GET', '/api/v1/devices');
    const device = devices.body.devices.find((candidate: { path: string }) => candidate.path === iso.path);
    assert.ok(device, JSON.stringify(devices.body));
    const created = await call(address, 'POST', '/api/v1/jobs', { device: device.id });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const listed = await call(address, 'GET', '/api/v1/jobs');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.ok(
      listed.body.jobs.some((job: { id: string }) => job.id === created.body.id),
      JSON.stringify(listed.body),
    );

    const view = await call(address, 'GET', '/api/v1/system/config');
    assert.match(view.body.settings.database.url, /^postgres:\/\/\*{8}@127\.0\.0\.1:\d+\/\w+$/);
    assert.doesNotMatch(JSON.stringify(view.body), new RegExp(postgres().password), 'the settings API never shows the password');
    assert.ok(view.body.fixed.includes('database.url'));
    const moved = await call(address, 'PATCH', '/api/v1/system/config', { database: { url: 'postgres://loot:loot@attacker.example.org/loot' } });
    assert.equal(moved.status, 409, JSON.stringify(moved.body));
    assert.equal(moved.body.error.code, 'setting_server_only');
    // Scheduled backups copy the embedded file: their settings do nothing here, and say so instead of taking a value.
    assert.ok(view.body.fixed.includes('backup.interval_hours') && view.body.fixed.includes('backup.keep_days'), JSON.stringify(view.body.fixed));
    const backups = await call(address, 'PATCH', '/api/v1/system/config', { backup: { interval_hours: 1 } });
    assert.equal(backups.status, 409, JSON.stringify(backups.body));
    assert.equal(backups.body.error.code, 'backup_not_embedded');

    const database = await openPostgres(url);
    try {
      assert.equal((await createJobRepository(database).get(created.body.id))?.deviceId, device.id, 'the job is a row of the PostgreSQL database');
    } finally {
      await database.close();
    }
    process.child.kill('SIGTERM');
    assert.deepEqual(await process.exited, { code: 0, signal: null }, process.output());
    running.delete(process);

    assert.equal(existsSync(join(dataDir, 'disk2iso.db')), false, 'no SQLite file was made');
    assert.deepEqual(await readdir(join(dataDir, 'backups')).catch(() => []), [], 'no scheduled backup of a database that is not a file');
    assert.doesNotMatch(process.output(), new RegExp(postgres().password), 'the password is not in the log');
  });

  it('devices: on the cluster database the CLI names this host’s drives by its node, as the service does', async () => {
    const listing = await runCli(['--set', 'cluster.node_name=tower-cli', 'devices', '--json'], env);
    assert.equal(listing.code, 0, listing.stderr);
    const devices: Array<{ id: string; node: string; path: string }> = JSON.parse(listing.stdout).devices;
    assert.deepEqual(
      devices.map((device) => [device.id.replace(/[0-9a-f]{10}$/, 'HASH'), device.node, device.path]),
      [['tower-cli.file-HASH', 'tower-cli', iso.path]],
    );
  });

  it('config get shows the URL with its credentials masked, also as JSON', async () => {
    const listing = await runCli(['config', 'get'], env);
    assert.equal(listing.code, 0, listing.stderr);
    assert.match(listing.stdout, /^database\.url = postgres:\/\/\*{8}@127\.0\.0\.1:\d+\/\w+ {2}\(environment DISK2ISO_DATABASE_URL\)$/m);
    const one = await runCli(['config', 'get', 'database.url', '--json'], env);
    assert.equal(one.code, 0, one.stderr);
    assert.match(JSON.parse(one.stdout).value, /^postgres:\/\/\*{8}@/);
    for (const output of [listing.stdout, listing.stderr, one.stdout, one.stderr]) assert.doesNotMatch(output, new RegExp(postgres().password));
  });

  it('status reads the PostgreSQL database; migrate, backup and restore refuse with a reason, changing nothing', async () => {
    const status = await runCli(['status'], env);
    assert.match(status.stdout, /^Service: not running \(read from postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/\w+\)$/m, status.stdout + status.stderr);

    const migrate = await runCli(['migrate', '--to', url], env);
    assert.notEqual(migrate.code, 0);
    assert.match(migrate.stderr, /database\.url already keeps the state in PostgreSQL/);

    const backup = await runCli(['backup', '--output', join(work, 'backup.tar.gz')], env);
    assert.notEqual(backup.code, 0);
    assert.match(backup.stderr, /pg_dump/);
    assert.equal(existsSync(join(work, 'backup.tar.gz')), false);

    await writeFile(join(work, 'not-used.tar.gz'), 'whatever');
    const restore = await runCli(['restore', '--input', join(work, 'not-used.tar.gz')], env);
    assert.notEqual(restore.code, 0);
    assert.match(restore.stderr, /pg_restore/);

    for (const result of [status, migrate, backup, restore]) assert.doesNotMatch(result.stdout + result.stderr, new RegExp(postgres().password));
    assert.equal(existsSync(join(dataDir, 'disk2iso.db')), false, 'no command made a SQLite file');
  });

  it('a database.url of another scheme stops the CLI with the key named and the password not shown', async () => {
    const refused = await runCli(['status'], { ...env, DISK2ISO_DATABASE_URL: 'mysql://root:hunter2secret@db.example.org/disk2iso' });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /database\.url must match pattern/);
    assert.match(refused.stderr, /DISK2ISO_DATABASE_URL/);
    assert.doesNotMatch(refused.stdout + refused.stderr, /hunter2secret/);
  });
});
