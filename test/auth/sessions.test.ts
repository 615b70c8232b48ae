import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { secretHash } from '../../src/auth/secrets.js';
import { csrfTokenMatches } from '../../src/auth/sessions.js';
import { ADMIN_PASSWORD, CLI, CLIENT, HOUR, MINUTE, USER_PASSWORD, withAuth } from './support.js';

describe('sessions', () => {
  it('gives each login a new random 256-bit id, stores only its hash, and authenticates with it', async () => {
    await withAuth(async ({ auth, database }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const first = await auth.login('alice', USER_PASSWORD, CLIENT);
      const second = await auth.login('alice', USER_PASSWORD, CLIENT);
      assert.notEqual(first.session.id, second.session.id, 'a new id at every login');
      assert.equal(Buffer.from(first.session.id, 'base64url').length, 32);
      assert.notEqual(first.session.csrfToken, second.session.csrfToken);

      const rows = await database.kysely.selectFrom('sessions').selectAll().execute();
      assert.deepEqual(rows.map((row) => row.id_hash).sort(), [secretHash(first.session.id), secretHash(second.session.id)].sort());
      for (const row of rows) assert.ok(!Object.values(row).includes(first.session.id) && !Object.values(row).includes(second.session.id));

      const principal = await auth.authenticateRequest({ cookie: first.session.id });
      assert.ok(principal);
      assert.equal(principal.name, 'alice');
      assert.equal(principal.kind, 'user');
      assert.equal(principal.via, 'session');
      assert.equal(principal.sessionId, secretHash(first.session.id));
      assert.equal(principal.can('jobs:write'), true);
      assert.equal(principal.can('users:admin'), false);
      assert.equal(await auth.authenticateRequest({ cookie: 'not-a-session' }), null);
      assert.equal(await auth.authenticateRequest({ cookie: first.session.id.slice(0, -1) }), null);
    });
  });

  it('ends after 30 idle minutes, and each use extends it', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const idle = (await auth.login('alice', USER_PASSWORD, CLIENT)).session;
      const busy = (await auth.login('alice', USER_PASSWORD, CLIENT)).session;
      for (let step = 0; step < 4; step += 1) {
        clock.advance(20 * MINUTE);
        assert.ok(await auth.authenticateRequest({ cookie: busy.id }), `still live after ${(step + 1) * 20} minutes of activity`);
      }
      assert.equal(await auth.authenticateRequest({ cookie: idle.id }), null, 'idle for 80 minutes');

      clock.advance(30 * MINUTE - 1);
      assert.ok(await auth.authenticateRequest({ cookie: busy.id }), 'one millisecond short of the idle timeout');
      clock.advance(30 * MINUTE);
      assert.equal(await auth.authenticateRequest({ cookie: busy.id }), null, 'exactly 30 minutes idle');
    });
  });

  it('ends after 24 hours however active it is', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const { session } = await auth.login('alice', USER_PASSWORD, CLIENT);
      assert.equal(session.expiresAt, new Date(clock.now().getTime() + 24 * HOUR).toISOString());
      for (let minutes = 25; minutes < 24 * 60; minutes += 25) {
        clock.advance(25 * MINUTE);
        assert.ok(await auth.authenticateRequest({ cookie: session.id }), `live at ${minutes} minutes`);
      }
      clock.set(new Date(Date.parse(session.expiresAt) - 1));
      assert.ok(await auth.authenticateRequest({ cookie: session.id }));
      clock.advance(1);
      assert.equal(await auth.authenticateRequest({ cookie: session.id }), null);
    });
  });

  it('keeps at most five sessions per user: the sixth login ends the oldest', async () => {
    await withAuth(async ({ auth, clock, auditEntries }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      await auth.users.add({ name: 'bob', role: 'viewer', password: USER_PASSWORD }, CLI);
      const bob = (await auth.login('bob', USER_PASSWORD, CLIENT)).session;
      const ids: string[] = [];
      for (let index = 0; index < 7; index += 1) {
        ids.push((await auth.login('alice', USER_PASSWORD, CLIENT)).session.id);
        clock.advance(MINUTE);
      }
      const live = await Promise.all(ids.map(async (id) => (await auth.authenticateRequest({ cookie: id })) !== null));
      assert.deepEqual(live, [false, false, true, true, true, true, true]);
      assert.ok(await auth.authenticateRequest({ cookie: bob.id }), "another user's session is untouched");
      const logins = await auditEntries({ action: 'login_success' });
      assert.deepEqual(
        logins.filter((entry) => entry.user === 'alice').map((entry) => entry.details.ended_oldest_sessions ?? 0),
        [0, 0, 0, 0, 0, 1, 1],
      );
    });
  });

  it('honours a smaller limit from the policy, even for logins at the same instant', async () => {
    await withAuth(
      async ({ auth }) => {
        await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
        const first = (await auth.login('alice', USER_PASSWORD, CLIENT)).session;
        const second = (await auth.login('alice', USER_PASSWORD, CLIENT)).session;
        assert.equal(await auth.authenticateRequest({ cookie: first.id }), null);
        assert.ok(await auth.authenticateRequest({ cookie: second.id }), 'the new session is never the one that ends');
      },
      { policy: { maxSessionsPerUser: 1 } },
    );
  });

  it('ends the session the browser still carried when it logs in again (fixation)', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const planted = (await auth.login('alice', USER_PASSWORD, CLIENT)).session;
      const fresh = (await auth.login('alice', USER_PASSWORD, CLIENT, { replacingSessionId: planted.id })).session;
      assert.notEqual(fresh.id, planted.id);
      assert.equal(await auth.authenticateRequest({ cookie: planted.id }), null);
      assert.ok(await auth.authenticateRequest({ cookie: fresh.id }));
    });
  });

  it('ends on logout, audited', async () => {
    await withAuth(async ({ auth, auditEntries }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const { session } = await auth.login('alice', USER_PASSWORD, CLIENT);
      const other = (await auth.login('alice', USER_PASSWORD, CLIENT)).session;
      const principal = await auth.authenticateRequest({ cookie: session.id });
      assert.ok(principal);
      await auth.logout(principal, CLIENT);
      assert.equal(await auth.authenticateRequest({ cookie: session.id }), null);
      assert.ok(await auth.authenticateRequest({ cookie: other.id }), 'only the one session ends');
      const [logout] = await auditEntries({ action: 'logout' });
      assert.deepEqual({ user: logout?.user, ip: logout?.ip_address, ua: logout?.user_agent }, { user: 'alice', ip: CLIENT.ip, ua: CLIENT.userAgent });
    });
  });

  it("ends all of a user's sessions when the password changes, is reset, or the user is disabled", async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const login = async (password: string) => (await auth.login('alice', password, CLIENT)).session.id;
      const stillLive = async (ids: string[]) => Promise.all(ids.map(async (id) => (await auth.authenticateRequest({ cookie: id })) !== null));
      const adminSession = (await auth.login('admin', ADMIN_PASSWORD, CLIENT)).session.id;

      let ids = [await login(USER_PASSWORD), await login(USER_PASSWORD)];
      const principal = await auth.authenticateRequest({ cookie: ids[0] ?? '' });
      assert.ok(principal);
      await auth.users.changeOwnPassword(principal, USER_PASSWORD, 'Changed-passw0rd', CLIENT);
      assert.deepEqual(await stillLive(ids), [false, false]);

      ids = [await login('Changed-passw0rd'), await login('Changed-passw0rd')];
      await auth.users.resetPassword('alice', 'Reset-by-admin-1', CLI);
      assert.deepEqual(await stillLive(ids), [false, false]);

      ids = [await login('Reset-by-admin-1')];
      await auth.users.disable('alice', CLI);
      assert.deepEqual(await stillLive(ids), [false]);
      await auth.users.enable('alice', CLI);
      assert.deepEqual(await stillLive(ids), [false], 'enabling does not bring old sessions back');
      assert.deepEqual(await stillLive([adminSession]), [true]);
    });
  });

  it('takes effect of a role change on existing sessions at once', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const { session } = await auth.login('alice', USER_PASSWORD, CLIENT);
      assert.equal((await auth.authenticateRequest({ cookie: session.id }))?.can('jobs:write'), true);
      await auth.users.setRole('alice', 'viewer', CLI);
      const after = await auth.authenticateRequest({ cookie: session.id });
      assert.equal(after?.role, 'viewer');
      assert.equal(after?.can('jobs:write'), false);
    });
  });

  it('matches the CSRF token of the session only', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const one = await auth.login('alice', USER_PASSWORD, CLIENT);
      const two = await auth.login('alice', USER_PASSWORD, CLIENT);
      const principal = await auth.authenticateRequest({ cookie: one.session.id });
      assert.ok(principal);
      assert.equal(principal.csrfToken, one.session.csrfToken);
      assert.equal(csrfTokenMatches(principal, one.session.csrfToken), true);
      assert.equal(csrfTokenMatches(principal, two.session.csrfToken), false);
      assert.equal(csrfTokenMatches(principal, ''), false);
      assert.equal(csrfTokenMatches(principal, undefined), false);
      const { key } = await auth.apiKeys.create({ user: 'alice', name: 'k' }, CLI);
      const viaKey = await auth.authenticateRequest({ apiKeyHeader: key });
      assert.ok(viaKey);
      assert.equal(csrfTokenMatches(viaKey, one.session.csrfToken), false, 'a key principal has no CSRF token');
    });
  });

  it('prunes ended sessions', async () => {
    await withAuth(async ({ auth, clock, database }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      await auth.login('alice', USER_PASSWORD, CLIENT);
      clock.advance(20 * MINUTE);
      const recent = (await auth.login('alice', USER_PASSWORD, CLIENT)).session;
      clock.advance(15 * MINUTE);
      assert.deepEqual(await auth.prune(), { sessions: 1, loginFailures: 0, apiKeys: 0 });
      const rows = await database.kysely.selectFrom('sessions').select('id_hash').execute();
      assert.deepEqual(rows, [{ id_hash: secretHash(recent.id) }]);
    });
  });
});
