import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { secretHash } from '../../src/auth/secrets.js';
import { createAuthService } from '../../src/auth/service.js';
import { openDatabase } from '../../src/db/database.js';

// SQLite only (it reads the embedded database's files), so it stays out of the engine switch;
// test/auth/api-keys.test.ts checks every stored row on both engines.
describe('API keys in the SQLite file', () => {
  it('leave neither the key nor its secret part in anything SQLite wrote: database, WAL, shared memory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'disk2iso-api-key-file-'));
    const database = await openDatabase({ file: join(dir, 'disk2iso.sqlite') });
    try {
      const auth = createAuthService({ database, dataDir: dir });
      const cli = localActor('tester');
      await auth.users.add({ name: 'alice', role: 'operator', password: 'Operat0r-secret-pass' }, cli);
      const { key } = await auth.apiKeys.create({ user: 'alice', name: 'backup script', scopes: ['jobs:read'] }, cli);

      const files = (await readdir(dir)).filter((name) => name.startsWith('disk2iso.sqlite'));
      assert.ok(files.includes('disk2iso.sqlite-wal'), 'the write-ahead log is read too');
      const onDisk = Buffer.concat(await Promise.all(files.map((name) => readFile(join(dir, name)))));
      assert.equal(onDisk.includes(key), false);
      assert.equal(onDisk.includes(key.slice(12)), false);
      assert.equal(onDisk.includes(Buffer.from(key.slice(4), 'base64url')), false);
      assert.equal(onDisk.includes(secretHash(key)), true, 'the check itself reads the right files');
    } finally {
      await database.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
