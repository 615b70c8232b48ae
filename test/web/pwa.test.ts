import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { SESSION_COOKIE } from '../../src/http/guard.js';
import { shellFiles } from '../../src/web/pages/pwa.js';
import { launchBrowser, launchProfileBrowser, watchedContext } from './support/browser.js';
import { INJECT_ORIGIN, type WebTestServer, startWebTestServer } from './support/server.js';

/**
 * The installable app: manifest, service worker and offline page, asked of the service (headers,
 * content types) and of Chromium itself (installable, controlled, offline, what it keeps).
 */
describe('the installable web app', () => {
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

  it('serves the manifest, the worker and the offline pages to anyone, with their types and cache headers', async () => {
    const manifest = await server.send('GET', '/manifest.webmanifest', { session: null });
    assert.equal(manifest.status, 200);
    assert.match(String(manifest.headers['content-type']), /^application\/manifest\+json/);
    assert.equal(manifest.headers['cache-control'], 'no-cache');
    const parsed = JSON.parse(manifest.body) as {
      name: string;
      display: string;
      start_url: string;
      scope: string;
      icons: Array<{ src: string; purpose: string }>;
    };
    assert.deepEqual([parsed.name, parsed.display, parsed.start_url, parsed.scope], ['disk2iso', 'standalone', '/', '/']);
    assert.deepEqual(parsed.icons.map((icon) => icon.purpose).sort(), ['any', 'any', 'any', 'maskable']);
    for (const icon of parsed.icons) assert.equal((await server.send('GET', icon.src, { session: null })).status, 200, icon.src);

    const worker = await server.send('GET', '/sw.js', { session: null });
    assert.equal(worker.status, 200);
    assert.match(String(worker.headers['content-type']), /^text\/javascript/);
    assert.equal(worker.headers['service-worker-allowed'], '/');
    assert.equal(worker.headers['cache-control'], 'no-cache');
    assert.doesNotMatch(worker.body, /__VERSION__|__PRECACHE__|__LANGUAGES__/);
    assert.match(String(worker.headers['content-security-policy']), /manifest-src 'self'; worker-src 'self'/);

    const german = await server.send('GET', '/offline/de', { session: null });
    assert.equal(german.status, 200);
    assert.match(german.body, /disk2iso ist nicht erreichbar/);
    assert.match(german.body, /Erneut versuchen/);
    assert.equal((await server.send('GET', '/offline/xx', { session: null })).status, 404);
    for (const path of shellFiles()) assert.equal((await server.send('GET', path, { session: null })).status, 200, path);
  });

  it('is installable, controlled by its worker, keeps only the shell, and shows the offline page when the service is gone', { timeout: 120_000 }, async () => {
    const profile = await mkdtemp(join(tmpdir(), 'disk2iso-pwa-profile-'));
    const context = await launchProfileBrowser(profile);
    const problems: string[] = [];
    context.on('page', (opened) => opened.on('pageerror', (error) => problems.push(error.message)));
    await context.addCookies([{ name: SESSION_COOKIE, value: server.sessions.viewer.id, url: server.url, httpOnly: true, sameSite: 'Lax' }]);
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    await page.goto(`${server.url}/`);
    await page.evaluate('navigator.serviceWorker.ready');
    await page.reload();
    assert.equal(await page.evaluate('navigator.serviceWorker.controller?.scriptURL'), `${server.url}/sw.js`);

    const cdp = await context.newCDPSession(page);
    const manifest = (await cdp.send('Page.getAppManifest')) as { url: string; errors: unknown[] };
    assert.equal(manifest.url, `${server.url}/manifest.webmanifest`);
    assert.deepEqual(manifest.errors, []);
    const installability = (await cdp.send('Page.getInstallabilityErrors')) as { installabilityErrors: unknown[] };
    assert.deepEqual(installability.installabilityErrors, []);

    // Browsing with data on every page: none of it may be kept.
    for (const path of ['/config', '/archive', '/drives', '/account/notifications', '/account/api-keys']) await page.goto(`${server.url}${path}`);
    await page.evaluate("fetch('/api/v1/jobs').then((response) => response.json())");
    const kept = (await page.evaluate(`(async () => {
      const urls = [];
      for (const name of await caches.keys()) for (const request of await (await caches.open(name)).keys()) urls.push(name + ' ' + request.url);
      return urls;
    })()`)) as string[];
    const paths = kept.map((entry) => new URL(entry.split(' ')[1] ?? '').pathname).sort();
    assert.deepEqual(paths, [...shellFiles()].sort());
    assert.equal(new Set(kept.map((entry) => entry.split(' ')[0])).size, 1, 'one cache, of this version');
    assert.deepEqual(problems, []);

    await showsPushSection(page);
    await showsPushedNotification(context, page);

    await server.close();
    await page.goto(`${server.url}/config`);
    await page.getByRole('heading', { name: 'disk2iso cannot be reached' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Try again' }).getAttribute('href'), '');
    assert.doesNotMatch(await page.content(), /viewer-user/, 'no private data on the offline page');
    await context.close();
    await rm(profile, { recursive: true, force: true });
  });

  /**
   * The worker's push handler, given a message by Chromium itself (CDP ServiceWorker.deliverPushMessage,
   * as the push service would deliver it; no subscription is faked): it shows the notification with
   * the icon and the page a click opens. Delivery through a real push service is test/notifications/push.test.ts.
   */
  async function showsPushedNotification(context: BrowserContext, page: Page): Promise<void> {
    await context.grantPermissions(['notifications'], { origin: server.url });
    const cdp = await context.newCDPSession(page);
    const registration = new Promise<string>((resolve) => {
      cdp.on(
        'ServiceWorker.workerRegistrationUpdated',
        ({ registrations }: { registrations: Array<{ registrationId: string; scopeURL: string; isDeleted: boolean }> }) => {
          const found = registrations.find((entry) => entry.scopeURL === `${server.url}/` && !entry.isDeleted);
          if (found) resolve(found.registrationId);
        },
      );
    });
    await cdp.send('ServiceWorker.enable');
    const message = {
      title: 'disk2iso: PWA_DISC is archived',
      body: 'The image PWA_DISC is complete and in the archive.',
      url: '/jobs/job_1234',
      tag: 'evt_1234',
      type: 'job.completed',
    };
    const registrationId = await registration;
    // Chromium drops a message for a worker that is not active yet, which a loaded machine shows: the
    // page waits for the active worker, and the message goes again every 2 s until it is shown (one
    // tag, so a second delivery replaces the first notification instead of adding one).
    await page.evaluate('navigator.serviceWorker.ready.then(() => true)');
    const deliver = () => cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url, registrationId, data: JSON.stringify(message) });
    let shown: Array<{ title: string; body: string; icon: string; url: string; tag: string }> = [];
    for (let attempt = 0; attempt < 100 && shown.length === 0; attempt++) {
      if (attempt % 20 === 0) await deliver();
      shown = (await page.evaluate(`navigator.serviceWorker.ready
        .then((registration) => registration.getNotifications())
        .then((list) => list.map((entry) => ({ title: entry.title, body: entry.body, icon: entry.icon, url: entry.data.url, tag: entry.tag })))`)) as typeof shown;
      if (shown.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(shown, [
      { title: message.title, body: message.body, icon: `${server.url}/static/icons/icon-192.png`, url: '/jobs/job_1234', tag: 'evt_1234' },
    ]);
  }

  async function showsPushSection(page: Page): Promise<void> {
    await page.goto(`${server.url}/account/notifications`);
    const section = page.locator('[data-push]');
    await section.getByText('Notifications are off on this device.').waitFor();
    assert.equal(await section.getByRole('button', { name: 'Turn on notifications on this device' }).isVisible(), true);
    assert.equal(await section.getByRole('checkbox', { name: 'a job finished', exact: true }).isChecked(), true);
    assert.equal(await page.getByText('No device of yours gets notifications yet.').isVisible(), true);
    assert.equal(await page.locator('[data-push-needs-js]').isVisible(), false);
  }

  it('explains without JavaScript that push needs it, and registers no worker', { timeout: 60_000 }, async () => {
    const restarted = await startWebTestServer();
    try {
      const watched = await watchedContext(browser, { javaScriptEnabled: false });
      await watched.context.addCookies([{ name: SESSION_COOKIE, value: restarted.sessions.viewer.id, url: restarted.url, httpOnly: true, sameSite: 'Lax' }]);
      const page = await watched.newPage();
      await page.goto(`${restarted.url}/account/notifications`);
      assert.equal(await page.getByText('Push notifications need JavaScript').isVisible(), true);
      assert.equal(await page.locator('[data-push]').isVisible(), false);
      assert.equal(page.context().serviceWorkers().length, 0);
      await watched.context.close();
    } finally {
      await restarted.close();
    }
  });
});

describe('the account page: notifications on this device', () => {
  let server: WebTestServer;
  before(async () => {
    server = await startWebTestServer({ env: { DISK2ISO_NOTIFICATIONS_PUSH_ALLOWED_HOSTS: 'localhost' } });
  });
  after(async () => {
    await server?.close();
  });

  /** What the page's script sends for a subscribed browser, as the viewer's session (CSRF token and Origin as a page sends them). */
  const subscribe = (label: string, csrf = true) =>
    server.app.inject({
      method: 'POST',
      url: '/api/v1/notifications/push/subscriptions',
      headers: { cookie: server.sessions.viewer.cookie, origin: INJECT_ORIGIN, ...(csrf ? { 'x-csrf-token': server.sessions.viewer.csrf } : {}) },
      payload: {
        endpoint: `https://localhost/push/${encodeURIComponent(label)}`,
        keys: { p256dh: Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 3)]).toString('base64url'), auth: Buffer.alloc(16, 5).toString('base64url') },
        label,
        events: ['job.completed'],
      },
    });

  it("lists the user's own devices only, and removes one after asking, without JavaScript", async () => {
    const refused = await subscribe('Forged', false);
    assert.equal(refused.statusCode, 403, 'a session needs its CSRF token, as on every other route');
    const created = await subscribe('Phone <b>');
    assert.equal(created.statusCode, 201, created.body);
    const id = (created.json() as { id: string }).id;

    const own = await server.send('GET', '/account/notifications', { session: server.sessions.viewer });
    assert.equal(own.status, 200);
    assert.match(own.body, /Phone &lt;b&gt;/);
    assert.match(own.body, /Push notifications need JavaScript/);
    const others = await server.send('GET', '/account/notifications', { session: server.sessions.operator });
    assert.doesNotMatch(others.body, /Phone &lt;b&gt;/);
    assert.doesNotMatch((await server.send('GET', `/account/notifications?remove=${id}`, { session: server.sessions.operator })).body, /Remove the device/);

    const asking = await server.send('GET', `/account/notifications?remove=${id}`, { session: server.sessions.viewer });
    assert.match(asking.body, /Remove the device Phone &lt;b&gt;\?/);
    const taken = await server.send('POST', `/account/notifications/${id}/remove`, { session: server.sessions.operator, form: {} });
    assert.equal(taken.status, 303);
    assert.match(taken.location ?? '', /error=push_subscription_not_found/);
    assert.match((await server.send('GET', '/account/notifications', { session: server.sessions.viewer })).body, /Phone &lt;b&gt;/, 'still there');

    const removed = await server.send('POST', `/account/notifications/${id}/remove`, { session: server.sessions.viewer, form: {} });
    assert.equal(removed.status, 303);
    assert.match(removed.location ?? '', /notice=push_device_removed/);
    assert.match((await server.send('GET', '/account/notifications', { session: server.sessions.viewer })).body, /No device of yours gets notifications yet/);
  });
});
