import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

/** The page's navigation links, by their text. */
function navigation(body: string): string[] {
  const nav = /<nav class="site-nav"[^>]*>([\s\S]*?)<\/nav>/.exec(body)?.[1] ?? '';
  return [...nav.matchAll(/<a [^>]*>([^<]+)<\/a>/g)].map((match) => match[1] ?? '');
}

describe('not-found and forbidden pages say what happened and keep the navigation', () => {
  let server: WebTestServer;

  before(async () => {
    server = await startWebTestServer({ listen: false });
  });
  after(async () => {
    await server.close();
  });

  it('an unknown address: "this page does not exist", with the signed-in user’s navigation', async () => {
    const page = await server.send('GET', '/no/such/page', { session: server.sessions.viewer });
    assert.equal(page.status, 404);
    assert.match(page.body, /<h1>Not found<\/h1>/);
    assert.match(page.body, /<p>This page does not exist\.<\/p>/);
    assert.ok(navigation(page.body).includes('Dashboard'), `the viewer's navigation is there: ${navigation(page.body).join(', ')}`);
    assert.doesNotMatch(page.body, /Something went wrong/);

    const german = await server.send('GET', '/no/such/page', { session: server.sessions.admin, lang: 'de' });
    assert.match(german.body, /<p>Diese Seite gibt es nicht\.<\/p>/);
    assert.ok(navigation(german.body).includes('Übersicht'));

    const anonymous = await server.send('GET', '/no/such/page', { session: null });
    assert.equal(anonymous.status, 404);
    assert.deepEqual(navigation(anonymous.body), [], 'nobody gets no navigation');
    const forged = await server.send('GET', '/no/such/page', { session: null, cookie: 'disk2iso_session=forged' });
    assert.equal(forged.status, 404);
    assert.deepEqual(navigation(forged.body), [], 'a cookie of no session shows nothing either');
  });

  it('a missing item inside a page keeps the navigation too', async () => {
    const page = await server.send('GET', '/jobs/job_doesnotexist', { session: server.sessions.operator });
    assert.equal(page.status, 404);
    assert.match(page.body, /<h1>Not found<\/h1>/);
    assert.ok(navigation(page.body).includes('Dashboard'));
  });

  it('a page the role may not see: whose role it is and whom to ask, not "something went wrong"', async () => {
    const page = await server.send('GET', '/users', { session: server.sessions.viewer });
    assert.equal(page.status, 403);
    assert.match(page.body, /<h1>Not allowed<\/h1>/);
    assert.match(page.body, /<p>You may not do this: your role is Viewer\. Ask an administrator if you need it\.<\/p>/);
    assert.ok(navigation(page.body).includes('Dashboard'));
    assert.doesNotMatch(page.body, /Something went wrong/);
    const german = await server.send('GET', '/users', { session: server.sessions.operator, lang: 'de' });
    assert.match(german.body, /<h1>Nicht erlaubt<\/h1>/);
    assert.match(german.body, /Ihre Rolle ist Operator\./);

    const script = await server.send('GET', '/users', { session: server.sessions.viewer, json: true });
    assert.equal(script.status, 403);
    assert.equal(JSON.parse(script.body).error.code, 'permission_denied');
  });
});
