import assert from 'node:assert/strict';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAuthService } from '../../src/auth/service.js';
import { databaseFile, openDatabase } from '../../src/db/database.js';
import { TEST_ADMIN, TEST_PASSWORD, adminKey, anonymousApi, api, embeddedTestEnv, useApiKey, waitFor } from '../http/client.js';
import { makeIso } from '../tools/iso.js';
import { type ServeProcess, serve } from '../tools/serve.js';

async function walk(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    found.push(path);
    if (entry.isDirectory()) found.push(...(await walk(path)));
  }
  return found;
}

/** The mode each kind of file the service writes must have; anything unlisted fails the test. */
function expectedMode(path: string, isDirectory: boolean): number | null {
  if (isDirectory) return path.endsWith('/output') ? 0o755 : null;
  if (/\/disk2iso\.db(-wal|-shm)?$/.test(path) || path.endsWith('/jwt.key') || path.endsWith('/vapid.json')) return 0o600;
  if (/\/output\/[^/]+\.(iso|md5|sha1|sha256|json|map)$/.test(path)) return 0o644;
  return null;
}

/**
 * The embedded database's file is among what the service writes: this file is about SQLite alone
 * (test/http/client.ts, no engine switch), and starts `disk2iso serve` as systemd does.
 */
describe('file modes of everything the service writes', () => {
  let work: string;
  let dataDir: string;
  let service: ServeProcess | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-modes-'));
    dataDir = join(work, 'data');
    const iso = await makeIso({ dir: work, label: 'MODES', dataMiB: 1, files: 1 });
    const database = await openDatabase({ file: databaseFile(dataDir) });
    let key: string;
    try {
      key = await adminKey(createAuthService({ database, dataDir }));
    } finally {
      await database.close();
    }
    service = serve(['--port', '0'], embeddedTestEnv(dataDir, [iso.path]));
    const url = await service.address;
    useApiKey(url, key);
    const device = (await api(url, 'GET', '/api/v1/devices')).body.devices[0].id;
    const created = await api(url, 'POST', '/api/v1/jobs', { device, options: { checksums: ['md5', 'sha1', 'sha256'] } });
    assert.equal(created.status, 201);
    await waitFor('the job to complete', async () => (await api(url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.status === 'completed');
    // The signing key is made on first use.
    assert.equal((await anonymousApi(url, 'POST', '/api/v1/auth/token', { username: TEST_ADMIN, password: TEST_PASSWORD })).status, 200);
  });
  after(async () => {
    service?.child.kill('SIGTERM');
    await service?.exited;
    await rm(work, { recursive: true, force: true });
  });

  it('keeps the database and secrets 0600, images and sidecars 0644, the output folder 0755, nothing world-writable', async () => {
    const paths = await walk(dataDir);
    const kinds = new Set<string>();
    const wrong: string[] = [];
    for (const path of paths) {
      const info = await lstat(path);
      const mode = info.mode & 0o777;
      const name = relative(dataDir, path);
      if ((mode & 0o002) !== 0) wrong.push(`${name} is world-writable (${mode.toString(8)})`);
      const expected = expectedMode(path, info.isDirectory());
      if (expected === null) {
        if (!info.isDirectory()) wrong.push(`${name}: a file the test does not know (${mode.toString(8)})`);
        continue;
      }
      kinds.add(name.replace(/^output\/[^/]+\./, 'output/*.'));
      if (mode !== expected) wrong.push(`${name} is ${mode.toString(8)}, expected ${expected.toString(8)}`);
    }
    assert.deepEqual(wrong, []);
    for (const kind of [
      'disk2iso.db',
      'jwt.key',
      'vapid.json',
      'output',
      'output/*.iso',
      'output/*.md5',
      'output/*.sha1',
      'output/*.sha256',
      'output/*.json',
    ]) {
      assert.ok(kinds.has(kind), `${kind} was written and checked (saw ${[...kinds].join(', ')})`);
    }
  });
});
