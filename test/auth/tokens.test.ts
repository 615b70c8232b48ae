import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { AuthenticationError, LockedOutError, PasswordChangeRequiredError } from '../../src/auth/errors.js';
import { SIGNING_KEY_FILE, loadOrCreateSigningKey } from '../../src/auth/tokens.js';
import { withTempDir } from '../db/support.js';
import { ADMIN_PASSWORD, CLI, CLIENT, DAY, MINUTE, USER_PASSWORD, withAuth } from './support.js';

/** Flips one character of the token's payload or signature, keeping it well-formed base64url. */
function tamper(token: string, part: 1 | 2): string {
  const parts = token.split('.');
  const text = parts[part] ?? '';
  const index = Math.floor(text.length / 2);
  parts[part] = `${text.slice(0, index)}${text[index] === 'A' ? 'B' : 'A'}${text.slice(index + 1)}`;
  return parts.join('.');
}

describe('JWT bearer tokens', () => {
  it('issues a 15-minute HS256 token for a password with sub, role, cv and jti, and verifies it', async () => {
    await withAuth(async ({ auth, auditEntries }) => {
      const alice = await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const issued = await auth.tokens.issueForPassword('alice', USER_PASSWORD, CLIENT);
      assert.equal(issued.tokenType, 'Bearer');
      assert.equal(issued.expiresIn, 900);
      assert.equal(issued.expiresAt, '2026-01-15T10:15:00.000Z');
      assert.deepEqual(decodeProtectedHeader(issued.token), { alg: 'HS256', typ: 'JWT' });
      const claims = decodeJwt(issued.token);
      assert.equal(claims.sub, alice.id);
      assert.equal(claims.role, 'operator');
      assert.equal(claims.cv, 1);
      assert.equal(typeof claims.jti, 'string');
      assert.equal(claims.exp, Date.parse('2026-01-15T10:15:00Z') / 1000);
      assert.equal(claims.scope, undefined);

      const principal = await auth.authenticateRequest({ bearer: issued.token });
      assert.ok(principal);
      assert.deepEqual([principal.kind, principal.via, principal.name, principal.role], ['user', 'jwt', 'alice', 'operator']);
      assert.equal(principal.can('jobs:write'), true);

      const [entry] = await auditEntries({ action: 'token_issued' });
      assert.deepEqual(entry?.details, { method: 'password', jti: claims.jti ?? null, expires_at: issued.expiresAt });
    });
  });

  it('refuses an expired token, one with a changed payload or signature, one signed with another key, and junk', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const { token } = await auth.tokens.issueForPassword('alice', USER_PASSWORD, CLIENT);
      assert.ok(await auth.tokens.verify(token));
      for (const bad of [tamper(token, 1), tamper(token, 2), `${token}x`, 'a.b.c', '', token.split('.').slice(0, 2).join('.')]) {
        assert.equal(await auth.tokens.verify(bad), null, bad);
      }
      const otherService = await withAuth(async (other) => {
        await other.auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
        return (await other.auth.tokens.issueForPassword('alice', USER_PASSWORD, CLIENT)).token;
      });
      assert.equal(await auth.tokens.verify(otherService), null, 'a token of another installation');

      clock.advance(15 * MINUTE - 1000);
      assert.ok(await auth.tokens.verify(token));
      clock.advance(1000);
      assert.equal(await auth.tokens.verify(token), null, 'expired');
    });
  });

  it('is refused after the password changes, the role changes or the user is disabled or deleted', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const issue = async (password: string) => (await auth.tokens.issueForPassword('alice', password, CLIENT)).token;

      let token = await issue(USER_PASSWORD);
      const { principal } = await auth.login('alice', USER_PASSWORD, CLIENT);
      await auth.users.changeOwnPassword(principal, USER_PASSWORD, 'Changed-passw0rd', CLIENT);
      assert.equal(await auth.tokens.verify(token), null, 'after a password change');

      token = await issue('Changed-passw0rd');
      await auth.users.resetPassword('alice', 'Reset-passw0rd-1', CLI);
      assert.equal(await auth.tokens.verify(token), null, 'after a password reset');

      token = await issue('Reset-passw0rd-1');
      await auth.users.setRole('alice', 'viewer', CLI);
      assert.equal(await auth.tokens.verify(token), null, 'after a role change');

      token = await issue('Reset-passw0rd-1');
      await auth.users.disable('alice', CLI);
      assert.equal(await auth.tokens.verify(token), null, 'while disabled');
      await auth.users.enable('alice', CLI);
      assert.equal(await auth.tokens.verify(token), null, 'a token from before the disable stays dead');

      token = await issue('Reset-passw0rd-1');
      assert.ok(await auth.tokens.verify(token));
      await auth.users.delete('alice', CLI);
      assert.equal(await auth.tokens.verify(token), null, 'after deletion');
    });
  });

  it('goes through the same credential check as a login: one error, lockout included', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      await assert.rejects(auth.tokens.issueForPassword('nobody', USER_PASSWORD, CLIENT), {
        code: 'invalid_credentials',
        message: 'Invalid user name or password',
      });
      for (let attempt = 0; attempt < 5; attempt += 1)
        await assert.rejects(auth.tokens.issueForPassword('alice', 'Wrong-passw0rd-1', CLIENT), AuthenticationError);
      await assert.rejects(auth.tokens.issueForPassword('alice', USER_PASSWORD, CLIENT), LockedOutError);
    });
  });

  it('gives no token to a user whose password must be changed (reset or expired), and says why', async () => {
    await withAuth(async ({ auth, clock, auditEntries }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD, requireChange: true }, CLI);
      await assert.rejects(auth.tokens.issueForPassword('alice', USER_PASSWORD, CLIENT), (error: unknown) => {
        assert.ok(error instanceof PasswordChangeRequiredError);
        assert.equal(error.code, 'password_change_required');
        assert.match(error.message, /PUT \/api\/v1\/auth\/password/);
        return true;
      });
      assert.deepEqual(await auditEntries({ action: 'token_issued' }), []);
      const [refusal] = await auditEntries({ action: 'login_failure' });
      assert.deepEqual([refusal?.user, refusal?.details], ['alice', { reason: 'password_change_required', method: 'password', purpose: 'token' }]);

      const { principal } = await auth.login('alice', USER_PASSWORD, CLIENT);
      await auth.users.changeOwnPassword(principal, USER_PASSWORD, 'Changed-passw0rd', CLIENT);
      assert.ok(await auth.tokens.issueForPassword('alice', 'Changed-passw0rd', CLIENT), 'a token once the password is changed');
      clock.advance(90 * DAY);
      await assert.rejects(auth.tokens.issueForPassword('alice', 'Changed-passw0rd', CLIENT), { code: 'password_change_required' }, 'nor once it has expired');
    });
  });

  it('issues a token for an API key carrying its scope, which dies with the key and shrinks with the owner', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'olga', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      const { key, record } = await auth.apiKeys.create({ user: 'olga', name: 'ci', scopes: ['jobs:read', 'jobs:write', 'system:write'] }, CLI);
      const issued = await auth.tokens.issueForApiKey(key, CLIENT);
      const claims = decodeJwt(issued.token);
      assert.equal(claims.scope, 'jobs:read jobs:write system:write');
      assert.equal(claims.akid, record.id);

      const principal = await auth.authenticateRequest({ bearer: issued.token });
      assert.ok(principal);
      assert.deepEqual([principal.kind, principal.via, principal.apiKeyId], ['api_key', 'jwt', record.id]);
      assert.deepEqual([...principal.permissions], ['jobs:read', 'jobs:write', 'system:write']);

      await auth.users.setRole('olga', 'operator', CLI);
      assert.equal(await auth.tokens.verify(issued.token), null, 'the role change killed the token');
      const again = await auth.tokens.issueForApiKey(key, CLIENT);
      assert.deepEqual([...((await auth.tokens.verify(again.token))?.permissions ?? [])], ['jobs:read', 'jobs:write']);

      await auth.apiKeys.revoke(record.id, CLI);
      assert.equal(await auth.tokens.verify(again.token), null, 'revoking the key killed its token');
      await assert.rejects(auth.tokens.issueForApiKey(key, CLIENT), { code: 'invalid_api_key' });
      await assert.rejects(auth.tokens.issueForApiKey('d2i_nonsense', CLIENT), { code: 'invalid_api_key' });
    });
  });

  it("issues a key's token with the key's rights, expiring no later than the key", async () => {
    await withAuth(async ({ auth, clock, auditEntries }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const keyExpiresAt = new Date(clock.now().getTime() + 5 * MINUTE);
      const { key, record } = await auth.apiKeys.create({ user: 'alice', name: 'short', scopes: ['jobs:read', 'archives:read'], expiresAt: keyExpiresAt }, CLI);
      const issued = await auth.tokens.issueForApiKey(key, CLIENT);
      assert.equal(issued.expiresAt, keyExpiresAt.toISOString());
      assert.equal(issued.expiresIn, 300);
      const claims = decodeJwt(issued.token);
      assert.equal(claims.exp, keyExpiresAt.getTime() / 1000);
      assert.equal(claims.scope, 'jobs:read archives:read');
      const [entry] = await auditEntries({ action: 'token_issued' });
      assert.equal(entry?.details.expires_at, keyExpiresAt.toISOString());

      const principal = await auth.tokens.verify(issued.token);
      assert.deepEqual([...(principal?.permissions ?? [])], ['jobs:read', 'archives:read'], "not the owner's operator rights");
      assert.equal(principal?.expiresAt, keyExpiresAt.toISOString());
      assert.equal(principal?.can('jobs:write'), false);

      clock.advance(5 * MINUTE - 500);
      const last = await auth.tokens.issueForApiKey(key, CLIENT);
      assert.deepEqual([last.expiresAt, last.expiresIn], [record.expiresAt, 1], "token times are whole seconds: issued at the start of the key's last one");
      clock.advance(500);
      assert.equal(await auth.tokens.verify(issued.token), null);

      // A key ending within the current whole second cannot get a token: any would be dead on arrival or outlive it.
      const odd = await auth.apiKeys.create({ user: 'alice', name: 'odd', scopes: ['jobs:read'], expiresAt: new Date(clock.now().getTime() + 300) }, CLI);
      clock.advance(100);
      assert.ok(await auth.authenticateRequest({ apiKeyHeader: odd.key }), 'the key itself still works');
      await assert.rejects(auth.tokens.issueForApiKey(odd.key, CLIENT), { code: 'invalid_api_key' });
    });
  });

  it("gives a password token's principal the token's expiry, which bounds the keys it creates", async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const issued = await auth.tokens.issueForPassword('alice', USER_PASSWORD, CLIENT);
      const principal = await auth.tokens.verify(issued.token);
      assert.deepEqual([principal?.kind, principal?.via, principal?.expiresAt], ['user', 'jwt', issued.expiresAt]);
    });
  });

  it('agrees on one key when several callers create it at once, and refuses a file with no usable key', async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, SIGNING_KEY_FILE);
      const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateSigningKey(file)));
      const distinct = new Set(keys.map((key) => Buffer.from(key).toString('hex')));
      assert.equal(distinct.size, 1);
      await writeFile(file, 'short\n', { mode: 0o600 });
      await assert.rejects(loadOrCreateSigningKey(file), { code: 'signing_key_invalid' });
    });
  });
});
