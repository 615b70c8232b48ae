import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

const HOSTILE = '</textarea><script>alert(3)</script>';

/** Reading an exported catalogue back in from the archive pages: the same import as the API's, for admins only. */
describe('the catalogue import form', () => {
  let server: WebTestServer;
  let byPath: string;
  let bySha: string;
  const sha = 'ab'.repeat(32);

  const entry = (path: string, label: string, overrides: Record<string, unknown> = {}) => ({
    filename: path.split('/').at(-1),
    path,
    size_bytes: 1000,
    created_at: '2024-05-01T10:00:00.000Z',
    checksums: {},
    metadata: { label, tags: ['imported'], notes: 'from the old machine', category: 'Moved', rating: 4, custom_fields: {} },
    source: { device_id: null, device_path: null, disc_kind: 'data', volume_label: null, volume_id: null, media_type: null, file_systems: [] },
    status: 'ok',
    bad_bytes: 0,
    ...overrides,
  });
  const documentOf = (archives: unknown[]) => JSON.stringify({ format: 'disk2iso-catalogue', version: 1, categories: [], archives });
  const labels = async () => [(await server.archiveRepository.get(byPath))?.metadata.label, (await server.archiveRepository.get(bySha))?.metadata.label];

  before(async () => {
    server = await startWebTestServer({ listen: false });
    const source = { deviceId: null, devicePath: null, discKind: 'data' as const, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] };
    const out = server.config.storage.output_dir;
    byPath = (
      await server.archiveRepository.create({
        filename: 'one.iso',
        path: join(out, 'one.iso'),
        sizeBytes: 1,
        checksums: {},
        metadata: { label: 'One' },
        source,
      })
    ).id;
    bySha = (
      await server.archiveRepository.create({
        filename: 'two.iso',
        path: join(out, 'two.iso'),
        sizeBytes: 1,
        checksums: { sha256: sha },
        metadata: { label: 'Two' },
        source,
      })
    ).id;
  });
  after(async () => {
    await server?.close();
  });

  it('shows the form with its warning to admins, linked from the archive page', async () => {
    assert.match((await server.send('GET', '/archive')).body, /<a class="button" href="\/archive\/import">Import catalogue<\/a>/);
    const form = (await server.send('GET', '/archive/import')).body;
    assert.match(form, /an entry matching an image by path or SHA-256 replaces that image&#39;s label/);
    assert.match(form, /<textarea id="import-document" name="document"/);
  });

  it('imports: updates by path and by SHA-256, creates inside the output folder, skips outside, and reports it', async () => {
    const out = server.config.storage.output_dir;
    const document = documentOf([
      entry(join(out, 'one.iso'), 'One, described'),
      entry('/elsewhere/renamed.iso', 'Two, described', { checksums: { sha256: sha } }),
      entry(join(out, 'three.iso'), 'Three'),
      entry('/elsewhere/four.iso', 'Four'),
    ]);
    const answer = await server.send('POST', '/archive/import', { form: { document } });
    assert.equal(answer.status, 200);
    assert.match(answer.body, /data-import-report/);
    assert.match(answer.body, /<dd data-import-created>1<\/dd>/);
    assert.match(answer.body, /<dd data-import-updated>2<\/dd>/);
    assert.match(answer.body, /<dd data-import-skipped>1<\/dd>/);
    assert.match(answer.body, /1 entry matched no image and lies outside the output directory/);
    assert.deepEqual(await labels(), ['One, described', 'Two, described']);
    const two = await server.archiveRepository.get(bySha);
    assert.deepEqual(two?.metadata.tags, ['imported']);
    assert.equal(two?.metadata.rating, 4);
    assert.equal((await server.archiveRepository.getByPath(join(out, 'three.iso')))?.metadata.label, 'Three');
    assert.equal(await server.archiveRepository.getByPath('/elsewhere/four.iso'), null);
    const again = await server.send('POST', '/archive/import', { form: { document } });
    assert.match(again.body, /<dd data-import-updated>0<\/dd>/, 'the same document twice changes nothing the second time');
  });

  it('refuses bad JSON and a document that is not a catalogue, next to the field, changing nothing', async () => {
    const before = await labels();
    const broken = await server.send('POST', '/archive/import', { form: { document: `{"format": "disk2iso-catalogue", ${HOSTILE}` } });
    assert.equal(broken.status, 400);
    assert.match(broken.body, /aria-invalid="true" aria-describedby="import-document-error"/);
    assert.match(broken.body, /<p class="field-error" id="import-document-error">This is not valid JSON \(.+\)\. Nothing was changed\.<\/p>/);
    assert.ok(!broken.body.includes(HOSTILE), 'the pasted text comes back escaped');
    assert.ok(broken.body.includes('&lt;/textarea&gt;&lt;script&gt;alert(3)&lt;/script&gt;'));
    const badEntry = documentOf([entry(join(server.config.storage.output_dir, 'one.iso'), 'Changed'), entry('/x/y.iso', 'Bad', { bad_bytes: -1 })]);
    const invalid = await server.send('POST', '/archive/import', { form: { document: badEntry } });
    assert.equal(invalid.status, 400);
    assert.match(invalid.body, /This is not a disk2iso catalogue export \(\/archives\/1\/bad_bytes: .+\)\. Nothing was changed\./);
    const empty = await server.send('POST', '/archive/import', { form: { document: '  ' } });
    assert.equal(empty.status, 400);
    assert.match(empty.body, /Paste a catalogue document\./);
    assert.deepEqual(await labels(), before, 'a refused document changes no record');
  });

  it('is for admins: an operator gets 403 and sees no import link', async () => {
    const operator = server.sessions.operator;
    assert.equal((await server.send('GET', '/archive/import', { session: operator })).status, 403);
    const before = await labels();
    const posted = await server.send('POST', '/archive/import', {
      session: operator,
      form: { document: documentOf([entry(join(server.config.storage.output_dir, 'one.iso'), 'By operator')]) },
    });
    assert.equal(posted.status, 403);
    assert.deepEqual(await labels(), before);
    assert.doesNotMatch((await server.send('GET', '/archive', { session: operator })).body, /href="\/archive\/import"/);
  });
});
