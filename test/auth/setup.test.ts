import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthenticationError } from '../../src/auth/errors.js';
import { type PasswordHasher, bcryptHasher } from '../../src/auth/password.js';
import { secretHash } from '../../src/auth/secrets.js';
import { createAuthService } from '../../src/auth/service.js';
import { ConflictError } from '../../src/errors.js';
import { openAgain } from '../support/database.js';
import { ADMIN_PASSWORD, CLI, CLIENT, HOUR, USER_PASSWORD, withAuth } from './support.js';

describe('first-admin setup token', () => {
  it('exists only while there is no enabled admin, creates the admin once, and is stored hashed', async () => {
    await withAuth(async ({ auth, database, auditEntries }) => {
      assert.equal(await auth.setup.needed(), true);
      const { token, expiresAt } = await auth.setup.createToken();
      assert.equal(Buffer.from(token, 'base64url').length, 32);
      assert.equal(expiresAt, '2026-01-15T11:00:00.000Z');
      const rows = await database.kysely.selectFrom('setup_tokens').selectAll().execute();
      assert.deepEqual(
        rows.map((row) => row.token_hash),
        [secretHash(token)],
      );
      assert.equal(await auth.setup.isValid(token), true);

      await assert.rejects(auth.setup.complete(token, 'Bad Name', ADMIN_PASSWORD, CLIENT), { code: 'invalid_user_name' });
      await assert.rejects(auth.setup.complete(token, 'root', 'weak', CLIENT), { code: 'weak_password' });
      assert.equal(await auth.setup.isValid(token), true, 'a typo does not use the token up');

      const admin = await auth.setup.complete(token, 'root', ADMIN_PASSWORD, CLIENT);
      assert.equal(admin.role, 'admin');
      assert.equal((await auth.login('root', ADMIN_PASSWORD, CLIENT)).principal.can('users:admin'), true);
      assert.equal(await auth.setup.needed(), false);
      assert.equal(await auth.setup.isValid(token), false);
      await assert.rejects(auth.setup.complete(token, 'second', ADMIN_PASSWORD, CLIENT), { code: 'invalid_setup_token' });
      await assert.rejects(auth.setup.createToken(), (error: unknown) => error instanceof ConflictError && error.code === 'setup_done');

      const entries = await auditEntries();
      assert.deepEqual(
        entries.filter((entry) => entry.event_type !== 'authentication').map((entry) => [entry.event_type, entry.action, entry.user, entry.ip_address]),
        [
          ['setup', 'token_created', null, 'local'],
          ['user', 'add', 'root', CLIENT.ip],
          ['setup', 'completed', 'root', CLIENT.ip],
        ],
      );
    });
  });

  it('creates one admin when the same link is used twice at the same moment through two connections', async () => {
    // Both uses hash their password first; they then go on together, so their transactions overlap.
    let hashed = 0;
    let release = (): void => undefined;
    const bothHashed = new Promise<void>((resolve) => {
      release = resolve;
    });
    const hasher: PasswordHasher = {
      async hash(password) {
        const hash = await bcryptHasher.hash(password);
        hashed += 1;
        if (hashed === 2) release();
        await bothHashed;
        return hash;
      },
      verify: (password, hash) => bcryptHasher.verify(password, hash),
    };
    await withAuth(
      async ({ auth, database, dir, clock }) => {
        const other = await openAgain(database);
        try {
          const elsewhere = createAuthService({ database: other, dataDir: dir, now: clock.now, hasher });
          const { token } = await auth.setup.createToken();
          const outcomes = await Promise.allSettled([
            auth.setup.complete(token, 'root', ADMIN_PASSWORD, CLIENT),
            elsewhere.setup.complete(token, 'other-root', ADMIN_PASSWORD, CLIENT),
          ]);
          assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 1, 'one use of the link succeeds');
          const refused = outcomes.find((outcome) => outcome.status === 'rejected');
          assert.ok(refused?.reason instanceof AuthenticationError, 'the other finds the link used');
          assert.equal((await auth.users.list(CLI)).length, 1);
        } finally {
          await other.close();
        }
      },
      { hasher },
    );
  });

  it('expires after an hour', async () => {
    await withAuth(async ({ auth, clock }) => {
      const { token } = await auth.setup.createToken();
      clock.advance(HOUR - 1);
      assert.equal(await auth.setup.isValid(token), true);
      clock.advance(1);
      assert.equal(await auth.setup.isValid(token), false);
      await assert.rejects(auth.setup.complete(token, 'root', ADMIN_PASSWORD, CLIENT), AuthenticationError);
      assert.equal(await auth.setup.needed(), true);
    });
  });

  it('accepts only the newest token, and no guessed one', async () => {
    await withAuth(async ({ auth }) => {
      const older = await auth.setup.createToken();
      const newer = await auth.setup.createToken();
      assert.equal(await auth.setup.isValid(older.token), false);
      await assert.rejects(auth.setup.complete(older.token, 'root', ADMIN_PASSWORD, CLIENT), AuthenticationError);
      await assert.rejects(auth.setup.complete('', 'root', ADMIN_PASSWORD, CLIENT), AuthenticationError);
      await auth.setup.complete(newer.token, 'root', ADMIN_PASSWORD, CLIENT);
    });
  });

  it('refuses a token whose admin came into being another way meanwhile', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'viewer1', role: 'viewer', password: USER_PASSWORD }, CLI);
      assert.equal(await auth.setup.needed(), true, 'a viewer is no admin');
      const { token } = await auth.setup.createToken();
      await auth.users.add({ name: 'cliadmin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await assert.rejects(auth.setup.complete(token, 'root', ADMIN_PASSWORD, CLIENT), { code: 'setup_done' });
    });
  });
});
