import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

/** The colour scheme the page was rendered in: the value on <html>; none follows the system. */
function renderedTheme(body: string): string {
  const html = /<html [^>]*>/.exec(body)?.[0];
  assert.ok(html !== undefined, 'a page');
  return /data-theme="([a-z]+)"/.exec(html)?.[1] ?? 'system';
}

describe('colour scheme', () => {
  let server: WebTestServer;

  before(async () => {
    server = await startWebTestServer({ listen: false });
  });
  after(async () => {
    await server.close();
  });

  it('follows the system until the user chooses, then renders the choice into every page of that user on any device', async () => {
    const before = await server.send('GET', '/', { session: server.sessions.operator });
    assert.equal(renderedTheme(before.body), 'system');
    assert.match(before.body, /<option value="system" selected>/);

    const chosen = await server.send('POST', '/theme', { session: server.sessions.operator, form: { theme: 'dark', return_to: '/drives' } });
    assert.equal(chosen.status, 303);
    assert.equal(chosen.location, '/drives?notice=theme_saved');

    // A second sign-in stands for another device: the choice is kept by the server, not by a cookie.
    const elsewhere = await server.login('operator-user');
    for (const path of ['/', '/drives', '/archive', '/account/password']) {
      const page = await server.send('GET', path, { session: elsewhere });
      assert.equal(renderedTheme(page.body), 'dark', path);
      assert.match(page.body, /<option value="dark" selected>/);
    }
    // Another user's pages are not affected.
    assert.equal(renderedTheme((await server.send('GET', '/', { session: server.sessions.viewer })).body), 'system');

    const inline = await server.send('POST', '/theme', { session: elsewhere, form: { theme: 'light' }, json: true });
    assert.equal(inline.status, 200);
    assert.equal(JSON.parse(inline.body).message, 'The colour scheme was saved.');
    assert.equal(renderedTheme((await server.send('GET', '/', { session: server.sessions.operator })).body), 'light');
  });

  it('refuses a value that is no scheme and changes nothing', async () => {
    await server.send('POST', '/theme', { session: server.sessions.admin, form: { theme: 'dark' } });
    for (const theme of ['blue', '', 'DARK', '"><script>']) {
      const refused = await server.send('POST', '/theme', { session: server.sessions.admin, form: { theme, return_to: '/' } });
      assert.equal(refused.status, 303);
      assert.equal(refused.location, '/?error=validation_failed');
    }
    const json = await server.send('POST', '/theme', { session: server.sessions.admin, form: { theme: 'blue' }, json: true });
    assert.equal(JSON.parse(json.body).error.code, 'validation_failed');
    assert.equal(json.status, 400);
    assert.equal(renderedTheme((await server.send('GET', '/')).body), 'dark');
  });

  it('needs a signed-in user and its CSRF token; pages without one follow the system', async () => {
    const anonymous = await server.send('POST', '/theme', { session: null, form: { theme: 'dark' } });
    assert.equal(anonymous.status, 401);
    const forged = await server.send('POST', '/theme', { session: server.sessions.viewer, form: { theme: 'dark' }, csrf: false });
    assert.equal(forged.status, 403);
    assert.equal(renderedTheme((await server.send('GET', '/', { session: server.sessions.viewer })).body), 'system');
    // Error pages are the user's too: the guard's refusal comes before the route's hooks read the scheme.
    await server.send('POST', '/theme', { session: server.sessions.viewer, form: { theme: 'dark' } });
    const forbidden = await server.send('GET', '/users', { session: server.sessions.viewer });
    assert.equal(forbidden.status, 403);
    assert.equal(renderedTheme(forbidden.body), 'dark');
    const signIn = await server.send('GET', '/login', { session: null });
    assert.equal(renderedTheme(signIn.body), 'system');
    assert.ok(!signIn.body.includes('action="/theme"'), 'no switch without a user to remember it for');
  });
});
