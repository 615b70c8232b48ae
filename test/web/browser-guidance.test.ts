import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser } from 'playwright-core';
import { SESSION_COOKIE } from '../../src/http/guard.js';
import { type WatchedContext, launchBrowser, watchedContext } from './support/browser.js';
import { type TestRole, type WebTestServer, startWebTestServer } from './support/server.js';

describe('guidance and feedback in Chromium', () => {
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

  async function signedIn(role: TestRole, options: Parameters<typeof watchedContext>[1] = {}): Promise<WatchedContext> {
    const watched = await watchedContext(browser, options);
    await watched.context.addCookies([{ name: SESSION_COOKIE, value: server.sessions[role].id, url: server.url, httpOnly: true, sameSite: 'Lax' }]);
    return watched;
  }

  it('loads the API docs without a CSP violation or console error, under the product’s name and version', async () => {
    const watched = await watchedContext(browser);
    const page = await watched.newPage();
    await page.goto(`${server.url}/api/docs`);
    await page.getByRole('heading', { name: /disk2iso API/ }).waitFor();
    await page.locator('.opblock-tag', { hasText: 'jobs' }).first().waitFor();
    assert.equal(await page.title(), 'disk2iso test API');
    assert.deepEqual(await watched.collectProblems(page), []);
    await watched.context.close();
  });

  it('copies a new API key with its button; without JavaScript the button stays hidden and the key selectable', async () => {
    const watched = await signedIn('operator');
    await watched.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    const page = await watched.newPage();
    await page.goto(`${server.url}/account/api-keys`);
    await page.getByLabel('Name', { exact: true }).fill('copied key');
    await page.getByRole('button', { name: 'Create key' }).click();
    const key = await page.getByLabel('The new API key').inputValue();
    assert.match(key, /^d2i_/);
    const copy = page.locator('button[data-copy="new-key"]');
    await copy.click();
    await page.locator('button[data-copy="new-key"]', { hasText: 'Copied' }).waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), key);
    await page.locator('button[data-copy="new-key-curl"]').click();
    assert.match(String(await page.evaluate('navigator.clipboard.readText()')), new RegExp(`^curl -H 'X-API-Key: ${key}' '${server.url}/api/v1/jobs'$`));
    assert.deepEqual(await watched.collectProblems(page), []);
    await watched.context.close();

    const plain = await signedIn('operator', { javaScriptEnabled: false });
    const noScript = await plain.newPage();
    await noScript.goto(`${server.url}/account/api-keys`);
    await noScript.getByLabel('Name', { exact: true }).fill('plain key');
    await noScript.getByRole('button', { name: 'Create key' }).click();
    const field = noScript.getByLabel('The new API key');
    assert.match(await field.inputValue(), /^d2i_/);
    assert.equal(await noScript.locator('button[data-copy="new-key"]').isVisible(), false, 'no button that would do nothing');
    await field.selectText();
    const selected = await field.evaluate((input) => {
      const box = input as unknown as { selectionStart: number; selectionEnd: number };
      return box.selectionEnd - box.selectionStart;
    });
    assert.equal(selected, (await field.inputValue()).length, 'the whole key is selected, ready to copy');
    await plain.context.close();
  });

  it('with JavaScript, a page with an active job updates itself and does not reload; without, it reloads', async () => {
    const job = await server.queue.enqueue({
      name: 'browser-refresh',
      deviceId: 'loop998',
      devicePath: '/dev/loop998',
      outputFile: join(server.config.storage.output_dir, 'browser-refresh.iso'),
      sizeBytes: 1024 * 1024,
      options: { read_attempts: 0, verify: false, checksums: ['md5'], disc: { label: 'REFRESH', kind: 'data', sector_size: 2048 } },
      claim: { workerId: 'browser-worker', leaseMs: 600_000 },
    });
    assert.equal(job.status, 'running', 'the test took the job');

    const scripted = await signedIn('viewer');
    const page = await scripted.newPage();
    let loads = 0;
    page.on('load', () => {
      loads += 1;
    });
    await page.goto(`${server.url}/jobs/${job.id}`);
    await page.evaluate('window.__stillHere = true');
    // Three refresh periods: a page that reloaded would have lost the marker.
    await sleep(6500);
    assert.equal(await page.evaluate('window.__stillHere === true'), true, 'the page was not reloaded');
    assert.equal(loads, 1);
    assert.deepEqual(await scripted.collectProblems(page), []);
    await scripted.context.close();

    const plain = await signedIn('viewer', { javaScriptEnabled: false });
    const noScript = await plain.newPage();
    await noScript.goto(`${server.url}/jobs/${job.id}`);
    await noScript.waitForEvent('load', { timeout: 20_000 });
    await plain.context.close();
    await server.queue.finish(job.id, 'browser-worker', 'completed');
  });

  it('shows one toast per outcome, whether the answer or the live stream reports it first', async () => {
    const watched = await signedIn('viewer');
    const page = await watched.newPage();
    await page.goto(`${server.url}/`);
    await page.evaluate(`import('/static/js/toast.js').then(({ toast }) => {
      toast('The job was cancelled.', 'ok', 'job:job_x:cancelled');
      toast('x was cancelled.', 'info', 'job:job_x:cancelled');
      toast('y was cancelled.', 'info', 'job:job_y:cancelled');
      toast('Saved.', 'ok');
      toast('Saved.', 'ok');
    })`);
    assert.deepEqual(await page.locator('#toasts .toast p').allTextContents(), ['The job was cancelled.', 'y was cancelled.', 'Saved.', 'Saved.']);
    await watched.context.close();
  });
});
