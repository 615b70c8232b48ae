import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createArchiveRepository } from '../../../src/db/archive-repository.js';
import { type TestServer, api, authHeadersFor, startTestServer, waitFor } from '../../http/support.js';
import { openDataDirDatabase } from '../../support/database.js';
import { makeXorrisoImage } from '../../tools/image-fixtures.js';

const HOSTILE_NAME = '<script>alert(7)<img src=x onerror=alert(8)>hostile.txt';

/** The archive page's one search box: discs by their description and, below, files inside the images by name or path. */
describe('the archive page finds files inside archived images', () => {
  let work: string;
  let service: TestServer;
  let archiveId: string;
  const report = Buffer.from(Array.from({ length: 70_000 }, (_, index) => (index * 7 + 3) % 256));

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'file-search-'));
    const source = join(work, 'source');
    await mkdir(join(source, 'tax', '2024'), { recursive: true });
    await writeFile(join(source, 'tax', '2024', 'quarterly-report.pdf'), report);
    await writeFile(join(source, HOSTILE_NAME), 'not a script\n');
    for (let index = 0; index < 12; index += 1) await writeFile(join(source, `photo-${index}.jpg`), `photo ${index}\n`);
    service = await startTestServer();
    await mkdir(service.outputDir, { recursive: true });
    const image = await makeXorrisoImage(source, join(service.outputDir, 'taxes.iso'), ['-R', '-J', '-joliet-long']);
    const database = await openDataDirDatabase(service.dataDir);
    try {
      const created = await createArchiveRepository(database).create({
        filename: 'taxes.iso',
        path: image,
        sizeBytes: 0,
        checksums: {},
        metadata: { label: 'Old papers' },
        source: { deviceId: null, devicePath: null, discKind: 'data', volumeLabel: 'TAXES', volumeId: null, mediaType: null, fileSystems: [] },
      });
      archiveId = created.id;
    } finally {
      await database.close();
    }
    await waitFor('the image to be indexed', async () => {
      const answer = await api(service.url, 'GET', '/api/v1/archives/files/search?q=quarterly');
      return answer.status === 200 && answer.body.results.length > 0;
    });
  });

  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
  });

  const page = async (path: string) => {
    const answer = await fetch(`${service.url}${path}`, { headers: authHeadersFor(service.url) });
    assert.equal(answer.status, 200);
    return answer.text();
  };
  const fileHits = (html: string) => html.match(/<tr data-file-hit>/g)?.length ?? 0;

  it('lists a matching file with its disc, its folder and a download that gives the bytes', async () => {
    const html = await page('/archive?q=quarterly');
    assert.match(html, /<h2 id="files-results">Files<\/h2>/);
    assert.equal(fileHits(html), 1);
    assert.ok(html.includes('<code>tax/2024/quarterly-report.pdf</code>'), 'the path');
    assert.ok(html.includes(`<a href="/archive/${archiveId}?path=tax%2F2024#files-heading">Old papers</a>`), 'the disc, opened at the folder');
    const download = html.match(/<a class="button small" href="([^"]+)" download[^>]*data-file-download>/)?.[1];
    assert.equal(download, `/api/v1/archives/${archiveId}/files/content?path=tax/2024/quarterly-report.pdf`);
    const file = await fetch(`${service.url}${download.replaceAll('&amp;', '&')}`, { headers: authHeadersFor(service.url) });
    assert.equal(file.status, 200);
    assert.deepEqual(Buffer.from(await file.arrayBuffer()), report);
    const folder = await page(`/archive/${archiveId}?path=tax%2F2024`);
    assert.ok(folder.includes('quarterly-report.pdf'), 'the folder link shows the file');
  });

  it('finds files by a folder of their path, and in German', async () => {
    const html = await page('/archive?q=2024');
    assert.ok(html.includes('<code>tax/2024/quarterly-report.pdf</code>'));
    const german = await fetch(`${service.url}/archive?q=quarterly`, { headers: { ...authHeadersFor(service.url), 'accept-language': 'de' } });
    assert.match(await german.text(), /<h2 id="files-results">Dateien<\/h2>/);
  });

  it('shows ten hits and a link to more, which keeps the search and shows the next ten', async () => {
    const first = await page('/archive?q=photo');
    assert.equal(fileHits(first), 10);
    const more = first.match(/<a href="([^"]+)" data-more-files>/)?.[1];
    assert.equal(more, '/archive?q=photo&amp;files=2#files-results');
    const second = await page('/archive?q=photo&files=2');
    assert.equal(fileHits(second), 12);
    assert.doesNotMatch(second, /data-more-files/, 'nothing more to show');
  });

  it('escapes a hostile file name, and says when no file matches', async () => {
    const html = await page('/archive?q=hostile');
    assert.equal(fileHits(html), 1);
    assert.ok(!html.includes('<script>alert(7)'), 'no script from a name on a disc');
    assert.ok(!html.includes('<img src=x'), 'no element from a name on a disc');
    assert.ok(html.includes('&lt;script&gt;alert(7)&lt;img src=x onerror=alert(8)&gt;hostile.txt'));
    const none = await page('/archive?q=nowhere');
    assert.match(none, /No file name or path matches this search\./);
    assert.doesNotMatch(await page('/archive'), /files-results/, 'no file section without a search');
  });
});
