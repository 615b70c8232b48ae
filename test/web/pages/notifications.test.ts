import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
});
