import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { startPostgres, usePostgres } from '../support/postgres.js';
import { startFixture } from './fixture-process.js';

const shared = usePostgres();

test("a file's shared server is ready in its tests and hands out databases", async () => {
  assert.equal(await shared.ready(), shared());
  const client = new pg.Client({ connectionString: await shared().createDatabase() });
  await client.connect();
  try {
    assert.deepEqual((await client.query<{ db: string }>('select current_database() as db')).rows, [{ db: `test_${process.pid}_1` }]);
  } finally {
    await client.end();
  }
  assert.equal(isRunning(shared().pid), true);
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('the harness gives each caller its own database, needs the password over TCP and leaves nothing behind', async () => {
  const server = await startPostgres();
  try {
    const [first, second] = [await server.createDatabase(), await server.createDatabase()];
    assert.notEqual(first, second);
    const client = new pg.Client({ connectionString: first });
    await client.connect();
    try {
      await client.query('create table marker (id integer)');
      const version = await client.query<{ server_version_num: string }>('show server_version_num');
      assert.ok(Number(version.rows[0]?.server_version_num) >= 150000);
    } finally {
      await client.end();
    }
    const other = new pg.Client({ connectionString: second });
    await other.connect();
    try {
      const tables = await other.query("select 1 from information_schema.tables where table_name = 'marker'");
      assert.equal(tables.rowCount, 0, 'a second database starts empty');
    } finally {
      await other.end();
    }
    const wrong = new pg.Client({ connectionString: first.replace(server.password, 'wrong') });
    await assert.rejects(wrong.connect(), /password authentication failed/);
  } finally {
    await server.stop();
  }
  assert.equal(existsSync(server.dir), false, 'the cluster directory is removed');
  assert.equal(isRunning(server.pid), false, 'the server is gone');
});

// Without the parent-death signal the loop below never ends and the test times out.
test('a test process killed outright takes its server with it', { timeout: 30_000 }, async () => {
  const fixture = startFixture(new URL('./fixtures/postgres-server.js', import.meta.url), []);
  const { pid, dir } = JSON.parse(await fixture.nextLine()) as { pid: number; dir: string };
  try {
    assert.equal(isRunning(pid), true);
    fixture.child.kill('SIGKILL');
    await fixture.exited;
    // The kernel signals the server when its parent dies; it then needs a moment to exit.
    while (isRunning(pid) && !isZombie(pid)) await sleep(20);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A dead process not yet reaped by whoever adopted it counts as gone. */
function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

test('a restart keeps the port and the data, and a pool reconnects by itself', async () => {
  const server = await startPostgres();
  const pool = new pg.Pool({ connectionString: await server.createDatabase(), max: 2 });
  // The restart ends the pool's idle connections; unheard, that error would end the test process.
  const poolErrors: string[] = [];
  pool.on('error', (error) => poolErrors.push(error instanceof pg.DatabaseError ? String(error.code) : error.message));
  try {
    await pool.query("create table marker (value text); insert into marker values ('before')");
    const { port, pid } = server;
    await server.restart();
    assert.equal(server.port, port);
    assert.notEqual(server.pid, pid, 'a new postmaster');
    assert.equal(isRunning(pid), false, 'the old one is gone');
    assert.deepEqual(poolErrors, ['57P01'], 'the idle connection was ended by the shutdown (admin_shutdown)');
    assert.deepEqual((await pool.query('select value from marker')).rows, [{ value: 'before' }]);

    await server.stop({ keepData: true });
    assert.equal(isRunning(server.pid), false);
    assert.equal(existsSync(server.dir), true, 'the cluster is kept');
    await assert.rejects(pool.query('select 1'), { code: 'ECONNREFUSED' });
    await server.start();
    await pool.query("insert into marker values ('after')");
    assert.deepEqual((await pool.query('select value from marker order by value desc')).rows, [{ value: 'before' }, { value: 'after' }]);
  } finally {
    await pool.end();
    await server.stop();
  }
  assert.equal(existsSync(server.dir), false, 'stop() without keepData removes the cluster');
  await assert.rejects(server.start(), /start after stop\(\) removed the cluster/);
});

test('an address to listen on besides 127.0.0.1 must be an address and a network of its family', async () => {
  for (const listen of [
    { address: '10.231.0.1,*', clients: '10.231.0.0/30' },
    { address: '10.231.0.1', clients: '10.231.0.0/33' },
    { address: '10.231.0.1', clients: 'all' },
    { address: '10.231.0.1', clients: '::1/128' },
    { address: '10.231.0.1', clients: '10.231.0.0/30 trust' },
  ]) {
    await assert.rejects(startPostgres({ listen: [listen] }), /is not an address and a network \(CIDR\) of the same family/, JSON.stringify(listen));
  }
});
