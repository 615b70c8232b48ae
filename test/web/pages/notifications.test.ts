import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SECRET_MASK } from '../../../src/system/settings.js';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

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
    const saved = await server.send('POST', '/config/notifications', { form: { notifications__email_address: '' } });
    assert.equal(saved.status, 303, saved.body.slice(0, 300));
    assert.equal(server.config.notifications.browser, false);
    assert.equal(marker((await server.send('GET', '/')).body), 'off');
  });

  it('shows a webhook URL without its credentials, and saving the form as shown keeps them', async () => {
    const webhook = 'https://hookuser:hookpass@hooks.example.org/hook?token=tok123';
    const masked = `https://${SECRET_MASK}@hooks.example.org/hook?token=${SECRET_MASK}`;
    const form = (url: string) => ({ notifications__webhook_enabled: '1', notifications__webhook_url: url, notifications__email_address: '' });
    const saved = await server.send('POST', '/config/notifications', { form: form(webhook) });
    assert.equal(saved.location, '/config?notice=settings_saved#notifications');
    assert.equal(server.config.notifications.webhook_url, webhook);

    for (const role of ['admin', 'viewer'] as const) {
      const page = await server.send('GET', '/config', { session: server.sessions[role] });
      assert.match(page.body, new RegExp(`id="setting-notifications__webhook_url"[^>]*value="${masked.replace(/[.*?]/g, '\\$&')}"`), role);
      for (const credential of ['hookuser', 'hookpass', 'tok123']) assert.ok(!page.body.includes(credential), `${credential} on the ${role}'s page`);
    }

    const unchanged = await server.send('POST', '/config/notifications', { form: form(masked) });
    assert.equal(unchanged.location, '/config?notice=settings_unchanged#notifications', 'the masked value as shown is no change');
    assert.equal(server.config.notifications.webhook_url, webhook);

    const edited = await server.send('POST', '/config/notifications', { form: form(masked.replace('/hook?', '/other?')) });
    assert.equal(edited.status, 400);
    assert.match(
      edited.body,
      /id="setting-notifications__webhook_url-error">This value is not accepted: notifications\.webhook_url holds \*{8} where a credential goes/,
    );
    assert.equal(server.config.notifications.webhook_url, webhook, 'the mask never replaces the real credentials');
  });
});
