import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { assertRoleFits, isNodeRole, partsOfRole, routesOfRole, sharesNodeList } from '../../src/cluster/roles.js';
import { loadConfig } from '../../src/config/load.js';
import { DomainError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { startServer } from '../../src/server.js';
import { runCli } from '../cli/run-cli.js';
import { embeddedTestEnv } from '../http/client.js';

describe('node roles', () => {
  it('all runs every part; web the pages without drives, jobs or archive work; worker those without the pages', () => {
    assert.deepEqual(partsOfRole('all'), { drives: true, jobs: true, archiveWork: true, pages: true });
    assert.deepEqual(partsOfRole('web'), { drives: false, jobs: false, archiveWork: false, pages: true });
    assert.deepEqual(partsOfRole('worker'), { drives: true, jobs: true, archiveWork: true, pages: false });
    assert.deepEqual(routesOfRole(partsOfRole('worker'), ['health'], ['health', 'jobs', 'pages']), ['health']);
    assert.deepEqual(routesOfRole(partsOfRole('web'), ['health'], ['health', 'jobs', 'pages']), ['health', 'jobs', 'pages']);
    assert.deepEqual(['all', 'web', 'worker', 'Web', 'both', ''].map(isNodeRole), [true, true, true, false, false, false]);
  });

  it('the embedded database takes only all; the cluster database every role', () => {
    assert.deepEqual([sharesNodeList('sqlite'), sharesNodeList('postgres')], [false, true]);
    assertRoleFits('all', 'sqlite');
    for (const role of ['all', 'web', 'worker'] as const) assertRoleFits(role, 'postgres');
    for (const role of ['web', 'worker'] as const) {
      assert.throws(
        () => assertRoleFits(role, 'sqlite'),
        (error: unknown) =>
          error instanceof DomainError && error.code === 'role_needs_cluster' && error.message.includes(`--role ${role} needs the cluster database`),
      );
    }
  });

  it('a service on the embedded database refuses a web or worker role, and starts as all', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'disk2iso-roles-'));
    try {
      const config = loadConfig({ env: embeddedTestEnv(dataDir, [], { DISK2ISO_SERVER_PORT: '0' }) });
      for (const role of ['web', 'worker'] as const) {
        await assert.rejects(startServer({ config, log: silentLogger(), version: '0.0.0-test', listen: false, role }), (error: unknown) => {
          return error instanceof DomainError && error.code === 'role_needs_cluster';
        });
      }
      const running = await startServer({ config, log: silentLogger(), version: '0.0.0-test', listen: false, role: 'all' });
      try {
        const answer = await running.app.inject({ method: 'GET', url: '/api/v1/health' });
        assert.equal(answer.statusCode, 200);
      } finally {
        await running.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('disk2iso serve: an unknown role and a split role on the embedded database are usage errors (exit 2) with a clear message', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'disk2iso-roles-cli-'));
    try {
      const env = embeddedTestEnv(dataDir, []);
      const unknown = await runCli(['serve', '--port', '0', '--role', 'both'], env);
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.match(unknown.stderr, /option '--role <role>' argument 'both' is invalid\. expected one of all, web, worker/);
      const worker = await runCli(['serve', '--port', '0', '--role', 'worker'], env);
      assert.equal(worker.code, 2, worker.stderr);
      assert.match(worker.stderr, /^disk2iso: --role worker needs the cluster database \(database\.url set to a PostgreSQL URL\)/m);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
