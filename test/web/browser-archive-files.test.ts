import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { SESSION_COOKIE } from '../../src/http/guard.js';
import { requireTool, run } from '../tools/exec.js';
import { listSourceTree, makeXorrisoImage, readSourceFile, writeSourceTree } from '../tools/image-fixtures.js';
import { launchBrowser, watchedContext } from './support/browser.js';
import { type WebTestServer, startWebTestServer } from './support/server.js';

/** The files of an archived image in Chromium at desktop width: browsing the folder links, one file, a folder as tar. */
describe('the files of an archived image in Chromium', () => {
  let browser: Browser;
  let server: WebTestServer;
  let work: string;
  let source: string;
  let archiveId: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'browser-archive-files-'));
    source = join(work, 'source');
    await writeSourceTree(source);
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
});
