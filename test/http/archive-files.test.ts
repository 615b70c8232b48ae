import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { openDataDirDatabase } from '../support/database.js';
import { requireTool, run } from '../tools/exec.js';
import { listSourceTree, makeXorrisoImage, readSourceFile, writeSourceTree } from '../tools/image-fixtures.js';
import { type Udf250File, buildUdf250Image, udf250SampleFiles } from '../tools/udf250-image.js';
import { type TestServer, api, authHeadersFor, startTestServer, waitFor } from './support.js';

/** Looking inside archived images over HTTP: listings, one file with ranges, folders as tar, the file index. */
describe('files inside archived images', () => {
  let work: string;
  let source: string;
  let service: TestServer;
  let archiveId: string;
  let brokenId: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'archive-files-'));
    source = join(work, 'source');
    await writeSourceTree(source);
    service = await startTestServer();
    await mkdir(service.outputDir, { recursive: true });
    const image = join(service.outputDir, 'files.iso');
    await makeXorrisoImage(source, image, ['-R', '-J', '-joliet-long']);
    const broken = join(service.outputDir, 'broken.iso');
    await copyFile(image, broken);
    const handle = await open(broken, 'r+');
    await handle.write(Buffer.alloc(2048, 0xff), 0, 2048, 16 * 2048);
    await handle.write(Buffer.from('\x01CD001\x01'), 0, 7, 16 * 2048);
    await handle.close();
    const database = await openDataDirDatabase(service.dataDir);
    try {
      const archives = createArchiveRepository(database);
      const sourceInfo = {
        deviceId: null,
        devicePath: null,
        discKind: 'data' as const,
        volumeLabel: 'FILES',
        volumeId: null,
        mediaType: null,
        fileSystems: [],
      };
      archiveId = (await archives.create({ filename: 'files.iso', path: image, sizeBytes: 0, checksums: {}, source: sourceInfo })).id;
      brokenId = (await archives.create({ filename: 'broken.iso', path: broken, sizeBytes: 0, checksums: {}, source: sourceInfo })).id;
    } finally {
      await database.close();
    }
  });

  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
  });

  const raw = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${service.url}${path}`, { headers: { ...authHeadersFor(service.url), ...headers } });

  it('lists folders, folders first, with sizes and times', async () => {
    const root = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/files`);
    assert.equal(root.status, 200, JSON.stringify(root.body));
    assert.equal(root.body.file_system, 'rockridge');
    const names = root.body.entries.map((entry: { name: string }) => entry.name);
    assert.deepEqual(names.slice(0, 2), ['Grüße – 日本', 'deep']);
    assert.ok(names.includes('random.bin'));
    const random = root.body.entries.find((entry: { name: string }) => entry.name === 'random.bin');
    assert.equal(random.size, (await readSourceFile(source, 'random.bin')).length);
    assert.match(random.mtime, /^\d{4}-\d{2}-\d{2}T/);
    const nested = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/files?path=${encodeURIComponent('/Grüße – 日本/')}`);
    assert.equal(nested.status, 200);
    assert.equal(nested.body.path, 'Grüße – 日本');
    assert.deepEqual(
      nested.body.entries.map((entry: { name: string }) => entry.name),
      ['Ünïcödé ✓.txt'],
    );
  });

  it('refuses traversal and names what is missing, with typed errors', async () => {
    for (const path of ['../etc/passwd', 'deep/../../x', 'a\u0001b', './hello.txt']) {
      const answer = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/files?path=${encodeURIComponent(path)}`);
      assert.equal(answer.status, 400, path);
      assert.ok(['image_path_invalid', 'validation_failed'].includes(answer.body.error.code), `${path}: ${answer.body.error.code}`);
    }
    const missing = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/files/content?path=nothing.txt`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'image_path_not_found');
    const folder = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/files/content?path=deep`);
    assert.equal(folder.body.error.code, 'image_not_a_file');
    const corrupt = await api(service.url, 'GET', `/api/v1/archives/${brokenId}/files`);
    assert.equal(corrupt.status, 409);
    assert.equal(corrupt.body.error.code, 'image_corrupt');
  });

  it('downloads one file: bytes, range, type, a safe disposition, and an audit entry', async () => {
    const expected = await readSourceFile(source, 'random.bin');
    const whole = await raw(`/api/v1/archives/${archiveId}/files/content?path=random.bin`);
    assert.equal(whole.status, 200);
    assert.deepEqual(Buffer.from(await whole.arrayBuffer()), expected);
    assert.equal(whole.headers.get('content-type'), 'application/octet-stream');
    const part = await raw(`/api/v1/archives/${archiveId}/files/content?path=random.bin`, { range: 'bytes=100-199' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${expected.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), expected.subarray(100, 200));
    const past = await raw(`/api/v1/archives/${archiveId}/files/content?path=random.bin`, { range: `bytes=${expected.length}-` });
    assert.equal(past.status, 416);

    const text = await raw(`/api/v1/archives/${archiveId}/files/content?path=${encodeURIComponent('Grüße – 日本/Ünïcödé ✓.txt')}`);
    assert.equal(text.status, 200);
    assert.equal(await text.text(), 'unicode\n');
    assert.equal(text.headers.get('content-type'), 'text/plain; charset=utf-8');
    const disposition = text.headers.get('content-disposition') ?? '';
    assert.match(disposition, /^attachment; filename="[\x20-\x7e]+"; filename\*=UTF-8''/);
    assert.ok(disposition.includes(encodeURIComponent('Ünïcödé')));
    assert.equal(text.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(text.headers.get('content-security-policy'), "default-src 'none'; sandbox", 'a file from a disc never runs as a page of the service');

    const audit = await api(service.url, 'GET', '/api/v1/audit?event_type=archive');
    const entry = audit.body.entries.find((candidate: { action: string }) => candidate.action === 'file_download');
    assert.ok(entry, JSON.stringify(audit.body));
    assert.equal(entry.details.archive_id, archiveId);
  });

  it('downloads a folder as tar whose files match the source', async () => {
    const tar = await requireTool('tar', 'tar');
    const answer = await raw(`/api/v1/archives/${archiveId}/files/archive?path=`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('content-type'), 'application/x-tar');
    const file = join(work, 'all.tar');
    await writeFile(file, Buffer.from(await answer.arrayBuffer()));
    const out = join(work, 'untarred');
    await mkdir(out);
    await run(tar, ['-xf', file, '-C', out]);
    for (const entry of await listSourceTree(source)) {
      if (entry.kind === 'file') assert.deepEqual(await readFile(join(out, 'files', entry.path)), await readSourceFile(source, entry.path), entry.path);
    }
    const sub = await raw(`/api/v1/archives/${archiveId}/files/archive?path=deep/level0`);
    assert.equal(sub.status, 200);
    const subFile = join(work, 'sub.tar');
    await writeFile(subFile, Buffer.from(await sub.arrayBuffer()));
    const listed = (await run(tar, ['-tf', subFile])).stdout.split('\n').filter((line) => line !== '');
    assert.ok(
      listed.every((line) => line.startsWith('level0/')),
      listed.join(', '),
    );
    assert.ok(listed.some((line) => line.endsWith('bottom.txt')));
  });

  it('the archive page browses the image without JavaScript: folders, breadcrumbs, download links, escaped names', async () => {
    const page = await raw(`/archive/${archiveId}?path=${encodeURIComponent('deep/level0')}`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.ok(html.includes(`href="/archive/${archiveId}?path=deep%2Flevel0%2Flevel1#files-heading"`), 'a folder links to its listing');
    assert.ok(html.includes(`href="/archive/${archiveId}?path=deep#files-heading"`), 'a breadcrumb leads back');
    assert.ok(html.includes(`/api/v1/archives/${archiveId}/files/archive?path=deep%2Flevel0`), 'the folder downloads as tar');
    const root = await (await raw(`/archive/${archiveId}`)).text();
    assert.ok(root.includes(`/api/v1/archives/${archiveId}/files/content?path=random.bin`), 'a file downloads');
    const broken = await (await raw(`/archive/${brokenId}`)).text();
    assert.match(broken, /role="alert"/, 'an unreadable image shows why, and the page still renders');
    const hostile = await raw(`/archive/${archiveId}?path=${encodeURIComponent('<script>x</script>')}`);
    assert.ok(!(await hostile.text()).includes('<script>x</script>'), 'a path is escaped');
  });

  it('indexes the images in the background and finds files by name, best first', async () => {
    await waitFor('the image to be indexed', async () => {
      const answer = await api(service.url, 'GET', '/api/v1/archives/files/search?q=bottom');
      return answer.status === 200 && answer.body.results.length > 0;
    });
    const found = await api(service.url, 'GET', '/api/v1/archives/files/search?q=bott');
    assert.equal(found.status, 200);
    const [hit] = found.body.results;
    assert.equal(hit.archive_id, archiveId);
    assert.equal(hit.archive_filename, 'files.iso');
    assert.equal(hit.name, 'bottom.txt');
    const download = await raw(hit.link);
    assert.equal(await download.text(), 'the bottom\n');
    const unicode = await api(service.url, 'GET', `/api/v1/archives/files/search?q=${encodeURIComponent('unicode')}`);
    assert.ok(
      unicode.body.results.some((result: { name: string }) => result.name === 'Ünïcödé ✓.txt'),
      'diacritics are folded',
    );
    const syntax = await api(service.url, 'GET', `/api/v1/archives/files/search?q=${encodeURIComponent('" OR * NEAR(')}`);
    assert.equal(syntax.status, 200, 'FTS5 syntax in a search is taken as words');
    const noWords = await api(service.url, 'GET', `/api/v1/archives/files/search?q=${encodeURIComponent('"*(')}`);
    assert.equal(noWords.status, 400);

    assert.equal((await api(service.url, 'DELETE', `/api/v1/archives/${archiveId}`)).status, 204);
    const gone = await api(service.url, 'GET', '/api/v1/archives/files/search?q=bottom');
    assert.deepEqual(gone.body.results, [], 'a deleted archive’s files leave the index with it');
  });
});

/**
 * The same routes on a UDF 2.50 image with a metadata partition (the Blu-ray layout, which mkudffs
 * cannot make): its own service, so its files do not mix with the ISO's in the searches above.
 */
describe('files inside an archived UDF 2.50 image', () => {
  let work: string;
  let service: TestServer;
  let archiveId: string;
  let files: Udf250File[];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'archive-files-udf250-'));
    service = await startTestServer();
    await mkdir(service.outputDir, { recursive: true });
    files = udf250SampleFiles();
    const image = await buildUdf250Image({ path: join(service.outputDir, 'bluray.img'), label: 'BD_SAMPLE', files });
    const database = await openDataDirDatabase(service.dataDir);
    try {
      const source = {
        deviceId: null,
        devicePath: null,
        discKind: 'bd-video' as const,
        volumeLabel: 'BD_SAMPLE',
        volumeId: null,
        mediaType: null,
        fileSystems: ['udf' as const],
      };
      archiveId = (
        await createArchiveRepository(database).create({ filename: 'bluray.img', path: image.path, sizeBytes: image.sizeBytes, checksums: {}, source })
      ).id;
    } finally {
      await database.close();
    }
  });

  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
  });

  const raw = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${service.url}${path}`, { headers: { ...authHeadersFor(service.url), ...headers } });
  const content = (path: string): Buffer => files.find((file) => file.path === path)?.content ?? assert.fail(`no ${path} in the sample`);

  it('lists folders and downloads files, with ranges across a file’s two extents', async () => {
    const root = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/files`);
    assert.equal(root.status, 200, JSON.stringify(root.body));
    assert.equal(root.body.file_system, 'udf');
    assert.deepEqual(
      root.body.entries.map((entry: { name: string }) => entry.name),
      ['Grüße – 日本', 'deep', 'many', 'café.txt', 'empty.dat', 'hello.txt', 'random.bin'],
    );
    const nested = await api(service.url, 'GET', `/api/v1/archives/${archiveId}/files?path=${encodeURIComponent('Grüße – 日本')}`);
    assert.deepEqual(
      nested.body.entries.map((entry: { name: string; size: number }) => [entry.name, entry.size]),
      [['Ünïcödé ✓.txt', 8]],
    );
    const random = content('random.bin');
    const whole = await raw(`/api/v1/archives/${archiveId}/files/content?path=random.bin`);
    assert.deepEqual(Buffer.from(await whole.arrayBuffer()), random);
    // The generator splits a file larger than 64 KiB after its first half, rounded down to whole blocks.
    const boundary = Math.floor(random.length / 2 / 2048) * 2048;
    const across = await raw(`/api/v1/archives/${archiveId}/files/content?path=random.bin`, { range: `bytes=${boundary - 10}-${boundary + 10}` });
    assert.equal(across.status, 206);
    assert.deepEqual(Buffer.from(await across.arrayBuffer()), random.subarray(boundary - 10, boundary + 11));
    const empty = await raw(`/api/v1/archives/${archiveId}/files/content?path=empty.dat`);
    assert.equal(empty.status, 200);
    assert.equal((await empty.arrayBuffer()).byteLength, 0);
  });

  it('downloads the whole image as tar whose files match the generated ones', async () => {
    const tar = await requireTool('tar', 'tar');
    const answer = await raw(`/api/v1/archives/${archiveId}/files/archive?path=`);
    assert.equal(answer.status, 200);
    const file = join(work, 'all.tar');
    await writeFile(file, Buffer.from(await answer.arrayBuffer()));
    const out = join(work, 'untarred');
    await mkdir(out);
    await run(tar, ['-xf', file, '-C', out]);
    for (const generated of files) assert.deepEqual(await readFile(join(out, 'bluray', generated.path)), generated.content, generated.path);
  });

  it('indexes the image and finds its files by name', async () => {
    await waitFor('the UDF 2.50 image to be indexed', async () => {
      const answer = await api(service.url, 'GET', '/api/v1/archives/files/search?q=bottom');
      return answer.status === 200 && answer.body.results.length > 0;
    });
    const [hit] = (await api(service.url, 'GET', '/api/v1/archives/files/search?q=bottom')).body.results;
    assert.equal(hit.archive_id, archiveId);
    assert.equal(hit.name, 'bottom.txt');
    assert.equal(await (await raw(hit.link)).text(), 'the bottom\n');
    const unicode = await api(service.url, 'GET', `/api/v1/archives/files/search?q=${encodeURIComponent('unicode')}`);
    assert.ok(
      unicode.body.results.some((result: { name: string }) => result.name === 'Ünïcödé ✓.txt'),
      JSON.stringify(unicode.body.results),
    );
    const many = await api(service.url, 'GET', '/api/v1/archives/files/search?q=long-name');
    assert.equal(many.body.results.length, 10, 'every file of the folder that crosses the metadata extents');
  });
});
