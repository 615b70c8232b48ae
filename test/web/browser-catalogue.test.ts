import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { SESSION_COOKIE } from '../../src/http/guard.js';
import { launchBrowser, screenshots, watchedContext } from './support/browser.js';
import { type WebTestServer, startWebTestServer } from './support/server.js';

describe('the archive table view and bulk edit in Chromium', () => {
  let browser: Browser;
  let server: WebTestServer;
  const ids: string[] = [];

  before(async () => {
    browser = await launchBrowser();
    server = await startWebTestServer();
    for (const name of ['first_disc_with_a_rather_long_name', 'second_disc', 'third_disc']) {
      const archive = await server.archiveRepository.create({
        filename: `${name}.iso`,
        path: join(server.config.storage.output_dir, `${name}.iso`),
        sizeBytes: 4_700_000_000,
        checksums: {},
        metadata: { label: `Job ${name}` },
        source: {
          deviceId: 'sr0',
          devicePath: '/dev/sr0',
          discKind: 'data',
          volumeLabel: name.toUpperCase(),
          volumeId: null,
          mediaType: 'dvd',
          fileSystems: [],
        },
      });
      ids.push(archive.id);
    }
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('switches to the table, keeps it for the user, bulk-edits two rows, and fits a 390 px phone', async () => {
    const watched = await watchedContext(browser);
    await watched.context.addCookies([{ name: SESSION_COOKIE, value: server.sessions.admin.id, url: server.url, httpOnly: true, sameSite: 'Lax' }]);
    const page = await watched.newPage();
    await page.goto(`${server.url}/archive`);
    await page.getByRole('button', { name: 'Table', exact: true }).click();
    const table = page.locator('[data-archive-table]');
    await table.waitFor();
    const rowOf = async (selector: string) => (await page.locator(selector).boundingBox())?.y;
    assert.equal(await rowOf('#archive-q'), await rowOf('#archive-sort'), 'search, filter and sort share one row on a desktop');
    assert.equal(await rowOf('details.filters > summary'), await rowOf('#archive-sort'));

    // Another device of the same user opens the table too.
    const elsewhere = await watchedContext(browser);
    await elsewhere.context.addCookies([{ name: SESSION_COOKIE, value: server.sessions.admin.id, url: server.url, httpOnly: true, sameSite: 'Lax' }]);
    const other = await elsewhere.newPage();
    await other.goto(`${server.url}/archive`);
    await other.locator('[data-archive-table]').waitFor();
    await elsewhere.context.close();

    await page.getByLabel('Select Job first_disc_with_a_rather_long_name').check();
    await page.getByLabel('Select Job second_disc').check();
    await page.getByText('Edit the selected images').click();
    await page.getByLabel('Add tags').fill('Holiday, 2009');
    await page.locator('#bulk-rating').selectOption('5');
    await page.getByRole('button', { name: 'Apply to selected' }).click();
    await page.getByText('The selected images were changed.').waitFor();
    for (const id of ids.slice(0, 2)) {
      const archive = await server.archives.get(id);
      assert.deepEqual([archive.metadata.tags, archive.metadata.rating], [['holiday', '2009'], 5]);
    }
    assert.deepEqual((await server.archives.get(ids[2] ?? '')).metadata.tags, []);

    await page.locator('th.col-rating a').click();
    await page.waitForURL(/sort=rating/);
    await table.waitFor();

    await page.setViewportSize({ width: 390, height: 800 });
    for (const button of await page.locator('td.col-actions a').all()) {
      const box = await button.boundingBox();
      assert.ok(box !== null && box.x >= 0 && box.x + box.width <= 390, `a row's download button is cut off at 390 px: ${JSON.stringify(box)}`);
    }
    await screenshots(page, 'archive-table');
    assert.deepEqual(await watched.collectProblems(page), []);
    await watched.context.close();
  });
});
