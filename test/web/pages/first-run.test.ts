import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../../src/auth/principal.js';
import { TEST_PASSWORD, type WebTestServer, startWebTestServer } from '../support/server.js';

/** What the README and the pages both promise about when a new setup link appears. */
const NEW_LINK_RULE = /within a minute after the last one expires, and at every start/;

describe('first run: the way to the first admin', () => {
  let server: WebTestServer;

  before(async () => {
    server = await startWebTestServer({ listen: false, users: false });
  });
  after(async () => {
    await server.close();
  });

  it('the sign-in page says how to create the first admin while none exists', async () => {
    const page = await server.send('GET', '/login', { session: null });
    assert.equal(page.status, 200);
    assert.match(page.body, /data-first-run/);
    assert.match(page.body, /No administrator exists yet/);
    assert.match(page.body, NEW_LINK_RULE);
    assert.match(page.body, /<code>journalctl -u disk2iso \| grep setup<\/code>/);
    assert.match(page.body, /<code>disk2iso user add NAME --role admin<\/code>/);
    assert.match((await server.send('GET', '/login', { session: null, lang: 'de' })).body, /Es gibt noch keinen Administrator/);
    const failed = await server.send('POST', '/login', { session: null, form: { username: 'someone', password: 'whatever-it-is' } });
    assert.equal(failed.status, 401);
    assert.match(failed.body, /data-first-run/, 'a failed sign-in says it too');
  });

  it('an invalid setup link says when a new one appears, as the README does, and a new link replaces the old', async () => {
    const readme = await readFile(new URL('../../../../README.md', import.meta.url), 'utf8');
    assert.match(readme.replace(/\s+/g, ' '), NEW_LINK_RULE, 'the README states the rule');
    const first = /[?&]token=([A-Za-z0-9_-]+)/.exec(await server.setupLink)?.[1] ?? '';
    assert.equal((await server.send('GET', `/setup?token=${first}`, { session: null })).status, 200);
    // What a restart (or the old link's expiry) does: the service makes a new token, which replaces the unused one.
    const second = await server.auth.setup.createToken();
    const stale = await server.send('GET', `/setup?token=${first}`, { session: null });
    assert.equal(stale.status, 401);
    assert.match(stale.body, /This setup link does not work/);
    assert.match(stale.body, NEW_LINK_RULE);
    assert.match(stale.body, /<code>disk2iso user add NAME --role admin<\/code>/);
    assert.doesNotMatch(stale.body, /Restart the service for a new one/);
    assert.equal((await server.send('GET', `/setup?token=${second.token}`, { session: null })).status, 200);
  });

  it('says nothing of setup once an admin exists', async () => {
    await server.auth.users.add({ name: 'first-admin', role: 'admin', password: TEST_PASSWORD }, localActor('test'));
    const page = await server.send('GET', '/login', { session: null });
    assert.doesNotMatch(page.body, /data-first-run/);
  });
});
