import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditEntry } from '../../src/audit/model.js';
import { localActor } from '../../src/auth/principal.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { createSettingsRepository } from '../../src/db/settings-repository.js';
import { CONTENT_SECURITY_POLICY } from '../../src/http/security-headers.js';
import { openDataDirDatabase } from '../support/database.js';
import { makeIso } from '../tools/iso.js';
import { TEST_ADMIN, TEST_PASSWORD, type TestServer, anonymousApi, api, startTestServer, verifyArchive, waitFor, webSocketUpgradeStatus } from './support.js';

interface Session {
  cookie: string;
  csrf: string;
  setCookie: string;
}

async function login(service: TestServer, username: string, password = TEST_PASSWORD, headers: Record<string, string> = {}): Promise<Session> {
  const response = await anonymousApi(service.url, 'POST', '/api/v1/auth/login', { username, password }, headers);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const setCookie = response.headers.get('set-cookie') ?? '';
  return { cookie: setCookie.split(';')[0] ?? '', csrf: response.body.csrf_token, setCookie };
}

describe('the HTTP security layer: sessions, CSRF, headers, lockout, tokens, audit', () => {
  let work: string;
  let service: TestServer;
  let origin: string;
  let deviceId: string;
  const test = localActor('test');

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-security-'));
    const iso = await makeIso({ dir: work, label: 'SECURITY', dataMiB: 1, files: 1 });
    service = await startTestServer({ devices: [iso.path], env: { DISK2ISO_SECURITY_TRUSTED_PROXIES: '127.0.0.1' } });
    deviceId = (await api(service.url, 'GET', '/api/v1/devices')).body.devices[0].id;
    origin = new URL(service.url).origin;
    for (const [name, role] of [
      ['alice', 'operator'],
      ['bob', 'viewer'],
      ['carol', 'operator'],
    ] as const) {
      await service.server.auth.users.add({ name, role, password: TEST_PASSWORD }, test);
    }
  });
  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('sets an HttpOnly, SameSite=Lax session cookie, Secure only when the browser came over HTTPS', async () => {
    const plain = await login(service, 'alice');
    assert.match(plain.setCookie, /^disk2iso_session=[A-Za-z0-9_-]{43}; /);
    assert.match(plain.setCookie, /; HttpOnly/);
    assert.match(plain.setCookie, /; SameSite=Lax/);
    assert.match(plain.setCookie, /; Path=\//);
    assert.doesNotMatch(plain.setCookie, /; Secure/);
    const viaProxy = await login(service, 'alice', TEST_PASSWORD, { 'x-forwarded-proto': 'https' });
    assert.match(viaProxy.setCookie, /; Secure/, 'the trusted proxy said https');
  });

  it('gives a new session id at every login and ends the one the browser still sent', async () => {
    const first = await login(service, 'alice');
    const second = await login(service, 'alice', TEST_PASSWORD, { cookie: first.cookie });
    assert.notEqual(second.cookie, first.cookie);
    assert.equal((await api(service.url, 'GET', '/api/v1/auth/me', undefined, { cookie: first.cookie })).status, 401);
    const me = await api(service.url, 'GET', '/api/v1/auth/me', undefined, { cookie: second.cookie });
    assert.equal(me.status, 200);
    assert.deepEqual([me.body.name, me.body.via, me.body.csrf_token], ['alice', 'session', second.csrf]);
  });

  it('ends the session at logout: the cookie is cleared and no longer works', async () => {
    const session = await login(service, 'alice');
    const out = await api(service.url, 'POST', '/api/v1/auth/logout', undefined, { cookie: session.cookie, 'x-csrf-token': session.csrf, origin });
    assert.equal(out.status, 204);
    assert.match(out.headers.get('set-cookie') ?? '', /^disk2iso_session=; /);
    assert.equal((await api(service.url, 'GET', '/api/v1/jobs', undefined, { cookie: session.cookie })).status, 401);
  });

  it('refuses a cookie-authenticated state change without the CSRF token or with a foreign or missing Origin', async () => {
    const session = await login(service, 'alice');
    const patch = (headers: Record<string, string>) =>
      api(service.url, 'PATCH', '/api/v1/system/config', { imaging: { read_attempts: 5 } }, { cookie: session.cookie, ...headers });
    const keyRequest = (headers: Record<string, string>) =>
      api(service.url, 'POST', '/api/v1/api-keys', { name: 'csrf probe', scopes: ['jobs:read'] }, { cookie: session.cookie, ...headers });
    const cases: Array<[string, Record<string, string>, number, string]> = [
      ['no token', { origin }, 403, 'csrf_failed'],
      ['a wrong token', { origin, 'x-csrf-token': 'x'.repeat(43) }, 403, 'csrf_failed'],
      ["another session's token", { origin, 'x-csrf-token': (await login(service, 'carol')).csrf }, 403, 'csrf_failed'],
      ['a foreign Origin', { origin: 'https://evil.example', 'x-csrf-token': session.csrf }, 403, 'origin_mismatch'],
      ['a foreign Referer and no Origin', { referer: 'https://evil.example/page', 'x-csrf-token': session.csrf }, 403, 'origin_mismatch'],
      [
        'Origin null with a same-origin Referer',
        { origin: 'null', referer: `${origin}/account/api-keys`, 'x-csrf-token': session.csrf },
        403,
        'origin_mismatch',
      ],
      ['no Origin and an opaque Referer', { referer: 'about:blank', 'x-csrf-token': session.csrf }, 403, 'origin_mismatch'],
      ['neither Origin nor Referer', { 'x-csrf-token': session.csrf }, 403, 'origin_missing'],
    ];
    for (const [what, headers, status, code] of cases) {
      const refused = await keyRequest(headers);
      assert.equal(refused.status, status, what);
      assert.equal(refused.body.error.code, code, what);
    }
    assert.equal((await api(service.url, 'GET', '/api/v1/api-keys', undefined, { cookie: session.cookie })).body.api_keys.length, 0, 'nothing was created');
    assert.equal((await patch({ origin, 'x-csrf-token': session.csrf })).status, 403, 'an operator may not change settings anyway');
    const created = await keyRequest({ origin, 'x-csrf-token': session.csrf });
    assert.equal(created.status, 201, 'the token and the Origin together pass');
    const sameSiteReferer = await keyRequest({ referer: `${origin}/account/api-keys`, 'x-csrf-token': session.csrf });
    assert.equal(sameSiteReferer.status, 201, 'a same-origin Referer stands in for a missing Origin');
  });

  it('refuses a WebSocket opened from another origin, whoever it signs in as', async () => {
    const session = await login(service, 'bob');
    const upgrade = (headers: Record<string, string>): Promise<number> => webSocketUpgradeStatus(service.url, headers);
    // Another port of the same host is the same site, so the Lax session cookie goes along.
    const sameSiteOtherPort = `${new URL(service.url).protocol}//${new URL(service.url).hostname}:1`;
    assert.equal(await upgrade({ cookie: session.cookie, origin: sameSiteOtherPort }), 403);
    assert.equal(await upgrade({ ...service.authHeaders, origin: 'https://evil.example' }), 403);
    assert.equal(await upgrade({ cookie: session.cookie, origin: 'null' }), 403, 'a sandboxed frame has an opaque origin');
    assert.equal(await upgrade({ ...service.authHeaders, origin: 'null', referer: `${origin}/` }), 403, 'nor does its Referer stand in for it');
    assert.equal(await upgrade({ cookie: session.cookie, origin }), 101, "the service's own pages may");
    assert.equal(await upgrade(service.authHeaders), 101, 'a client that is no browser sends no Origin');
  });

  it('refuses Origin null on every state-changing request, signed in or not: no login CSRF from a sandboxed frame', async () => {
    const opaque = { origin: 'null', referer: `${origin}/login` };
    const signIn = await anonymousApi(service.url, 'POST', '/api/v1/auth/login', { username: 'alice', password: TEST_PASSWORD }, opaque);
    assert.equal(signIn.status, 403);
    assert.equal(signIn.body.error.code, 'origin_mismatch');
    assert.equal(signIn.headers.get('set-cookie'), null, "no session for the attacker's account");
    const token = await anonymousApi(service.url, 'POST', '/api/v1/auth/token', { username: 'alice', password: TEST_PASSWORD }, opaque);
    assert.equal(token.status, 403);
    const changed = await api(service.url, 'PATCH', '/api/v1/system/config', { imaging: { read_attempts: 7 } }, opaque);
    assert.equal(changed.status, 403, 'whatever credentials it carries');
    assert.notEqual((await api(service.url, 'GET', '/api/v1/system/config')).body.settings.imaging.read_attempts, 7);
    assert.equal((await anonymousApi(service.url, 'GET', '/api/v1/health', undefined, opaque)).status, 200, 'reading is no state change');
  });

  it('needs no CSRF token for API keys and bearer tokens, which a browser never sends by itself', async () => {
    const changed = await api(service.url, 'PATCH', '/api/v1/system/config', { imaging: { read_attempts: 5 } });
    assert.equal(changed.status, 200);
    const token = await anonymousApi(service.url, 'POST', '/api/v1/auth/token', { username: 'alice', password: TEST_PASSWORD });
    assert.equal(token.status, 200);
    // A token makes keys expiring no later than itself (docs/security.md, API keys).
    const created = await api(
      service.url,
      'POST',
      '/api/v1/api-keys',
      { name: 'by token', scopes: ['jobs:read'], expires_at: token.body.expires_at },
      { authorization: `Bearer ${token.body.access_token}` },
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const crossSite = await api(
      service.url,
      'PATCH',
      '/api/v1/system/config',
      { imaging: { read_attempts: 5 } },
      { ...service.authHeaders, origin: 'https://evil.example' },
    );
    assert.equal(crossSite.status, 403, "but a browser's cross-site request is refused whatever it carries");
  });

  it('sends the security headers on every response, HSTS only over HTTPS', async () => {
    const responses = [
      await api(service.url, 'GET', '/api/v1/health'),
      await api(service.url, 'GET', '/api/v1/jobs'),
      await anonymousApi(service.url, 'GET', '/api/v1/jobs'),
      await api(service.url, 'GET', '/api/v1/nothing-here'),
      await api(service.url, 'POST', '/api/v1/jobs', { wrong: true }),
    ];
    assert.deepEqual(
      responses.map((response) => response.status),
      [200, 200, 401, 404, 400],
    );
    for (const response of responses) {
      assert.equal(response.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
      assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval/);
      assert.equal(response.headers.get('x-frame-options'), 'SAMEORIGIN');
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(response.headers.get('referrer-policy'), 'same-origin');
      assert.match(response.headers.get('permissions-policy') ?? '', /camera=\(\)/);
      assert.equal(response.headers.get('strict-transport-security'), null);
    }
    const https = await api(service.url, 'GET', '/api/v1/health', undefined, { 'x-forwarded-proto': 'https' });
    assert.equal(https.headers.get('strict-transport-security'), 'max-age=31536000; includeSubDomains');
  });

  it('answers a wrong password and an unknown user identically, and locks the account after five failures', async () => {
    const wrongPassword = await anonymousApi(service.url, 'POST', '/api/v1/auth/login', { username: 'bob', password: 'Wrong-Horse-42' });
    const unknownUser = await anonymousApi(service.url, 'POST', '/api/v1/auth/login', { username: 'nobody-here', password: 'Wrong-Horse-42' });
    assert.equal(wrongPassword.status, 401);
    assert.deepEqual(unknownUser.body, wrongPassword.body);
    assert.equal(unknownUser.status, wrongPassword.status);
    for (let attempt = 0; attempt < 4; attempt += 1)
      await anonymousApi(service.url, 'POST', '/api/v1/auth/login', { username: 'bob', password: 'Wrong-Horse-42' });
    const locked = await anonymousApi(service.url, 'POST', '/api/v1/auth/login', { username: 'bob', password: TEST_PASSWORD });
    assert.equal(locked.status, 429, 'even the right password is refused while locked');
    assert.equal(locked.body.error.code, 'locked_out');
    assert.ok(Number(locked.headers.get('retry-after')) > 0);
    const audit = await api(service.url, 'GET', '/api/v1/audit?user=bob&event_type=authentication&limit=50');
    const actions = (audit.body.entries as Array<{ action: string }>).map((entry) => entry.action);
    assert.ok(actions.includes('lockout'), actions.join(','));
    assert.ok(actions.filter((action) => action === 'login_failure').length >= 5);
  });

  it('refuses everything but the password change while a password must be changed, then lets the user on', async () => {
    await service.server.auth.users.add({ name: 'dave', role: 'operator', password: TEST_PASSWORD, requireChange: true }, test);
    const session = await login(service, 'dave');
    const headers = { cookie: session.cookie, 'x-csrf-token': session.csrf, origin };
    const refused = await api(service.url, 'GET', '/api/v1/jobs', undefined, headers);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'password_change_required');
    assert.match(refused.body.error.message, /change it/);
    const me = await api(service.url, 'GET', '/api/v1/auth/me', undefined, headers);
    assert.equal(me.body.must_change_password, true);
    const token = await anonymousApi(service.url, 'POST', '/api/v1/auth/token', { username: 'dave', password: TEST_PASSWORD });
    assert.equal(token.status, 403, "no bearer token either, as the route's description says");
    assert.equal(token.body.error.code, 'password_change_required');
    assert.equal(token.body.access_token, undefined);
    const changed = await api(service.url, 'PUT', '/api/v1/auth/password', { current_password: TEST_PASSWORD, new_password: 'Fresh-Horse-2026' }, headers);
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.body.must_change_password, false);
    assert.equal((await api(service.url, 'GET', '/api/v1/jobs', undefined, headers)).status, 401, 'the old session ended with the change');
    const renewed = (changed.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    assert.equal((await api(service.url, 'GET', '/api/v1/jobs', undefined, { cookie: renewed })).status, 200, 'the new cookie from the answer works');
    assert.equal(
      (await anonymousApi(service.url, 'POST', '/api/v1/auth/token', { username: 'dave', password: 'Fresh-Horse-2026' })).status,
      200,
      'and a token now',
    );
  });

  it("issues bearer tokens for a password or a key, carrying the key's scopes, and kills them on a role change", async () => {
    const { key } = await service.server.auth.apiKeys.create({ user: 'carol', name: 'read only', scopes: ['jobs:read'] }, test);
    const forKey = await anonymousApi(service.url, 'POST', '/api/v1/auth/token', { api_key: key });
    assert.equal(forKey.status, 200);
    assert.equal(forKey.body.token_type, 'Bearer');
    const bearer = { authorization: `Bearer ${forKey.body.access_token}` };
    assert.equal((await api(service.url, 'GET', '/api/v1/jobs', undefined, bearer)).status, 200);
    assert.equal((await api(service.url, 'GET', '/api/v1/archives', undefined, bearer)).status, 403, "the key's scope, not the owner's role");
    const forPassword = await anonymousApi(service.url, 'POST', '/api/v1/auth/token', { username: 'carol', password: TEST_PASSWORD });
    const userBearer = { authorization: `Bearer ${forPassword.body.access_token}` };
    assert.equal((await api(service.url, 'GET', '/api/v1/archives', undefined, userBearer)).status, 200);
    const demoted = await api(service.url, 'PATCH', '/api/v1/users/carol', { role: 'viewer' });
    assert.equal(demoted.status, 200);
    assert.equal((await api(service.url, 'GET', '/api/v1/archives', undefined, userBearer)).status, 401, 'the token died with the role change');
    assert.equal(
      (await api(service.url, 'GET', '/api/v1/auth/me', undefined, { authorization: 'Basic YWxpY2U6eA==' })).status,
      401,
      'another scheme is no way in',
    );
  });

  it('audits job creation and deletion, archive deletion, configuration changes and denied admin requests', async () => {
    const since = new Date().toISOString();
    const created = await api(service.url, 'POST', '/api/v1/jobs', { device: deviceId, name: 'AUDITED' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await waitFor('the audited job to complete', async () => (await api(service.url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.status === 'completed');
    const archiveId = (await api(service.url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.archive_id;
    assert.equal((await api(service.url, 'DELETE', `/api/v1/jobs/${created.body.id}`)).status, 204);
    assert.equal((await api(service.url, 'DELETE', `/api/v1/archives/${archiveId}`)).status, 204);
    assert.equal((await api(service.url, 'DELETE', `/api/v1/archives/${archiveId}`)).status, 404, 'a failed deletion is not audited');
    await api(service.url, 'PATCH', '/api/v1/system/config', { imaging: { read_attempts: 6 }, storage: { log_retention_days: 31 } });
    const bob = await service.server.auth.apiKeys.create({ user: 'bob', name: 'bob reads' }, test);
    assert.equal((await api(service.url, 'GET', '/api/v1/users', undefined, { 'x-api-key': bob.key })).status, 403);
    assert.equal((await api(service.url, 'GET', '/api/v1/jobs', undefined, { 'x-api-key': 'd2i_unknown' })).status, 401);
    const entries = (await api<{ entries: AuditEntry[] }>(service.url, 'GET', `/api/v1/audit?since=${encodeURIComponent(since)}&order=asc`)).body.entries;
    const actions = entries
      .filter((entry) => ['job', 'archive'].includes(entry.event_type))
      .map((entry) => [entry.event_type, entry.action, entry.user, entry.details['id'] ?? entry.details['job_id'] ?? entry.details['archive_id']]);
    assert.deepEqual(actions, [
      ['job', 'create', 'test-admin', created.body.id],
      ['job', 'delete', 'test-admin', created.body.id],
      ['archive', 'delete', 'test-admin', archiveId],
    ]);
    const config = entries.find((entry) => entry.event_type === 'config');
    assert.ok(config, JSON.stringify(entries));
    assert.equal(config.user, 'test-admin');
    assert.deepEqual(config.details.changed, ['imaging.read_attempts', 'storage.log_retention_days']);
    assert.equal(config.ip_address, '127.0.0.1');
    const denied = entries.find((entry) => entry.event_type === 'access');
    assert.ok(denied);
    assert.deepEqual([denied.action, denied.user, denied.details.route, denied.details.permission], ['access_denied', 'bob', '/api/v1/users', 'users:admin']);
    const filtered = await api(service.url, 'GET', `/api/v1/audit?user=bob&event_type=access&since=${encodeURIComponent(since)}`);
    assert.equal(filtered.body.total, 1);
    assert.equal((await api(service.url, 'GET', '/api/v1/audit?event_type=bogus')).status, 400);
  });

  it('records who asked for a job, a verification and a settings change when a key or a bearer token asked', async () => {
    const { key } = await service.server.auth.apiKeys.create({ user: 'alice', name: 'attribution' }, test);
    const created = await api(service.url, 'POST', '/api/v1/jobs', { device: deviceId, name: 'ATTRIBUTED' }, { 'x-api-key': key });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await waitFor('the attributed job to complete', async () => (await api(service.url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.status === 'completed');
    const archiveId = (await api(service.url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.archive_id;

    const byKey = await verifyArchive(service.url, archiveId, service.authHeaders);
    assert.equal(byKey.requested_by, TEST_ADMIN);
    const token = await anonymousApi(service.url, 'POST', '/api/v1/auth/token', { api_key: service.apiKey });
    const byToken = await verifyArchive(service.url, archiveId, { authorization: `Bearer ${token.body.access_token}` });
    assert.equal(byToken.requested_by, TEST_ADMIN);
    const history = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/verifications`);
    // Newest first; the oldest is the job's own check after imaging, which nobody asked for.
    assert.deepEqual(
      history.body.verifications.map((verification: { requested_by: string | null }) => verification.requested_by),
      [TEST_ADMIN, TEST_ADMIN, null],
    );
    assert.equal((await api(service.url, 'PATCH', '/api/v1/system/config', { imaging: { read_attempts: 4 } }, service.authHeaders)).status, 200);

    const database = await openDataDirDatabase(service.dataDir);
    try {
      assert.equal((await createJobRepository(database).get(created.body.id))?.createdBy, 'alice', "the key's owner created the job");
      assert.equal((await createSettingsRepository(database).get('imaging.read_attempts'))?.updatedBy, TEST_ADMIN);
    } finally {
      await database.close();
    }
  });
});

describe('rate limits on their defaults (10/s, burst 20; logins stricter), per client address', () => {
  let service: TestServer;

  before(async () => {
    service = await startTestServer({
      env: {
        DISK2ISO_SECURITY_RATE_LIMIT_PER_SECOND: '0.1',
        DISK2ISO_SECURITY_RATE_LIMIT_BURST: '20',
        DISK2ISO_SECURITY_LOGIN_RATE_PER_MINUTE: '0.1',
        DISK2ISO_SECURITY_LOGIN_RATE_BURST: '5',
        DISK2ISO_SECURITY_TRUSTED_PROXIES: '10.1.1.1',
      },
      listen: false,
    });
  });
  after(async () => {
    await service?.close();
  });

  const health = (remoteAddress: string, headers: Record<string, string> = {}) =>
    service.server.app.inject({ method: 'GET', url: '/api/v1/health', remoteAddress, headers });

  it('answers 429 with Retry-After once a client used its burst, and keeps other clients apart', async () => {
    const statuses: number[] = [];
    for (let request = 0; request < 21; request += 1) statuses.push((await health('192.0.2.7')).statusCode);
    assert.deepEqual(statuses.slice(0, 20), Array(20).fill(200));
    const refused = await health('192.0.2.7');
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.json().error.code, 'rate_limited');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.equal((await health('192.0.2.8')).statusCode, 200, 'another address has its own bucket');
    const probing = await service.server.app.inject({ method: 'GET', url: '/api/v1/no-such-route', remoteAddress: '192.0.2.7' });
    assert.equal(probing.statusCode, 429, 'unknown URLs count too, so probing for routes is limited');
  });

  it('believes X-Forwarded-For only from a trusted proxy', async () => {
    for (let request = 0; request < 20; request += 1) await health('192.0.2.9', { 'x-forwarded-for': `198.51.100.${request}` });
    assert.equal(
      (await health('192.0.2.9', { 'x-forwarded-for': '198.51.100.200' })).statusCode,
      429,
      'an untrusted peer cannot dodge its limit with the header',
    );
    for (let request = 0; request < 20; request += 1) {
      assert.equal((await health('10.1.1.1', { 'x-forwarded-for': `203.0.113.${request}` })).statusCode, 200, 'behind the proxy, each client counts alone');
    }
  });

  it('allows five login attempts at once per address, then refuses before checking any password', async () => {
    const attempt = () =>
      service.server.app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        remoteAddress: '192.0.2.50',
        payload: { username: 'nobody-here', password: 'x' },
      });
    const statuses: number[] = [];
    for (let request = 0; request < 6; request += 1) statuses.push((await attempt()).statusCode);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
  });
});

describe('first-admin setup link', () => {
  let service: TestServer;
  const links: string[] = [];

  before(async () => {
    service = await startTestServer({ withoutAdmin: true, onSetupLink: (link) => links.push(link) });
  });
  after(async () => {
    await service?.close();
  });

  it('announces a one-time link at start while no admin exists, which creates the first admin once', async () => {
    assert.equal(links.length, 1);
    const link = new URL(links[0] ?? '');
    assert.equal(link.origin, new URL(service.url).origin);
    assert.equal(link.pathname, '/setup');
    const token = link.searchParams.get('token') ?? '';
    assert.deepEqual((await anonymousApi(service.url, 'GET', `/api/v1/auth/setup?token=${token}`)).body, { needed: true, token_valid: true });
    const weak = await anonymousApi(service.url, 'POST', '/api/v1/auth/setup', { token, username: 'root-admin', password: 'short' });
    assert.equal(weak.status, 400, 'the password policy holds here too, and the token survives');
    const created = await anonymousApi(service.url, 'POST', '/api/v1/auth/setup', { token, username: 'root-admin', password: TEST_PASSWORD });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.role, 'admin');
    const again = await anonymousApi(service.url, 'POST', '/api/v1/auth/setup', { token, username: 'second-admin', password: TEST_PASSWORD });
    assert.equal(again.status, 401, 'the token is used up');
    assert.equal(again.body.error.code, 'invalid_setup_token');
    assert.deepEqual((await anonymousApi(service.url, 'GET', `/api/v1/auth/setup?token=${token}`)).body, { needed: false, token_valid: false });
    const session = await login(service, 'root-admin');
    assert.equal((await api(service.url, 'GET', '/api/v1/users', undefined, { cookie: session.cookie })).status, 200);
  });
});
