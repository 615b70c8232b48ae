import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { type AuthService, createAuthService } from '../../src/auth/service.js';
import { SIGNING_KEY_FILE, loadOrCreateSigningKey } from '../../src/auth/tokens.js';
import { loadConfig } from '../../src/config/load.js';
import { type Database, databaseFile, openDatabase } from '../../src/db/database.js';
import { openPostgres } from '../../src/db/postgres.js';
import { createPushSubscriptionRepository } from '../../src/db/push-subscription-repository.js';
import { createSecretRepository } from '../../src/db/secret-repository.js';
import { VAPID_KEY_FILE, createPushChannel } from '../../src/notifications/push.js';
import { usePostgres } from '../support/postgres.js';
import { withTempDir } from '../support/temp-dir.js';

/**
 * The signing key of bearer tokens and the VAPID key pair: every instance of a cluster must use the
 * same ones (a token from web instance A is presented to B behind nginx; a browser subscribed at A is
 * sent pushes by any instance's outbox), so on PostgreSQL they live in the database. The embedded
 * service keeps its files in the data dir, as before.
 */
const postgres = usePostgres();
const CLIENT = { ip: '192.0.2.7', userAgent: 'test' };
const closing: Database[] = [];
after(async () => {
  for (const database of closing) await database.close();
});

/** One instance's view of the installation: its own data dir (none of its files is shared), the given database. */
async function instance(database: Database, dataDir: string): Promise<{ auth: AuthService; push: ReturnType<typeof createPushChannel> }> {
  await mkdir(dataDir, { recursive: true });
  const config = loadConfig({ dataDir, env: {} });
  const shared = database.dialect === 'postgres' ? { sharedSecrets: createSecretRepository(database) } : {};
  return {
    auth: createAuthService({ database, dataDir }),
    push: createPushChannel({ config, subscriptions: createPushSubscriptionRepository(database), keyFile: join(dataDir, VAPID_KEY_FILE), ...shared }),
  };
}

test('on PostgreSQL a token issued by one instance is good at another, and both offer browsers the same push key', async () => {
  await withTempDir(async (dir) => {
    const url = await postgres().createDatabase();
    const [databaseA, databaseB] = [await openPostgres(url), await openPostgres(url)];
    closing.push(databaseA, databaseB);
    const a = await instance(databaseA, join(dir, 'web-a'));
    const b = await instance(databaseB, join(dir, 'web-b'));
    await a.auth.users.add({ name: 'alice', role: 'operator', password: 'Correct-Horse-42' }, localActor('test'));

    const [fromA, fromB] = await Promise.all([
      a.auth.tokens.issueForPassword('alice', 'Correct-Horse-42', CLIENT),
      b.auth.tokens.issueForPassword('alice', 'Correct-Horse-42', CLIENT),
    ]);
    assert.equal((await b.auth.tokens.verify(fromA.token))?.name, 'alice', 'A’s token at B');
    assert.equal((await a.auth.tokens.verify(fromB.token))?.name, 'alice', 'B’s token at A');
    const [keyA, keyB] = await Promise.all([a.push.publicKey(), b.push.publicKey()]);
    assert.equal(keyA, keyB, 'one VAPID key pair for the cluster');
    assert.equal(Buffer.from(keyA, 'base64url').length, 65);
    for (const name of ['web-a', 'web-b']) {
      assert.equal(existsSync(join(dir, name, SIGNING_KEY_FILE)), false, `no signing key file in ${name}`);
      assert.equal(existsSync(join(dir, name, VAPID_KEY_FILE)), false, `no VAPID key file in ${name}`);
    }
  });
});

test('the embedded service keeps both in its data dir and stores no secret in its database', async () => {
  await withTempDir(async (dir) => {
    const database = await openDatabase({ file: databaseFile(dir) });
    closing.push(database);
    const { auth, push } = await instance(database, dir);
    await auth.users.add({ name: 'alice', role: 'operator', password: 'Correct-Horse-42' }, localActor('test'));
    const { token } = await auth.tokens.issueForPassword('alice', 'Correct-Horse-42', CLIENT);
    assert.equal((await auth.tokens.verify(token))?.name, 'alice');
    await push.publicKey();
    assert.ok(existsSync(join(dir, SIGNING_KEY_FILE)) && existsSync(join(dir, VAPID_KEY_FILE)));
    // The key file is private, and a wider mode found later is taken back before the key is used.
    const file = join(dir, SIGNING_KEY_FILE);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal(Buffer.from((await readFile(file, 'utf8')).trim(), 'base64url').length, 64);
    await chmod(file, 0o644);
    const reloaded = await loadOrCreateSigningKey(file);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal(Buffer.from(reloaded).toString('base64url'), (await readFile(file, 'utf8')).trim());
    assert.deepEqual(await database.kysely.selectFrom('service_secrets').selectAll().execute(), []);
  });
});
