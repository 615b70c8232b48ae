import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { TEST_PASSWORD, type TestServer, anonymousApi, startTestServer } from './support.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The key routes over real HTTP, as a client holding a key or a bearer token uses them: what such a
 * credential may create, see and revoke stays within its own rights and lifetime (review issue 10).
 */
describe('API key routes: a key or bearer token never makes or changes a credential beyond itself', () => {
  let service: TestServer;
  const test = localActor('test');
  const keyHeaders = (key: string) => ({ 'x-api-key': key });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  /** POST /api/v1/api-keys with the given credential's headers. */
  const createKey = (body: Record<string, unknown>, headers: Record<string, string>) => anonymousApi(service.url, 'POST', '/api/v1/api-keys', body, headers);

  before(async () => {
    service = await startTestServer();
    await service.server.auth.users.add({ name: 'alice', role: 'operator', password: TEST_PASSWORD }, test);
  });
  after(async () => {
    await service?.close();
  });

  it("refuses a 1-day jobs:read key minting a key that never expires, and revoking its owner's full-rights key", async () => {
    const { auth } = service.server;
    const full = await auth.apiKeys.create({ user: 'alice', name: 'full rights' }, test);
    const reader = await auth.apiKeys.create({ user: 'alice', name: 'reader', scopes: ['jobs:read'], expiresAt: new Date(Date.now() + DAY_MS) }, test);

    const minted = await createKey({ name: 'forever', scopes: ['jobs:read'] }, keyHeaders(reader.key));
    assert.equal(minted.status, 403, JSON.stringify(minted.body));
    assert.equal(minted.body.error.code, 'permission_denied');
    assert.equal((await anonymousApi(service.url, 'GET', '/api/v1/api-keys', undefined, keyHeaders(reader.key))).status, 403);
    const revoked = await anonymousApi(service.url, 'DELETE', `/api/v1/api-keys/${full.record.id}`, undefined, keyHeaders(reader.key));
    assert.equal(revoked.status, 403);
    assert.equal((await anonymousApi(service.url, 'GET', '/api/v1/auth/me', undefined, keyHeaders(full.key))).status, 200, 'the full-rights key still works');

    // With keys:manage the reader still cannot touch the stronger key, nor see it.
    const manager = await auth.apiKeys.create(
      { user: 'alice', name: 'manager', scopes: ['jobs:read', 'keys:manage'], expiresAt: new Date(Date.now() + DAY_MS) },
      test,
    );
    const stronger = await anonymousApi(service.url, 'DELETE', `/api/v1/api-keys/${full.record.id}`, undefined, keyHeaders(manager.key));
    assert.equal(stronger.status, 403);
    assert.equal(stronger.body.error.code, 'key_exceeds_rights');
    const listed = await anonymousApi(service.url, 'GET', '/api/v1/api-keys', undefined, keyHeaders(manager.key));
    assert.equal(listed.status, 200);
    assert.deepEqual((listed.body.api_keys as Array<{ name: string }>).map((key) => key.name).sort(), ['manager', 'reader']);
    const forever = await createKey({ name: 'forever', scopes: ['jobs:read'] }, keyHeaders(manager.key));
    assert.equal(forever.status, 403);
    assert.equal(forever.body.error.code, 'expiry_exceeds_credential');
  });

  it('refuses a 15-minute bearer token minting a permanent key; what it makes expires with it', async () => {
    const token = await anonymousApi(service.url, 'POST', '/api/v1/auth/token', { username: 'alice', password: TEST_PASSWORD });
    assert.equal(token.status, 200);
    const permanent = await createKey({ name: 'permanent', scopes: ['jobs:read'] }, bearer(token.body.access_token));
    assert.equal(permanent.status, 403);
    assert.equal(permanent.body.error.code, 'expiry_exceeds_credential');
    const bounded = await createKey({ name: 'bounded', scopes: ['jobs:read'], expires_at: token.body.expires_at }, bearer(token.body.access_token));
    assert.equal(bounded.status, 201, JSON.stringify(bounded.body));
    assert.deepEqual([bounded.body.api_key.expires_at, bounded.body.api_key.parent_id], [token.body.expires_at, null]);
  });

  it("gives a key's token the key's rights and no longer life; a key made with it dies with the key", async () => {
    const { auth } = service.server;
    const keyExpiry = new Date(Date.now() + 10 * 60 * 1000);
    const parent = await auth.apiKeys.create({ user: 'alice', name: 'ci', scopes: ['jobs:read', 'keys:manage'], expiresAt: keyExpiry }, test);
    const token = await anonymousApi(service.url, 'POST', '/api/v1/auth/token', { api_key: parent.key });
    assert.equal(token.status, 200);
    assert.ok(Date.parse(token.body.expires_at) <= keyExpiry.getTime(), `${token.body.expires_at} is no later than ${keyExpiry.toISOString()}`);
    assert.ok(token.body.expires_in <= 600);
    const me = await anonymousApi(service.url, 'GET', '/api/v1/auth/me', undefined, bearer(token.body.access_token));
    assert.deepEqual(
      [me.body.via, me.body.permissions, me.body.api_key_id, me.body.expires_at],
      ['jwt', ['jobs:read', 'keys:manage'], parent.record.id, token.body.expires_at],
    );

    const made = await createKey({ name: 'made by token', scopes: ['jobs:read'], expires_at: token.body.expires_at }, bearer(token.body.access_token));
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.equal(made.body.api_key.parent_id, parent.record.id);
    assert.equal((await anonymousApi(service.url, 'GET', '/api/v1/jobs?limit=1', undefined, keyHeaders(made.body.key))).status, 200);

    const revoked = await anonymousApi(service.url, 'DELETE', `/api/v1/api-keys/${parent.record.id}`, undefined, keyHeaders(parent.key));
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.deepEqual([revoked.body.status, revoked.body.also_revoked], ['revoked', [made.body.api_key.id]]);
    assert.equal(
      (await anonymousApi(service.url, 'GET', '/api/v1/jobs?limit=1', undefined, keyHeaders(made.body.key))).status,
      401,
      'the child died with its parent',
    );
    assert.equal((await anonymousApi(service.url, 'GET', '/api/v1/jobs?limit=1', undefined, bearer(token.body.access_token))).status, 401);
  });

  it('lets a signed-in user manage keys as before: any expiry, for a viewer too', async () => {
    await service.server.auth.users.add({ name: 'vera', role: 'viewer', password: TEST_PASSWORD }, test);
    const login = await anonymousApi(service.url, 'POST', '/api/v1/auth/login', { username: 'vera', password: TEST_PASSWORD });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const headers = { cookie, 'x-csrf-token': login.body.csrf_token, origin: new URL(service.url).origin };
    const created = await createKey({ name: 'from a session' }, headers);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual([created.body.api_key.expires_at, created.body.api_key.scopes, created.body.api_key.parent_id], [null, null, null]);
  });
});
