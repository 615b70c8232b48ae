import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthenticationError, PasswordChangeRequiredError } from '../../src/auth/errors.js';
import { hashCost } from '../../src/auth/password.js';
import { requestActor } from '../../src/auth/principal.js';
import { ROLE_PERMISSIONS } from '../../src/auth/roles.js';
import { createAuthService } from '../../src/auth/service.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../src/errors.js';
import { openAgain } from '../support/database.js';
import { ADMIN_PASSWORD, CLI, CLIENT, DAY, USER_PASSWORD, withAuth } from './support.js';

describe('user service', () => {
  it('adds users with a bcrypt-12 hash, never hands the hash out, and refuses bad names, roles, weak passwords and duplicates', async () => {
    await withAuth(async ({ auth, database }) => {
      const alice = await auth.users.add({ name: 'alice', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      assert.equal(alice.name, 'alice');
      assert.equal(alice.role, 'admin');
      assert.equal(alice.disabled, false);
      assert.equal(alice.credentialsVersion, 1);
      assert.equal('passwordHash' in alice, false);
      const stored = await database.kysely.selectFrom('users').select('password_hash').where('name', '=', 'alice').executeTakeFirstOrThrow();
      assert.equal(hashCost(stored.password_hash), 12);
      assert.notEqual(stored.password_hash, ADMIN_PASSWORD);

      for (const name of ['Al', 'al', '1alice', 'Alice', 'al ice', 'a'.repeat(33), 'cli:root', '../etc']) {
        await assert.rejects(auth.users.add({ name, role: 'viewer', password: USER_PASSWORD }, CLI), ValidationError, name);
      }
      await assert.rejects(auth.users.add({ name: 'bob', role: 'root', password: USER_PASSWORD }, CLI), /Role must be one of admin, operator, viewer/);
      await assert.rejects(auth.users.add({ name: 'bob', role: 'viewer', password: 'password' }, CLI), { code: 'weak_password' });
      await assert.rejects(auth.users.add({ name: 'alice', role: 'viewer', password: USER_PASSWORD }, CLI), ConflictError);
      assert.deepEqual(
        (await auth.users.list(CLI)).map((user) => user.name),
        ['alice'],
      );
    });
  });

  it('never lets the last enabled admin be demoted, disabled or deleted, by anyone', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'root-admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'second', role: 'admin', password: ADMIN_PASSWORD }, CLI);

      await auth.users.disable('second', CLI);
      for (const attempt of [
        () => auth.users.setRole('root-admin', 'operator', CLI),
        () => auth.users.disable('root-admin', CLI),
        () => auth.users.delete('root-admin', CLI),
      ]) {
        await assert.rejects(attempt(), (error: unknown) => error instanceof ConflictError && error.code === 'last_admin');
      }
      // A disabled admin does not count; enabled again, it does, and the first may go.
      await auth.users.enable('second', CLI);
      await auth.users.setRole('root-admin', 'viewer', CLI);
      await assert.rejects(auth.users.delete('second', CLI), { code: 'last_admin' });
      const { principal } = await auth.login('second', ADMIN_PASSWORD, CLIENT);
      await assert.rejects(auth.users.setRole('second', 'operator', requestActor(principal, CLIENT)), { code: 'last_admin' });
      assert.equal((await auth.users.get('second', CLI)).role, 'admin');
    });
  });

  it('keeps an admin when the last two demote each other at the same moment through two connections', async () => {
    await withAuth(async ({ auth, database, dir, clock }) => {
      await auth.users.add({ name: 'ada', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'bob', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      const other = await openAgain(database);
      try {
        const elsewhere = createAuthService({ database: other, dataDir: dir, now: clock.now });
        for (let round = 0; round < 10; round += 1) {
          const outcomes = await Promise.allSettled([auth.users.setRole('ada', 'operator', CLI), elsewhere.users.setRole('bob', 'operator', CLI)]);
          const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
          assert.equal(refused.length, 1, `round ${round}: exactly one demotion is refused`);
          assert.equal((refused[0] as PromiseRejectedResult).reason.code, 'last_admin');
          const admins = (await auth.users.list(CLI)).filter((user) => user.role === 'admin');
          assert.equal(admins.length, 1, `round ${round}: one admin is left`);
          await auth.users.setRole(admins[0]?.name === 'ada' ? 'bob' : 'ada', 'admin', CLI);
        }
      } finally {
        await other.close();
      }
    });
  });

  it('checks a requesting principal for users:admin, and names the missing permission', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'oper', role: 'operator', password: USER_PASSWORD }, CLI);
      const operator = requestActor((await auth.login('oper', USER_PASSWORD, CLIENT)).principal, CLIENT);
      await assert.rejects(auth.users.list(operator), (error: unknown) => error instanceof ForbiddenError && /users:admin/.test(error.message));
      await assert.rejects(auth.users.add({ name: 'mallory', role: 'admin', password: USER_PASSWORD }, operator), ForbiddenError);
      await assert.rejects(auth.users.setRole('oper', 'admin', operator), ForbiddenError);

      const admin = requestActor((await auth.login('admin', ADMIN_PASSWORD, CLIENT)).principal, CLIENT);
      const added = await auth.users.add({ name: 'viewer1', role: 'viewer', password: USER_PASSWORD, requireChange: true }, admin);
      assert.equal(added.passwordResetRequired, true);
    });
  });

  it('bumps the credentials version on password change, disable and role change, not on enable', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'carol', role: 'viewer', password: USER_PASSWORD }, CLI);
      const version = async () => (await auth.users.get('carol', CLI)).credentialsVersion;
      assert.equal(await version(), 1);
      await auth.users.setRole('carol', 'operator', CLI);
      assert.equal(await version(), 2);
      await auth.users.setRole('carol', 'operator', CLI);
      assert.equal(await version(), 2, 'setting the same role changes nothing');
      await auth.users.disable('carol', CLI);
      assert.equal(await version(), 3);
      await auth.users.enable('carol', CLI);
      assert.equal(await version(), 3);
      await auth.users.resetPassword('carol', 'Another-passw0rd', CLI);
      assert.equal(await version(), 4);
    });
  });

  it('flags a password older than 90 days, and one an admin set with require-change; changing it clears the flag', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      clock.advance(90 * DAY - 1000);
      const fresh = (await auth.login('admin', ADMIN_PASSWORD, CLIENT)).principal;
      assert.equal(fresh.mustChangePassword, false);
      assert.equal(fresh.can('users:admin'), true);

      clock.advance(1000);
      const stale = (await auth.login('admin', ADMIN_PASSWORD, CLIENT)).principal;
      assert.equal(stale.mustChangePassword, true);
      assert.equal(stale.can('users:admin'), false, 'nothing but changing the password is allowed');
      assert.equal(stale.permissions.has('users:admin'), true, 'the role is unchanged');
      await assert.rejects(auth.users.list(requestActor(stale, CLIENT)), PasswordChangeRequiredError);

      await auth.users.changeOwnPassword(stale, ADMIN_PASSWORD, 'Brand-new-passw0rd', CLIENT);
      const renewed = (await auth.login('admin', 'Brand-new-passw0rd', CLIENT)).principal;
      assert.equal(renewed.mustChangePassword, false);

      await auth.users.add({ name: 'dave', role: 'viewer', password: USER_PASSWORD }, CLI);
      await auth.users.resetPassword('dave', 'Temporary-passw0rd', requestActor(renewed, CLIENT), { requireChange: true });
      const dave = (await auth.login('dave', 'Temporary-passw0rd', CLIENT)).principal;
      assert.equal(dave.mustChangePassword, true);
      await auth.users.changeOwnPassword(dave, 'Temporary-passw0rd', 'Daves-own-passw0rd', CLIENT);
      assert.equal((await auth.login('dave', 'Daves-own-passw0rd', CLIENT)).principal.mustChangePassword, false);
    });
  });

  it("changes one's own password only with the current one, to a different, policy-conforming one", async () => {
    await withAuth(async ({ auth, auditEntries }) => {
      await auth.users.add({ name: 'erin', role: 'operator', password: USER_PASSWORD }, CLI);
      const { principal } = await auth.login('erin', USER_PASSWORD, CLIENT);
      await assert.rejects(auth.users.changeOwnPassword(principal, 'Wrong-passw0rd-x', 'Next-passw0rd-ok', CLIENT), (error: unknown) => {
        assert.ok(error instanceof AuthenticationError);
        assert.equal(error.message, 'The current password is wrong');
        return true;
      });
      await assert.rejects(auth.users.changeOwnPassword(principal, USER_PASSWORD, 'weak', CLIENT), { code: 'weak_password' });
      await assert.rejects(auth.users.changeOwnPassword(principal, USER_PASSWORD, USER_PASSWORD, CLIENT), { code: 'password_unchanged' });
      await auth.users.changeOwnPassword(principal, USER_PASSWORD, 'Next-passw0rd-ok', CLIENT);
      await assert.rejects(auth.login('erin', USER_PASSWORD, CLIENT), AuthenticationError);
      await auth.login('erin', 'Next-passw0rd-ok', CLIENT);

      const changes = await auditEntries({ eventType: 'password_change' });
      assert.deepEqual(
        changes.map((entry) => [entry.action, entry.user, entry.ip_address, entry.details.reason ?? null]),
        [
          ['change_failure', 'erin', CLIENT.ip, 'wrong_password'],
          ['change', 'erin', CLIENT.ip, null],
        ],
      );
    });
  });

  it('refuses a password change through an API key', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'frank', role: 'operator', password: USER_PASSWORD }, CLI);
      const { key } = await auth.apiKeys.create({ user: 'frank', name: 'ci' }, CLI);
      const viaKey = await auth.authenticateRequest({ apiKeyHeader: key });
      assert.ok(viaKey);
      await assert.rejects(auth.users.changeOwnPassword(viaKey, USER_PASSWORD, 'Next-passw0rd-ok', CLIENT), { code: 'password_change_needs_login' });
    });
  });

  it('deletes a user with sessions and keys; unknown names are NotFound', async () => {
    await withAuth(async ({ auth, database }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'gina', role: 'viewer', password: USER_PASSWORD }, CLI);
      const { session } = await auth.login('gina', USER_PASSWORD, CLIENT);
      const { key } = await auth.apiKeys.create({ user: 'gina', name: 'k' }, CLI);
      await auth.users.delete('gina', CLI);
      assert.equal(await auth.authenticateRequest({ cookie: session.id }), null);
      assert.equal(await auth.authenticateRequest({ apiKeyHeader: key }), null);
      assert.equal((await database.kysely.selectFrom('api_keys').selectAll().execute()).length, 0);
      assert.equal((await database.kysely.selectFrom('sessions').selectAll().execute()).length, 0);
      for (const attempt of [() => auth.users.delete('gina', CLI), () => auth.users.disable('nobody', CLI), () => auth.users.get('nobody', CLI)]) {
        await assert.rejects(attempt(), NotFoundError);
      }
    });
  });

  it('records every management action in the audit trail with who, from where and what', async () => {
    await withAuth(async ({ auth, auditEntries }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'hank', role: 'viewer', password: USER_PASSWORD }, CLI);
      const admin = requestActor((await auth.login('admin', ADMIN_PASSWORD, CLIENT)).principal, CLIENT);
      await auth.users.setRole('hank', 'operator', admin);
      await auth.users.disable('hank', admin);
      await auth.users.enable('hank', CLI);
      await auth.users.resetPassword('hank', 'Reset-passw0rd-1', CLI);
      await auth.users.delete('hank', admin);

      const entries = await auditEntries({ eventType: 'user' });
      assert.deepEqual(
        entries.map((entry) => ({ action: entry.action, user: entry.user, ip: entry.ip_address, ua: entry.user_agent, details: entry.details })),
        [
          { action: 'add', user: 'cli:tester', ip: 'local', ua: null, details: { name: 'admin', role: 'admin', require_password_change: false } },
          { action: 'add', user: 'cli:tester', ip: 'local', ua: null, details: { name: 'hank', role: 'viewer', require_password_change: false } },
          { action: 'role_change', user: 'admin', ip: CLIENT.ip, ua: CLIENT.userAgent, details: { name: 'hank', from: 'viewer', to: 'operator' } },
          { action: 'disable', user: 'admin', ip: CLIENT.ip, ua: CLIENT.userAgent, details: { name: 'hank', sessions_ended: 0 } },
          { action: 'enable', user: 'cli:tester', ip: 'local', ua: null, details: { name: 'hank' } },
          { action: 'reset_password', user: 'cli:tester', ip: 'local', ua: null, details: { name: 'hank', sessions_ended: 0, require_password_change: false } },
          { action: 'delete', user: 'admin', ip: CLIENT.ip, ua: CLIENT.userAgent, details: { name: 'hank', role: 'operator' } },
        ],
      );
      for (const entry of entries) assert.equal(entry.timestamp, '2026-01-15T10:00:00.000Z');
    });
  });

  it('has the role table the specification describes', () => {
    assert.deepEqual(ROLE_PERMISSIONS.viewer, ['jobs:read', 'archives:read', 'devices:read', 'system:read', 'metrics:read', 'keys:manage']);
    assert.deepEqual(ROLE_PERMISSIONS.operator, [
      'jobs:read',
      'jobs:write',
      'archives:read',
      'devices:read',
      'devices:write',
      'system:read',
      'metrics:read',
      'keys:manage',
    ]);
    assert.equal(ROLE_PERMISSIONS.admin.length, 11);
    for (const permission of ROLE_PERMISSIONS.operator) assert.ok(ROLE_PERMISSIONS.admin.includes(permission));
    for (const permission of ROLE_PERMISSIONS.viewer) {
      assert.ok(ROLE_PERMISSIONS.operator.includes(permission));
      // Besides reading, a viewer manages nothing but its own API keys.
      assert.match(permission, /:read$|^keys:manage$/);
    }
  });
});
