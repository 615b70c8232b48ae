import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { SESSION_COOKIE } from '../../src/http/guard.js';
import { waitFor } from '../http/support.js';
import { requireTool, run } from '../tools/exec.js';
import { listSourceTree, makeUdfImage, makeXorrisoImage, readSourceFile, writeSourceTree } from '../tools/image-fixtures.js';
import { launchBrowser, watchedContext } from './support/browser.js';
import { type WebTestServer, startWebTestServer } from './support/server.js';

/**
 * The files of archived images in Chromium at desktop width: browsing the folder links, one file, a
 * folder as tar, and one search box finding a file name on an ISO 9660 and a UDF image.
 */
describe('the files of archived images in Chromium', () => {
  let browser: Browser;
  let server: WebTestServer;
  let work: string;
  let source: string;
  let archiveId: string;
  /** The same photo name on both discs, with different bytes. */
  const photoOnIso = randomBytes(300_000);
  const photoOnUdf = randomBytes(500_000);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'browser-archive-files-'));
    source = join(work, 'source');
    await writeSourceTree(source);
    await mkdir(join(source, 'photos-2009'));
    await writeFile(join(source, 'photos-2009', 'IMG_2009_0412.JPG'), photoOnIso);
    browser = await launchBrowser();
    server = await startWebTestServer();
    await mkdir(server.config.storage.output_dir, { recursive: true });
    const image = await makeXorrisoImage(source, join(server.config.storage.output_dir, 'files.iso'), ['-R', '-J', '-joliet-long']);
    const archive = await server.archiveRepository.create({
      filename: 'files.iso',
      path: image,
      sizeBytes: 0,
      checksums: {},
      source: { deviceId: null, devicePath: null, discKind: 'data', volumeLabel: 'FILES', volumeId: null, mediaType: null, fileSystems: [] },
    });
    archiveId = archive.id;
    const udf = await makeUdfImage(join(server.config.storage.output_dir, 'holiday.udf'), [{ path: 'DCIM/100/IMG_2009_0412.JPG', content: photoOnUdf }]);
    await server.archiveRepository.create({
      filename: 'holiday.udf',
      path: udf,
      sizeBytes: 0,
      checksums: {},
      source: { deviceId: null, devicePath: null, discKind: 'data', volumeLabel: 'HOLIDAY', volumeId: null, mediaType: null, fileSystems: [] },
    });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  const saveDownload = async (page: Page, click: () => Promise<void>, name: string): Promise<string> => {
    const [download] = await Promise.all([page.waitForEvent('download'), click()]);
    const file = join(work, name);
    await download.saveAs(file);
    return file;
  };

  it('browses into nested folders by their links, downloads one file and a folder as tar, all byte for byte', async () => {
    const tar = await requireTool('tar', 'tar');
    const watched = await watchedContext(browser, { acceptDownloads: true });
    await watched.context.addCookies([{ name: SESSION_COOKIE, value: server.sessions.admin.id, url: server.url, httpOnly: true, sameSite: 'Lax' }]);
    const page = await watched.newPage();
    await page.goto(`${server.url}/archive/${archiveId}`);

    await page.getByRole('link', { name: 'Grüße – 日本/', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('path') === 'Grüße – 日本');
    const unicode = await saveDownload(page, () => page.getByRole('link', { name: 'Ünïcödé ✓.txt', exact: true }).click(), 'unicode.txt');
    assert.deepEqual(await readFile(unicode), await readSourceFile(source, 'Grüße – 日本/Ünïcödé ✓.txt'));

    await page.locator('nav.breadcrumb a').first().click();
    await page.getByRole('link', { name: 'deep/', exact: true }).click();
    await page.getByRole('link', { name: 'level0/', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('path') === 'deep/level0');
    const archive = await saveDownload(page, () => page.locator('section[aria-labelledby="files-heading"] div.actions a').click(), 'level0.tar');
    const out = join(work, 'untarred');
    await mkdir(out);
    await run(tar, ['-xf', archive, '-C', out]);
    const expected = (await listSourceTree(join(source, 'deep'))).filter((entry) => entry.kind === 'file');
    assert.ok(expected.length > 0);
    for (const entry of expected) assert.deepEqual(await readFile(join(out, entry.path)), await readSourceFile(join(source, 'deep'), entry.path), entry.path);
    assert.deepEqual(watched.problems, []);
    await watched.context.close();
  });

  it('finds one file name on an ISO 9660 and a UDF image with the search box, and downloads each', async () => {
    const watched = await watchedContext(browser, { acceptDownloads: true });
    await watched.context.addCookies([{ name: SESSION_COOKIE, value: server.sessions.admin.id, url: server.url, httpOnly: true, sameSite: 'Lax' }]);
    const page = await watched.newPage();
    // The index is filled in the background: both images, once the indexer has read them.
    await waitFor('both images to be indexed', async () => {
      await page.goto(`${server.url}/archive`);
      await page.getByRole('searchbox').first().fill('IMG_2009_0412');
      await Promise.all([page.waitForURL((url) => url.searchParams.get('q') === 'IMG_2009_0412'), page.getByRole('searchbox').first().press('Enter')]);
      return (await page.locator('tr[data-file-hit]').count()) === 2;
    });
    const rows = page.locator('tr[data-file-hit]');
    assert.deepEqual((await rows.locator('code').allTextContents()).sort(), ['DCIM/100/IMG_2009_0412.JPG', 'photos-2009/IMG_2009_0412.JPG']);
    for (const [disc, expected] of [
      ['holiday.udf', photoOnUdf],
      ['files.iso', photoOnIso],
    ] as const) {
      const row = rows.filter({ hasText: disc });
      const file = await saveDownload(page, () => row.locator('[data-file-download]').click(), `from-${disc}.jpg`);
      assert.deepEqual(await readFile(file), expected, disc);
    }
    await rows.filter({ hasText: 'holiday.udf' }).getByRole('link', { name: 'holiday.udf' }).click();
    await page.waitForURL((url) => url.searchParams.get('path') === 'DCIM/100');
    assert.equal(await page.getByRole('link', { name: 'IMG_2009_0412.JPG', exact: true }).count(), 1, 'the disc link opens the folder the file is in');
    assert.deepEqual(watched.problems, []);
    await watched.context.close();
  });
});
