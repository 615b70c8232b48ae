import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

/** The scopes ticked on the new-key form. */
function tickedScopes(body: string): string[] {
  return [...body.matchAll(/<input type="checkbox" id="scope-[^"]+" name="scopes" value="([^"]+)" checked>/g)].map((match) => match[1] ?? '');
}

describe('the API key page', () => {
  let server: WebTestServer;
  let proxied: WebTestServer;

  before(async () => {
    server = await startWebTestServer({ listen: false });
    proxied = await startWebTestServer({ listen: false, env: { DISK2ISO_SECURITY_TRUSTED_PROXIES: '127.0.0.1' } });
  });
  after(async () => {
    await server?.close();
    await proxied?.close();
  });

  it('starts a new key with reading only, and takes no scope ticked as a slip, not as every right', async () => {
    const page = await server.send('GET', '/account/api-keys', { session: server.sessions.operator });
    assert.deepEqual(tickedScopes(page.body).sort(), ['archives:read', 'devices:read', 'jobs:read', 'metrics:read', 'system:read']);
    assert.match(page.body, /<input type="checkbox" id="scope-all" name="all_rights" value="1">/, '"all of your rights" is offered, not ticked');

    const none = await server.send('POST', '/account/api-keys', { session: server.sessions.operator, form: { name: 'nothing ticked', expires_days: '0' } });
    assert.equal(none.status, 400);
    assert.match(none.body, /id="key-scopes-error">Tick at least one scope, or “All of your rights”\./);
    assert.match(none.body, /id="key-expires-error">Enter a whole number of days/, 'every field error at once');
    assert.match(none.body, /id="key-name"[^>]*value="nothing ticked"/, 'the input is kept');
    assert.equal(tickedScopes(none.body).length, 0, 'what the user ticked (nothing) is shown again');

    const all = await server.send('POST', '/account/api-keys', { session: server.sessions.operator, form: { name: 'everything', all_rights: '1' } });
    assert.equal(all.status, 201);
    const key = /id="new-key" class="secret" value="([^"]+)"/.exec(all.body)?.[1] ?? '';
    const principal = await server.auth.apiKeys.authenticate(key);
    assert.ok(principal?.can('jobs:write'), 'the explicit choice gives the key every right of the user');
  });

  it('shows the new key once with a copy button, a curl line on the service’s own address, and the API docs', async () => {
    const created = await server.send('POST', '/account/api-keys', {
      session: server.sessions.viewer,
      form: { name: 'reader', scopes: ['jobs:read'] },
      headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    });
    assert.equal(created.status, 201);
    const key = /id="new-key" class="secret" value="(d2i_[A-Za-z0-9_-]+)" readonly>/.exec(created.body)?.[1] ?? '';
    assert.notEqual(key, '', 'the key is in a read-only field, selectable without JavaScript');
    assert.match(created.body, /<button type="button" class="button" data-copy="new-key" data-copied="Copied" hidden>Copy<\/button>/);
    assert.ok(
      created.body.includes(`<code id="new-key-curl">curl -H 'X-API-Key: ${key}' 'http://localhost:80/api/v1/jobs'</code>`),
      'the curl line uses the address the request came to; forwarded headers of an untrusted peer do not count',
    );
    assert.match(created.body, /<a href="\/api\/docs">/);
    assert.equal((await server.auth.apiKeys.authenticate(key))?.can('jobs:read'), true);

    const behindProxy = await proxied.send('POST', '/account/api-keys', {
      session: proxied.sessions.viewer,
      form: { name: 'reader', scopes: ['archives:read'] },
      headers: { 'x-forwarded-host': 'disks.example.org', 'x-forwarded-proto': 'https', origin: 'https://disks.example.org' },
    });
    assert.equal(behindProxy.status, 201, behindProxy.body.slice(0, 300));
    assert.match(behindProxy.body, /curl -H 'X-API-Key: d2i_[A-Za-z0-9_-]+' 'https:\/\/disks\.example\.org\/api\/v1\/auth\/me'/);
  });

  it('names the product and its version on the API docs, not "Swagger UI"', async () => {
    const docs = await server.app.inject({ method: 'GET', url: '/api/docs' });
    assert.equal(docs.statusCode, 200);
    assert.match(docs.body, /<title>disk2iso test API<\/title>/);
    assert.doesNotMatch(docs.body, /<title>Swagger UI<\/title>/);
    const document = (await server.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    assert.equal(document.info.title, 'disk2iso API');
    assert.equal(document.info.version, 'test', 'the heading Swagger UI shows carries the version');
  });
});
