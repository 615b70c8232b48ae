import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Page } from 'playwright-core';
import { SESSION_COOKIE } from '../../src/http/guard.js';
import { launchBrowser, watchedContext } from './support/browser.js';
import { type WebTestServer, startWebTestServer } from './support/server.js';

/**
 * The page's Notification, wrapped: every notification the page shows is recorded in
 * window.__notifications; whether it may show any is still the browser's own permission, which the
 * test grants to the context as a user would.
 */
const RECORD_NOTIFICATIONS = `
  const Real = window.Notification;
  window.__notifications = [];
  class Recorded {
    constructor(title, options = {}) {
      window.__notifications.push({ title, body: options.body, tag: options.tag });
    }
    close() {}
  }
  Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
  Recorded.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recorded;
`;

interface Shown {
  title: string;
  body: string;
  tag: string;
}

async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}`);
}

const shown = (page: Page) => page.evaluate('window.__notifications') as Promise<Shown[]>;

describe('browser notifications in Chromium follow the domain events', () => {
  let browser: Browser;
  let server: WebTestServer;

  before(async () => {
    browser = await launchBrowser();
    server = await startWebTestServer();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows a notification for each domain event of a type the viewer chose, and none for the others', { timeout: 120_000 }, async () => {
    const watched = await watchedContext(browser);
    await watched.context.grantPermissions(['notifications'], { origin: server.url });
    await watched.context.addInitScript(RECORD_NOTIFICATIONS);
    await watched.context.addCookies([{ name: SESSION_COOKIE, value: server.sessions.viewer.id, url: server.url, httpOnly: true, sameSite: 'Lax' }]);
    const page = await watched.newPage();

    await page.goto(`${server.url}/config`);
    const box = page.locator('[data-browser-notifications]');
    await box.getByRole('button', { name: 'Turn on in this browser' }).click();
    await box.getByText('On in this browser.').waitFor();
    // The end of a job is chosen until the user chooses otherwise.
    assert.equal(await box.getByRole('checkbox', { name: 'Job completed', exact: true }).isChecked(), true);
    assert.equal(await box.getByRole('checkbox', { name: 'Disc inserted', exact: true }).isChecked(), false);
    await box.getByRole('checkbox', { name: 'Disc inserted', exact: true }).check();
    await box.getByRole('checkbox', { name: 'Verification failed', exact: true }).check();

    // The stream's headers come after the server connected it to the events.
    const streamOpen = page.waitForResponse((response) => new URL(response.url()).pathname === '/api/v1/events');
    await page.goto(`${server.url}/`);
    assert.equal((await streamOpen).status(), 200);
    await server.notifications.raise('drive.appeared', { drive_id: 'sr1', path: '/dev/sr1', kind: 'optical', description: 'not chosen' });
    const inserted = await server.notifications.raise('disc.inserted', {
      drive_id: 'sr0',
      label: 'HOLIDAY_2024',
      kind: 'data',
      media_type: 'dvd',
      size_bytes: 4_700_000_000,
      volume_id: 'HOLIDAY_2024',
      created_at: null,
    });
    await waitUntil('the notification', async () => (await shown(page)).length > 0);
    const failed = await server.notifications.raise('verification.failed', {
      archive: { id: 'archive_x', filename: 'HOLIDAY_2023.iso', path: '/srv/HOLIDAY_2023.iso', size_bytes: 1, status: 'damaged' },
      checksums: [],
    });
    await waitUntil('the second notification', async () => (await shown(page)).length > 1);
    assert.deepEqual(await shown(page), [
      { title: 'disk2iso', body: 'A disc (HOLIDAY_2024) was put into sr0.', tag: inserted.id },
      { title: 'disk2iso', body: 'HOLIDAY_2023.iso FAILED verification: it may be damaged.', tag: failed.id },
    ]);
    assert.deepEqual(await watched.collectProblems(page), []);
    await watched.context.close();
  });
});
