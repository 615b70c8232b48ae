import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../../src/auth/principal.js';
import { NOTIFICATION_FORM_DEFAULTS, type WebTestServer, startWebTestServer } from '../support/server.js';

describe('notifications.browser reaches the live pages', () => {
  let server: WebTestServer;

  before(async () => {
    server = await startWebTestServer({ listen: false });
  });
  after(async () => {
    await server?.close();
  });

  it('marks the dashboard for browser notifications while the setting is on, and not once an admin turns it off', async () => {
    const marker = (body: string) => /data-live="dashboard"[^>]*data-notify-browser="(on|off)"/.exec(body)?.[1];
    assert.equal(marker((await server.send('GET', '/')).body), 'on');
    // A checkbox that is not sent is unticked.
    const saved = await server.send('POST', '/config/notifications', { form: { ...NOTIFICATION_FORM_DEFAULTS, notifications__email_address: '' } });
    assert.equal(saved.status, 303, saved.body.slice(0, 300));
    assert.equal(server.config.notifications.browser, false);
    assert.equal(marker((await server.send('GET', '/')).body), 'off');
  });

  it('lists the webhooks, without secrets or URL credentials, and the latest deliveries on the configuration page', async () => {
    const { key } = await server.auth.apiKeys.create({ user: 'admin-user', name: 'webhooks' }, localActor('test'));
    const created = await server.app.inject({
      method: 'POST',
      url: '/api/v1/notifications/webhooks',
      headers: { 'x-api-key': key },
      payload: { name: '<b>home</b>', url: 'https://hookuser:hookpass@hooks.example.org/in?token=tok123', events: ['job.failed'], enabled: false },
    });
    assert.equal(created.statusCode, 201, created.body);
    const { secret } = created.json() as { secret: string };
    const before = await server.send('GET', '/config', { session: server.sessions.viewer });
    assert.match(before.body, /data-webhooks/);
    assert.ok(before.body.includes('&lt;b&gt;home&lt;/b&gt;'), 'the name is escaped');
    for (const hidden of [secret, 'hookpass', 'tok123', 'hookuser']) assert.ok(!before.body.includes(hidden), `${hidden} on the page`);
    assert.match(before.body, /Nothing sent yet\./);

    const email = await server.app.inject({ method: 'POST', url: '/api/v1/notifications/email/test', headers: { 'x-api-key': key } });
    assert.equal(email.statusCode, 202, email.body);
    const after = await server.send('GET', '/config', { lang: 'de' });
    assert.match(after.body, /<table class="history[^"]*" data-deliveries>/);
    assert.match(after.body, /<td[^>]*>notification\.test<\/td><td[^>]*>email<\/td><td[^>]*>(ausstehend|aufgegeben)<\/td>/);
  });

  it('adds a webhook from the page, shows its secret once, sends it a test and deletes it', async () => {
    const added = await server.send('POST', '/config/webhooks', {
      form: { webhook_name: 'from the page', webhook_url: 'https://hooks.example.org/page', webhook_events: ['job.failed', 'job.completed'] },
    });
    assert.equal(added.status, 201, added.body.slice(0, 300));
    const secret = /data-webhook-secret>[^<]*<code>(whsec_[A-Za-z0-9+/=]+)<\/code>/.exec(added.body)?.[1];
    assert.ok(secret !== undefined, 'the secret is in the answer');
    const page = await server.send('GET', '/config');
    assert.ok(!page.body.includes(secret), 'and never again');
    const id = /<td[^>]*>from the page<\/td>[\s\S]*?action="\/config\/webhooks\/(whk_[a-z0-9]+)\/test"/.exec(page.body)?.[1];
    assert.ok(id !== undefined);
    assert.match(page.body, /<td[^>]*>Job completed, Job failed<\/td>/, 'the events by their names, not their codes');

    const refused = await server.send('POST', '/config/webhooks', { form: { webhook_name: 'bad', webhook_url: 'ftp://hooks.example.org/' } });
    assert.equal(refused.status, 400);
    assert.match(refused.body, /a webhook URL starts with http:\/\/ or https:\/\//);

    const viewer = await server.send('POST', `/config/webhooks/${id}/delete`, { session: server.sessions.viewer, form: {} });
    assert.equal(viewer.status, 403, 'a viewer may not');
    const tested = await server.send('POST', `/config/webhooks/${id}/test`, { form: {} });
    assert.equal(tested.location, '/config?notice=notification_test_queued');
    const deleted = await server.send('POST', `/config/webhooks/${id}/delete`, { form: {} });
    assert.equal(deleted.location, '/config?notice=webhook_deleted');
    assert.ok(!(await server.send('GET', '/config')).body.includes(id), 'gone, with its deliveries');
    const audit = await server.auth.audit.list({ eventType: 'webhook', limit: 10 });
    const actions = audit.items.filter((entry) => entry.details?.id === id).map((entry) => entry.action);
    assert.deepEqual(actions, ['delete', 'create'], 'added and deleted are recorded, the test is not');
  });
});
