import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../../src/auth/principal.js';
import { NOTIFICATION_FORM_DEFAULTS, type WebTestServer, startWebTestServer } from '../support/server.js';

/** Markup an attacker can get stored through a form, an API field or a header, then shown to an admin. */
const SCRIPT = '<script>alert(7)</script>';
const ATTRIBUTE = '"><img src=x onerror=alert(8)>';

function assertEscaped(page: string, where: string): void {
  assert.ok(!page.includes(SCRIPT), `${where}: a <script> reached the page unescaped`);
  assert.ok(!page.includes('<img src=x'), `${where}: an <img> reached the page unescaped`);
  assert.ok(!/\sonerror=alert/.test(page.replace(/&lt;img src=x onerror=alert\(8\)&gt;/g, '')), `${where}: an event handler attribute appeared`);
}

describe('stored hostile text comes back escaped on every page that shows it', () => {
  let server: WebTestServer;

  before(async () => {
    server = await startWebTestServer({ listen: false });
  });
  after(async () => {
    await server?.close();
  });

  it('escapes names typed into the login form and user agents in the audit log', async () => {
    const attempt = await server.send('POST', '/login', { session: null, form: { username: SCRIPT, password: 'x' }, headers: { 'user-agent': ATTRIBUTE } });
    assert.equal(attempt.status, 401);
    assertEscaped(attempt.body, 'the login page after a failure');
    const audit = await server.send('GET', '/audit');
    assert.equal(audit.status, 200);
    assert.ok(audit.body.includes('&lt;script&gt;alert(7)&lt;/script&gt;'), 'the typed name is shown, as text');
    assertEscaped(audit.body, '/audit');
  });

  it('escapes API key names on the key page', async () => {
    await server.auth.apiKeys.create({ user: 'admin-user', name: `${SCRIPT}${ATTRIBUTE}` }, localActor('test'));
    const keys = await server.send('GET', '/account/api-keys');
    assert.equal(keys.status, 200);
    assert.ok(keys.body.includes('&lt;script&gt;alert(7)&lt;/script&gt;'));
    assertEscaped(keys.body, '/account/api-keys');
  });

  it('escapes a stored notification address on the configuration page', async () => {
    const saved = await server.send('POST', '/config/notifications', {
      form: { ...NOTIFICATION_FORM_DEFAULTS, notifications__email_address: `${SCRIPT}@example.org`, notifications__browser: '1' },
    });
    assert.equal(saved.status, 303, `the form answered ${saved.status}: ${saved.body.slice(0, 300)}`);
    assert.equal(server.config.notifications.email_address, `${SCRIPT}@example.org`, 'stored as typed');
    const config = await server.send('GET', '/config');
    assert.equal(config.status, 200);
    assertEscaped(config.body, '/config');
    assertEscaped(saved.body, 'the answer to the settings form');
  });
});
