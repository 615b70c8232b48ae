import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { writeDemoIso } from '../../src/media/iso9660-writer.js';
import { createTestDataDir, openDataDirDatabase, removeTestDataDir } from '../support/database.js';
import { type TestServer, api, startTestServer, waitFor } from './support.js';

const MiB = 1024 * 1024;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const md5 = (bytes: Buffer) => createHash('md5').update(bytes).digest('hex');
const source = { deviceId: null, devicePath: null, discKind: 'data' as const, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] };
const ended = (status: string) => ['completed', 'failed', 'cancelled'].includes(status);

/**
 * Integrity over years against a real service: a scheduled verification finds bytes flipped in an
 * archived image, PAR2 data made by Debian's par2 repairs them, and the repair's own verification
 * proves the original SHA-256; existing images are adopted from a folder; a vanished image stays
 * in the catalogue as missing.
 */
describe('scheduled re-verification, PAR2 repair, adoption and missing images', () => {
  let dataDir: string;
  let outside: string;
  let service: TestServer;
  let imagePath: string;
  let original: Buffer;
  let archiveId: string;
  let goneId: string;

  const archive = async (id: string) => (await api(service.url, 'GET', `/api/v1/archives/${id}`)).body;
  const history = async (id: string) => (await api(service.url, 'GET', `/api/v1/archives/${id}/verifications`)).body.verifications;
  const maintenanceTask = async (id: string) => (await api(service.url, 'GET', `/api/v1/archives/maintenance-tasks/${id}`)).body;
  const untilEnded = async (id: string) => {
    await waitFor(`task ${id} to end`, async () => ended((await maintenanceTask(id)).status));
    return maintenanceTask(id);
  };
  /** As if the last verification were two days old: the schedule (every day) finds it due again. */
  const ageLastVerification = async (id: string) => {
    const database = await openDataDirDatabase(dataDir);
    try {
      await database.kysely
        .updateTable('archives')
        .set({ last_verified_at: new Date(Date.now() - 2 * 86_400_000).toISOString() })
        .where('id', '=', id)
        .execute();
    } finally {
      await database.close();
    }
  };

  before(async () => {
    dataDir = await createTestDataDir('disk2iso-integrity-');
    outside = await mkdtemp(join(tmpdir(), 'disk2iso-outside-'));
    const outputDir = join(dataDir, 'output');
    await mkdir(outputDir, { recursive: true });
    original = randomBytes(8 * MiB);
    imagePath = join(outputDir, 'photos.iso');
    await writeFile(imagePath, original);
    await writeFile(`${imagePath}.sha256`, `${sha256(original)}  photos.iso\n`);
    await writeFile(`${imagePath}.md5`, `${md5(original)}  photos.iso\n`);
    const gonePath = join(outputDir, 'gone.iso');
    await writeFile(gonePath, original.subarray(0, MiB));
    await writeFile(`${gonePath}.sha256`, `${sha256(original.subarray(0, MiB))}  gone.iso\n`);
    const database = await openDataDirDatabase(dataDir);
    try {
      const archives = createArchiveRepository(database);
      const checksums = { sha256: sha256(original), md5: md5(original) };
      archiveId = (await archives.create({ filename: 'photos.iso', path: imagePath, sizeBytes: original.length, checksums, source })).id;
      goneId = (
        await archives.create({ filename: 'gone.iso', path: gonePath, sizeBytes: MiB, checksums: { sha256: sha256(original.subarray(0, MiB)) }, source })
      ).id;
      // Verified a moment ago: the schedule leaves it alone, so only the image under test is verified by it.
      await archives.recordVerification(goneId, { startedAt: new Date(), finishedAt: new Date(), ok: true, results: {}, seconds: 0 });
    } finally {
      await database.close();
    }
    service = await startTestServer({
      dataDir,
      archive: { reverifyCheckMs: 100 },
      env: {
        DISK2ISO_ARCHIVE_REVERIFY_INTERVAL_DAYS: '1',
        // Start = end: the window is the whole day, whenever the test runs.
        DISK2ISO_ARCHIVE_REVERIFY_WINDOW_START_HOUR: '0',
        DISK2ISO_ARCHIVE_REVERIFY_WINDOW_END_HOUR: '0',
        DISK2ISO_ARCHIVE_ADOPT_ROOTS: join(outside, 'allowed'),
      },
    });
  });

  after(async () => {
    await service?.close();
    await removeTestDataDir(dataDir);
    await rm(outside, { recursive: true, force: true });
  });

  it('verifies on schedule, finds flipped bytes, and repairs them from PAR2 data to the original SHA-256', async () => {
    await waitFor('the first scheduled verification', async () => (await history(archiveId)).length === 1);
    const [first] = await history(archiveId);
    assert.deepEqual([first.origin, first.ok, first.requested_by], ['schedule', true, null]);

    const created = await api(service.url, 'POST', `/api/v1/archives/${archiveId}/recovery`, { redundancy_percent: 5 });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    assert.equal(created.headers.get('location'), `/api/v1/archives/maintenance-tasks/${created.body.task.id}`);
    const made = await untilEnded(created.body.task.id);
    assert.equal(made.status, 'completed', JSON.stringify(made));
    const withRecovery = await archive(archiveId);
    assert.equal(withRecovery.recovery.redundancy_percent, 5);
    assert.ok(withRecovery.recovery.size_bytes > 0);
    assert.ok((await readdir(`${imagePath}.recovery`)).some((name) => name.endsWith('.par2')));

    // Bit rot: a few bytes in the middle of the image change on disk.
    const handle = await open(imagePath, 'r+');
    try {
      await handle.write(Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, 3 * MiB + 17);
    } finally {
      await handle.close();
    }
    assert.notEqual(sha256(await readFile(imagePath)), sha256(original));
    await ageLastVerification(archiveId);
    await waitFor('the scheduled verification to find the damage', async () => (await history(archiveId)).length === 2);
    const [found] = await history(archiveId);
    assert.deepEqual([found.origin, found.ok], ['schedule', false]);
    const sha = found.results.algorithms.find((result: { algorithm: string }) => result.algorithm === 'sha256');
    assert.equal(sha.expected, sha256(original));
    assert.notEqual(sha.actual, sha256(original));
    assert.equal((await archive(archiveId)).status, 'damaged');

    const repair = await api(service.url, 'POST', `/api/v1/archives/${archiveId}/repair`);
    assert.equal(repair.status, 202, JSON.stringify(repair.body));
    const repaired = await untilEnded(repair.body.task.id);
    assert.equal(repaired.status, 'completed', JSON.stringify(repaired));
    const verificationTask = repaired.result.verification_task_id;
    await waitFor('the verification after the repair', async () => {
      const task = (await api(service.url, 'GET', `/api/v1/archives/verification-tasks/${verificationTask}`)).body;
      return ended(task.status);
    });
    const [after] = await history(archiveId);
    assert.deepEqual([after.origin, after.ok], ['repair', true]);
    assert.equal((await archive(archiveId)).status, 'ok');
    assert.equal(sha256(await readFile(imagePath)), sha256(original));
    const left = await readdir(join(dataDir, 'output'));
    assert.deepEqual(
      left.filter((name) => name.startsWith('photos.iso.') && /\.\d+$/.test(name)),
      [],
      'the damaged copy par2 set aside is removed',
    );
  });

  it('refuses recovery work it cannot do, without queueing anything', async () => {
    const bad = await api(service.url, 'POST', `/api/v1/archives/${archiveId}/recovery`, { redundancy_percent: 0 });
    assert.equal(bad.status, 400);
    const noData = await api(service.url, 'POST', `/api/v1/archives/${goneId}/repair`);
    assert.equal(noData.status, 404);
    assert.equal(noData.body.error.code, 'recovery_not_found');
    assert.equal((await api(service.url, 'GET', `/api/v1/archives/maintenance-tasks?archive_id=${goneId}`)).body.total, 0);
  });

  it('adopts a folder of images: hashed, checked against sidecars, described, each once; symlinks and foreign folders refused', async () => {
    const folder = join(outside, 'allowed', 'old-discs');
    await mkdir(folder, { recursive: true });
    const labelled = await writeDemoIso(join(folder, 'holiday.iso'), { sizeMiB: 2, label: 'HOLIDAY_2009' });
    const labelledBytes = await readFile(labelled.path);
    const plain = randomBytes(MiB);
    await writeFile(join(folder, 'plain.iso'), plain);
    await writeFile(join(folder, 'plain.iso.md5'), `${md5(plain)}  plain.iso\n`);
    const rotten = randomBytes(MiB);
    await writeFile(join(folder, 'rotten.iso'), rotten);
    await writeFile(join(folder, 'rotten.iso.sha256'), `${sha256(randomBytes(16))}  rotten.iso\n`);
    const secret = join(outside, 'secret.iso');
    await writeFile(secret, randomBytes(4096));
    await symlink(secret, join(folder, 'escape.iso'));

    for (const refused of ['/etc', join(outside, 'allowed', '..'), join(outside, 'allowed', 'old-discs', '..', '..'), 'relative/path']) {
      const answer = await api(service.url, 'POST', '/api/v1/archives/adopt', { folder: refused });
      assert.equal(answer.status, 400, `${refused}: ${JSON.stringify(answer.body)}`);
    }
    const viaLink = join(outside, 'allowed', 'link-out');
    await symlink(outside, viaLink);
    assert.equal((await api(service.url, 'POST', '/api/v1/archives/adopt', { folder: viaLink })).body.error.code, 'adopt_path_refused');

    const started = await api(service.url, 'POST', '/api/v1/archives/adopt', { folder });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const done = await untilEnded(started.body.task.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.deepEqual(
      done.result.adopted.map((entry: { file: string; ok: boolean }) => [entry.file, entry.ok]),
      [
        ['holiday.iso', true],
        ['plain.iso', true],
        ['rotten.iso', false],
      ],
    );
    assert.deepEqual(done.result.skipped, [{ file: 'escape.iso', reason: 'symlink' }]);
    const holiday = await archive(done.result.adopted[0].archive_id);
    assert.equal(holiday.source.volume_label, 'HOLIDAY_2009');
    assert.equal(holiday.checksums.sha256, sha256(labelledBytes));
    assert.equal(holiday.status, 'ok');
    assert.equal((await history(holiday.id))[0].origin, 'adoption');
    assert.equal((await archive(done.result.adopted[2].archive_id)).status, 'damaged', 'a sidecar that disagrees marks the image damaged');
    assert.equal(await readFile(join(folder, 'plain.iso.sha256'), 'utf8'), `${sha256(plain)}  plain.iso\n`, 'a missing sidecar is written');

    const again = await untilEnded((await api(service.url, 'POST', '/api/v1/archives/adopt', { folder })).body.task.id);
    assert.deepEqual(again.result.adopted, []);
    assert.equal(again.result.skipped.filter((entry: { reason: string }) => entry.reason === 'already archived').length, 3);
  });

  it('shows an image that is gone from disk as missing and keeps it in the catalogue', async () => {
    await unlink(join(dataDir, 'output', 'gone.iso'));
    const verify = await api(service.url, 'POST', `/api/v1/archives/${goneId}/verify`);
    assert.equal(verify.status, 404);
    assert.equal(verify.body.error.code, 'archive_file_missing');
    const listed = (await api(service.url, 'GET', '/api/v1/archives?status=missing')).body.archives;
    assert.deepEqual(
      listed.map((entry: { id: string }) => entry.id),
      [goneId],
    );
    assert.equal((await archive(goneId)).status, 'missing');
  });
});
