import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthenticationError, LockedOutError } from '../../src/auth/errors.js';
import { DUMMY_PASSWORD_HASH } from '../../src/auth/password.js';
import type { ClientInfo } from '../../src/auth/principal.js';
import { ADMIN_PASSWORD, CLI, CLIENT, MINUTE, USER_PASSWORD, countingHasher, withAuth } from './support.js';

/** What a failed login told the caller: class, code and message, nothing else. */
async function failure(attempt: Promise<unknown>): Promise<{ type: string; code: string; message: string }> {
  try {
    await attempt;
  } catch (error) {
    if (error instanceof AuthenticationError || error instanceof LockedOutError) {
      return { type: error.constructor.name, code: error.code, message: error.message };
    }
    throw error;
  }
  throw new Error('the login succeeded');
}

describe('login', () => {
  it('answers an unknown user, a wrong password and a disabled account the same way, after the same bcrypt check', async () => {
    const hasher = countingHasher();
    await withAuth(
      async ({ auth, database }) => {
        await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
        await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
        await auth.users.add({ name: 'gone', role: 'viewer', password: USER_PASSWORD }, CLI);
        await auth.users.disable('gone', CLI);
        const stored = await database.kysely.selectFrom('users').select(['name', 'password_hash']).execute();
        const hashOf = (name: string) => stored.find((row) => row.name === name)?.password_hash;

        const answers = [
          await failure(auth.login('nobody', USER_PASSWORD, CLIENT)),
          await failure(auth.login('alice', 'Wrong-passw0rd-1', CLIENT)),
          await failure(auth.login('gone', USER_PASSWORD, CLIENT)),
        ];
        for (const answer of answers) {
          assert.deepEqual(answer, { type: 'AuthenticationError', code: 'invalid_credentials', message: 'Invalid user name or password' });
        }
        assert.deepEqual(
          hasher.verified,
          [DUMMY_PASSWORD_HASH, hashOf('alice'), hashOf('gone')],
          'bcrypt ran for every attempt, against the dummy hash for an unknown name',
        );
        assert.match(DUMMY_PASSWORD_HASH, /^\$2b\$12\$/, 'the dummy costs what a real hash costs');
      },
      { hasher },
    );
  });

  it('accepts the name in any letter case, records the login time and audits success and failures', async () => {
    await withAuth(async ({ auth, auditEntries }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      await assert.rejects(auth.login('alice', 'Wrong-passw0rd-1', CLIENT), AuthenticationError);
      await assert.rejects(auth.login('mallory', 'Wrong-passw0rd-1', CLIENT), AuthenticationError);
      const { principal } = await auth.login('Alice', USER_PASSWORD, CLIENT);
      assert.equal(principal.name, 'alice');
      assert.equal((await auth.users.get('alice', CLI)).lastLoginAt, '2026-01-15T10:00:00.000Z');

      const entries = await auditEntries({ eventType: 'authentication' });
      assert.deepEqual(
        entries.map((entry) => ({ action: entry.action, user: entry.user, ip: entry.ip_address, ua: entry.user_agent, details: entry.details })),
        [
          {
            action: 'login_failure',
            user: 'alice',
            ip: CLIENT.ip,
            ua: CLIENT.userAgent,
            details: { reason: 'wrong_password', method: 'password', purpose: 'login' },
          },
          {
            action: 'login_failure',
            user: 'mallory',
            ip: CLIENT.ip,
            ua: CLIENT.userAgent,
            details: { reason: 'unknown_user', method: 'password', purpose: 'login' },
          },
          { action: 'login_success', user: 'alice', ip: CLIENT.ip, ua: CLIENT.userAgent, details: { method: 'password' } },
        ],
      );
    });
  });

  it('locks an account for 15 minutes after 5 failures within 15 minutes, from any address, audited', async () => {
    await withAuth(async ({ auth, clock, auditEntries }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      for (let attempt = 1; attempt <= 5; attempt += 1) {
        await assert.rejects(auth.login('alice', `Wrong-passw0rd-${attempt}`, { ip: `198.51.100.${attempt}`, userAgent: null }), AuthenticationError);
        clock.advance(2 * MINUTE);
      }
      const locked = await failure(auth.login('alice', USER_PASSWORD, { ip: '203.0.113.9', userAgent: null }));
      assert.equal(locked.type, 'LockedOutError');
      assert.equal(locked.code, 'locked_out');
      assert.equal(locked.message, 'Too many failed logins; try again in 13 minute(s)');

      const [lockout] = await auditEntries({ action: 'lockout' });
      assert.deepEqual(lockout?.details, { scope: 'account', key: 'alice', failures: 5, until: '2026-01-15T10:23:00.000Z' });
      assert.equal(lockout?.user, 'alice');

      clock.set(new Date('2026-01-15T10:22:59.999Z'));
      await assert.rejects(auth.login('alice', USER_PASSWORD, CLIENT), LockedOutError);
      clock.set(new Date('2026-01-15T10:23:00.000Z'));
      const { principal } = await auth.login('alice', USER_PASSWORD, CLIENT);
      assert.equal(principal.name, 'alice', 'the lock expired');
    });
  });

  it('counts only failures within the window, and a success starts the count afresh', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const fail = () => assert.rejects(auth.login('alice', 'Wrong-passw0rd-1', CLIENT), AuthenticationError);
      for (let attempt = 0; attempt < 4; attempt += 1) await fail();
      clock.advance(15 * MINUTE + 1);
      await fail();
      await auth.login('alice', USER_PASSWORD, CLIENT);
      for (let attempt = 0; attempt < 4; attempt += 1) await fail();
      await auth.login('alice', USER_PASSWORD, CLIENT);
    });
  });

  it('locks names that do not exist exactly like names that do, so a lockout reveals nothing', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const answers: Array<Awaited<ReturnType<typeof failure>>[]> = [];
      for (const name of ['alice', 'nobody']) {
        const sequence = [];
        for (let attempt = 0; attempt < 6; attempt += 1)
          sequence.push(await failure(auth.login(name, 'Wrong-passw0rd-1', { ip: `198.51.100.${attempt}`, userAgent: null })));
        answers.push(sequence);
      }
      assert.deepEqual(answers[0], answers[1]);
      assert.equal(answers[0]?.[5]?.type, 'LockedOutError');
    });
  });

  it('locks an address after 20 failures in 15 minutes, whatever names it tries, until the lock expires', async () => {
    await withAuth(async ({ auth, clock, auditEntries }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const attacker: ClientInfo = { ip: '203.0.113.66', userAgent: 'hydra' };
      for (let attempt = 0; attempt < 20; attempt += 1) {
        await assert.rejects(auth.login(`user${attempt}`, 'Wrong-passw0rd-1', attacker), AuthenticationError);
        clock.advance(30_000);
      }
      await assert.rejects(auth.login('alice', USER_PASSWORD, attacker), LockedOutError, 'even the right password is refused from that address');
      await auth.login('alice', USER_PASSWORD, CLIENT);

      const lockouts = await auditEntries({ action: 'lockout' });
      assert.deepEqual(
        lockouts.map((entry) => [entry.details.scope, entry.details.key, entry.details.failures, entry.ip_address]),
        [['address', attacker.ip, 20, attacker.ip]],
      );
      const refused = (await auditEntries({ action: 'login_failure' })).at(-1);
      assert.equal(refused?.details.reason, 'locked_out_address');

      clock.advance(15 * MINUTE);
      await auth.login('alice', USER_PASSWORD, attacker);
    });
  });

  it('lifts an account lockout when an admin resets the password', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      for (let attempt = 0; attempt < 5; attempt += 1) await assert.rejects(auth.login('alice', 'Wrong-passw0rd-1', CLIENT), AuthenticationError);
      await assert.rejects(auth.login('alice', USER_PASSWORD, CLIENT), LockedOutError);
      await auth.users.resetPassword('alice', 'Fresh-passw0rd-1', CLI);
      await auth.login('alice', 'Fresh-passw0rd-1', CLIENT);
    });
  });

  it('counts wrong current passwords of a password change towards the account lockout', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const { principal } = await auth.login('alice', USER_PASSWORD, CLIENT);
      for (let attempt = 0; attempt < 5; attempt += 1) {
        await assert.rejects(auth.users.changeOwnPassword(principal, `Guess-passw0rd-${attempt}`, 'Next-passw0rd-ok', CLIENT), AuthenticationError);
      }
      await assert.rejects(auth.users.changeOwnPassword(principal, USER_PASSWORD, 'Next-passw0rd-ok', CLIENT), LockedOutError);
    });
  });

  it('prunes failures older than the window and lockouts that ended', async () => {
    await withAuth(async ({ auth, clock, database }) => {
      for (let attempt = 0; attempt < 5; attempt += 1) await assert.rejects(auth.login('ghost', 'Wrong-passw0rd-1', CLIENT), AuthenticationError);
      const count = async (table: 'login_failures' | 'lockouts') => (await database.kysely.selectFrom(table).selectAll().execute()).length;
      assert.equal(await count('lockouts'), 1);
      assert.equal(await count('login_failures'), 5, 'the account failures went into the lockout; the address ones stay');
      assert.deepEqual(await auth.prune(), { sessions: 0, loginFailures: 0, apiKeys: 0 });
      clock.advance(15 * MINUTE + 1);
      assert.deepEqual(await auth.prune(), { sessions: 0, loginFailures: 6, apiKeys: 0 });
      assert.equal(await count('lockouts'), 0);
      assert.equal(await count('login_failures'), 0);
    });
  });
});
