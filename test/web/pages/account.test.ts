import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../../src/auth/principal.js';
import { SESSION_COOKIE } from '../../../src/http/guard.js';
import { TEST_PASSWORD, type TestRole, type TestSession, type WebTestServer, startWebTestServer } from '../support/server.js';

const CLIENT = { ip: '127.0.0.1', userAgent: 'test' };

describe('account, API key, user and audit pages', () => {
  let server: WebTestServer;

  /** A request of a role's user (default the admin) or of another signed-in session. */
  async function send(
    method: 'GET' | 'POST',
    url: string,
    options: { form?: Record<string, string | string[]>; user?: TestRole | TestSession; json?: boolean } = {},
  ) {
    const user = options.user ?? 'admin';
    return server.send(method, url, {
      session: typeof user === 'string' ? server.sessions[user] : user,
      ...(options.form ? { form: options.form } : {}),
      ...(options.json ? { json: true } : {}),
    });
  }

  before(async () => {
    server = await startWebTestServer({ listen: false });
  });
  after(async () => {
    await server.close();
  });

  it('links the account pages from the settings, the admin-only ones for admins only', async () => {
    const admin = await send('GET', '/config');
    for (const link of ['/account/password', '/account/api-keys', '/audit', '/users']) assert.match(admin.body, new RegExp(`href="${link}"`));
    const operator = await send('GET', '/config', { user: 'operator' });
    assert.match(operator.body, /href="\/account\/password"/);
    assert.ok(!operator.body.includes('href="/users"') && !operator.body.includes('href="/audit"'));
    assert.equal((await send('GET', '/users', { user: 'operator' })).status, 403);
    assert.equal((await send('GET', '/audit', { user: 'viewer' })).status, 403);
    assert.equal((await send('POST', '/users', { user: 'operator', form: { name: 'mallory', role: 'admin', password: 'Mallory-Pass-123' } })).status, 403);
  });

  it('changes one’s own password, explaining every refusal next to its field, and stays signed in', async () => {
    await server.auth.users.add({ name: 'pat', role: 'viewer', password: TEST_PASSWORD }, localActor('test'));
    const pat = await server.login('pat');
    const mismatch = await send('POST', '/account/password', {
      user: pat,
      form: { current_password: TEST_PASSWORD, new_password: 'Another-Pass-42', confirm_password: 'Another-Pass-43' },
    });
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.body, /id="confirm-password-error">The two new passwords differ/);

    const weak = await send('POST', '/account/password', {
      user: pat,
      form: { current_password: TEST_PASSWORD, new_password: 'short', confirm_password: 'short' },
    });
    assert.equal(weak.status, 400);
    assert.match(
      weak.body,
      /id="new-password-error">This password cannot be used: It needs at least 12 characters\. It needs an upper-case letter\. It needs a digit\./,
    );

    const wrong = await send('POST', '/account/password', {
      user: pat,
      form: { current_password: 'Not-The-Password-1', new_password: 'Another-Pass-42', confirm_password: 'Another-Pass-42' },
    });
    assert.equal(wrong.status, 400);
    assert.match(wrong.body, /id="current-password-error">The current password is not right\./);

    const changed = await send('POST', '/account/password', {
      user: pat,
      form: { current_password: TEST_PASSWORD, new_password: 'Another-Pass-42', confirm_password: 'Another-Pass-42' },
    });
    assert.equal(changed.status, 303);
    assert.equal(changed.location, '/?notice=password_changed');
    await assert.rejects(server.auth.login('pat', TEST_PASSWORD, CLIENT));
    assert.ok(await server.auth.login('pat', 'Another-Pass-42', CLIENT));

    // The change ended every session of pat; the browser that asked got a new one and stays signed in.
    const renewed = changed.cookies[SESSION_COOKIE];
    assert.ok(renewed !== undefined && renewed !== '' && renewed !== pat.id, 'a new session cookie');
    const page = await send('GET', '/?notice=password_changed', { user: { ...pat, id: renewed, cookie: `${SESSION_COOKIE}=${renewed}` } });
    assert.equal(page.status, 200);
    assert.match(page.body, /Your password was changed\./);
    assert.equal((await send('GET', '/', { user: pat })).status, 303, 'the old session ended');
  });

  it('creates an API key shown once, limited to the chosen scopes, and revokes it', async () => {
    const created = await send('POST', '/account/api-keys', {
      user: 'operator',
      form: { name: 'backup <script>', scopes: ['jobs:read', 'archives:read'], expires_days: '30' },
    });
    assert.equal(created.status, 201);
    const key = /id="new-key" class="secret" value="(d2i_[A-Za-z0-9_-]+)"/.exec(created.body)?.[1];
    assert.ok(key, 'the key is on the page');
    assert.match(created.body, /backup &lt;script&gt;/);
    assert.ok(!created.body.includes('backup <script>'));
    const principal = await server.auth.apiKeys.authenticate(key);
    assert.deepEqual([...(principal?.permissions ?? [])].sort(), ['archives:read', 'jobs:read']);

    const listed = await send('GET', '/account/api-keys', { user: 'operator' });
    assert.ok(!listed.body.includes(key), 'never shown again');
    assert.match(listed.body, new RegExp(`<code>${key.slice(0, 8)}[^<]*…</code>`));
    const id = /data-key-id="(key_[a-z0-9]+)"/.exec(listed.body)?.[1] ?? '';
    assert.ok(!listed.body.includes('value="users:admin"'), 'an operator is not offered admin scopes');

    const beyond = await send('POST', '/account/api-keys', { user: 'operator', form: { name: 'too strong', scopes: ['users:admin'] } });
    assert.equal(beyond.status, 400);
    assert.match(beyond.body, /id="key-scopes-error">Choose only scopes your role allows\./);
    const badExpiry = await send('POST', '/account/api-keys', { user: 'operator', form: { name: 'x', expires_days: '0' } });
    assert.match(badExpiry.body, /id="key-expires-error">Enter a whole number of days from 1 to 3650/);

    const revoked = await send('POST', `/account/api-keys/${id}/revoke`, { user: 'operator', form: {} });
    assert.equal(revoked.location, '/account/api-keys?notice=api_key_revoked');
    assert.equal(await server.auth.apiKeys.authenticate(key), null);
    const again = await send('POST', `/account/api-keys/${id}/revoke`, { user: 'operator', form: {}, json: true });
    assert.equal(again.status, 409);
    assert.equal(JSON.parse(again.body).error.message, 'This API key is already revoked.');
    assert.match((await send('GET', '/account/api-keys', { user: 'operator' })).body, /<span class="badge status-damaged">Revoked<\/span>/);
  });

  it('lets a key manage keys on the key page only with keys:manage, and only within its own rights and expiry', async () => {
    const owner = server.sessions.operator.user;
    const test = localActor('test');
    const day = new Date(Date.now() + 24 * 60 * 60 * 1000);
    const full = await server.auth.apiKeys.create({ user: owner, name: 'page full' }, test);
    const reader = await server.auth.apiKeys.create({ user: owner, name: 'page reader', scopes: ['jobs:read'], expiresAt: day }, test);
    const manager = await server.auth.apiKeys.create({ user: owner, name: 'page manager', scopes: ['jobs:read', 'keys:manage'], expiresAt: day }, test);
    const asKey = (key: string) => ({ session: null, headers: { 'x-api-key': key } });

    assert.equal((await server.send('GET', '/account/api-keys', asKey(reader.key))).status, 403);
    assert.equal((await server.send('POST', '/account/api-keys', { ...asKey(reader.key), form: { name: 'minted', scopes: ['jobs:read'] } })).status, 403);
    assert.equal((await server.send('POST', `/account/api-keys/${full.record.id}/revoke`, { ...asKey(reader.key), form: {} })).status, 403);

    const page = await server.send('GET', '/account/api-keys', asKey(manager.key));
    assert.equal(page.status, 200);
    assert.ok(!page.body.includes(`data-key-id="${full.record.id}"`), 'the stronger key is not listed');
    assert.match(page.body, new RegExp(`data-key-id="${reader.record.id}"`));
    const forever = await server.send('POST', '/account/api-keys', { ...asKey(manager.key), form: { name: 'forever', scopes: ['jobs:read'] } });
    assert.equal(forever.status, 400);
    assert.match(forever.body, /id="key-expires-error">A key created with a key or token must expire no later than that key or token\./);
    const revoke = await server.send('POST', `/account/api-keys/${full.record.id}/revoke`, { ...asKey(manager.key), form: {}, json: true });
    assert.equal(revoke.status, 403);
    assert.equal(JSON.parse(revoke.body).error.message, 'This API key has rights that the key or token you are using lacks, so it cannot revoke it.');
    assert.ok(await server.auth.apiKeys.authenticate(full.key), 'the full-rights key still works');
  });

  it('lets an admin add, re-role, disable, enable and delete users, but never the last admin', async () => {
    const weak = await send('POST', '/users', { form: { name: 'newbie', role: 'operator', password: 'weak' } });
    assert.equal(weak.status, 400);
    assert.match(weak.body, /id="new-user-password-error">This password cannot be used:/);
    const badName = await send('POST', '/users', { form: { name: 'X', role: 'operator', password: 'Newbie-Pass-123' } });
    assert.match(badName.body, /id="new-user-name-error">Use 3 to 32 characters/);

    const added = await send('POST', '/users', { form: { name: 'newbie', role: 'operator', password: 'Newbie-Pass-123' } });
    assert.equal(added.location, '/users?notice=user_added');
    let page = await send('GET', '/users');
    assert.match(page.body, /newbie[\s\S]*must change password/);
    const duplicate = await send('POST', '/users', { form: { name: 'newbie', role: 'viewer', password: 'Newbie-Pass-123' } });
    assert.match(duplicate.body, /id="new-user-name-error">A user with this name already exists\./);

    assert.equal((await send('POST', '/users/newbie/role', { form: { role: 'viewer' } })).location, '/users?notice=user_role_changed');
    assert.equal((await send('POST', '/users/newbie/disable', { form: {} })).location, '/users?notice=user_disabled');
    let user = (await server.auth.users.list(localActor('test'))).find((candidate) => candidate.name === 'newbie');
    assert.deepEqual([user?.role, user?.disabled], ['viewer', true]);
    assert.equal((await send('POST', '/users/newbie/enable', { form: {} })).location, '/users?notice=user_enabled');

    const confirm = await send('GET', '/users/newbie/delete');
    assert.match(confirm.body, /Delete the user newbie\?/);
    assert.equal((await send('POST', '/users/newbie/delete', { form: {} })).location, '/users?notice=user_deleted');
    user = (await server.auth.users.list(localActor('test'))).find((candidate) => candidate.name === 'newbie');
    assert.equal(user, undefined);

    const lastAdmin = await send('POST', '/users/admin-user/role', { form: { role: 'viewer' }, json: true });
    assert.equal(lastAdmin.status, 409);
    assert.equal(JSON.parse(lastAdmin.body).error.message, 'This is the last enabled administrator; make another user an administrator first.');
    page = await send('GET', '/users/nobody-here/delete');
    assert.equal(page.status, 404);
  });

  it('shows the audit log, filtered and escaped', async () => {
    await server.auth.audit.record({
      event_type: 'config',
      action: 'change',
      user: 'admin-user',
      ip_address: '127.0.0.1',
      user_agent: null,
      details: { note: '<script>alert(1)</script>' },
    });
    const page = await send('GET', '/audit?event_type=config');
    assert.equal(page.status, 200);
    assert.match(page.body, /Showing 1–1 of 1 item/);
    assert.ok(!page.body.includes('<script>alert(1)'));
    assert.match(page.body, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    const byUser = await send('GET', '/audit?event_type=user&user=admin-user');
    assert.match(byUser.body, /<td[^>]*>user<\/td><td[^>]*>add<\/td>/);
    const badDate = await send('GET', '/audit?from=soon');
    assert.match(badDate.body, /id="audit-from-error">Enter a date like 2025-12-30\./);
  });
});
