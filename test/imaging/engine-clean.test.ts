import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ConflictError, NotFoundError, UnavailableError } from '../../src/errors.js';
import { runImaging, verifyImage } from '../../src/imaging/engine.js';
import { type MadeIso, makeIso, requireTool, sha256File } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { MiB, SECTOR, ddrescuelogBadSectors, imagingRequest, readMap, scratchDir } from './helpers.js';

const execFileAsync = promisify(execFile);

let workdir: string;
let iso: MadeIso;
let loop: LoopDevice;

before(async () => {
  workdir = await scratchDir('engine-clean');
  iso = await makeIso({ dir: workdir, label: 'CLEAN_TEST', dataMiB: 24, files: 5, seed: 7 });
  loop = await attachLoop(iso.path, { sectorSize: 2048, readOnly: true });
});

after(async () => {
  try {
    await loop?.detach();
  } finally {
    await rm(workdir, { recursive: true, force: true });
  }
});

test('a clean disc on a read-only 2048-byte loop device images bit-exact, with sidecars that coreutils accept', async () => {
  const outDir = await scratchDir('engine-clean-out');
  try {
    const outputPath = join(outDir, 'CLEAN_TEST.iso');
    const request = imagingRequest({ path: loop.path, sizeBytes: iso.sizeBytes }, outputPath, {
      options: { checksums: ['md5', 'sha1', 'sha256'], verify: true, directIo: 'on' },
      metadata: { label: 'CLEAN_TEST', job: 'job_1' },
    });
    const result = await runImaging(request);

    assert.equal(result.outcome, 'completed');
    assert.equal(result.resumed, false);
    assert.equal(result.verified, true);
    assert.equal(result.sizeBytes, iso.sizeBytes);
    assert.deepEqual(result.badSectors, { badBytes: 0, badAreas: 0, areas: [] });
    assert.equal(await sha256File(outputPath), iso.sha256);
    assert.equal(result.checksums.sha256, iso.sha256);
    // Every byte read once, plus the one-sector check at open whether O_DIRECT works.
    assert.deepEqual(result.reads, { calls: result.reads.calls, bytes: iso.sizeBytes + SECTOR, failed: 0, probes: 0 });
    assert.ok(result.reads.calls >= 2 && result.reads.calls <= 1 + iso.sizeBytes / (32 * SECTOR), `${result.reads.calls} reads, at most one per cluster`);
    const lastEvent = request.events[request.events.length - 1];
    assert.equal(lastEvent?.readBytes, iso.sizeBytes + SECTOR);
    assert.equal(lastEvent?.readCalls, result.reads.calls);

    // The output folder holds the image, its sidecars and the map; no .part, no temporary files.
    assert.deepEqual((await readdir(outDir)).sort(), [
      'CLEAN_TEST.iso',
      'CLEAN_TEST.iso.json',
      'CLEAN_TEST.iso.map',
      'CLEAN_TEST.iso.md5',
      'CLEAN_TEST.iso.sha1',
      'CLEAN_TEST.iso.sha256',
    ]);
    for (const name of await readdir(outDir)) assert.equal((await stat(join(outDir, name))).mode & 0o777, 0o644, `${name} mode`);
    assert.equal(await readFile(`${outputPath}.md5`, 'utf8'), `${result.checksums.md5}  CLEAN_TEST.iso\n`);

    for (const [tool, sidecar] of [
      ['md5sum', 'md5'],
      ['sha1sum', 'sha1'],
      ['sha256sum', 'sha256'],
    ] as const) {
      const binary = await requireTool(tool, 'coreutils');
      const { stdout } = await execFileAsync(binary, ['-c', `CLEAN_TEST.iso.${sidecar}`], { cwd: outDir });
      assert.equal(stdout, 'CLEAN_TEST.iso: OK\n');
    }

    // biome-ignore lint/suspicious/noExplicitAny: parsed JSON, its shape asserted field by field below
    const json = JSON.parse(await readFile(`${outputPath}.json`, 'utf8')) as Record<string, any>;
    assert.equal(json['version'], 1);
    assert.deepEqual(json['image'], { file: 'CLEAN_TEST.iso', size_bytes: iso.sizeBytes, sector_size: SECTOR });
    assert.deepEqual(json['source'], { path: loop.path, size_bytes: iso.sizeBytes, sector_size: SECTOR, direct_io: true });
    assert.deepEqual(json['metadata'], { label: 'CLEAN_TEST', job: 'job_1' });
    assert.deepEqual(json['options']['checksums'], ['md5', 'sha1', 'sha256']);
    assert.deepEqual(json['checksums'], result.checksums);
    assert.deepEqual(json['bad_sectors']['areas'], []);
    assert.equal(json['bad_sectors']['bad_bytes'], 0);
    assert.deepEqual(json['reads'], result.reads);
    assert.equal(json['verification']['ok'], true);
    assert.equal(json['verification']['bytes'], iso.sizeBytes);
    assert.deepEqual(
      json['verification']['results'].map((entry: { algorithm: string; ok: boolean }) => [entry.algorithm, entry.ok]),
      [
        ['md5', true],
        ['sha1', true],
        ['sha256', true],
      ],
    );
    assert.ok(Date.parse(json['timings']['finished_at']) >= Date.parse(json['timings']['started_at']));

    // The final map says everything is finished, for ddrescuelog too.
    const map = await readMap(result.mapPath);
    assert.deepEqual(map.blocks(), [{ pos: 0, size: iso.sizeBytes, status: '+' }]);
    assert.deepEqual(await ddrescuelogBadSectors(result.mapPath), []);

    // Progress: the phases in order, ending complete; never buffered on a loop device with O_DIRECT.
    const phases = request.events.map((event) => event.phase).filter((phase, index, all) => phase !== all[index - 1]);
    // No hashing phase: the copy pass fed the whole image to the hashers in order.
    assert.deepEqual(phases, ['preparing', 'copying', 'finalizing', 'verifying']);
    assert.ok(request.events.every((event) => !event.buffered && event.bytesTotal === iso.sizeBytes));
    const last = request.events[request.events.length - 1];
    assert.equal(last?.phase, 'verifying');
    assert.equal(last?.bytesDone, iso.sizeBytes);
    assert.equal(last?.percent, 100);
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
});

test('verifyImage reports a mismatch after a byte flips, and errors for a missing image or sidecars', async () => {
  const outDir = await scratchDir('engine-verify');
  try {
    const outputPath = join(outDir, 'v.iso');
    const result = await runImaging(imagingRequest({ path: loop.path, sizeBytes: iso.sizeBytes }, outputPath, { options: { checksums: ['sha1', 'sha256'] } }));
    assert.equal(result.verified, null, 'verify off: nothing recorded');
    const good = await verifyImage(outputPath);
    assert.equal(good.ok, true);
    assert.equal(good.bytes, iso.sizeBytes);
    assert.deepEqual(
      good.results.map((entry) => entry.algorithm),
      ['sha1', 'sha256'],
    );

    const handle = await open(outputPath, 'r+');
    try {
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, 5 * MiB + 3);
      byte[0] = (byte[0] ?? 0) ^ 0xff;
      await handle.write(byte, 0, 1, 5 * MiB + 3);
    } finally {
      await handle.close();
    }
    const bad = await verifyImage(outputPath);
    assert.equal(bad.ok, false);
    assert.ok(bad.results.every((entry) => !entry.ok && entry.actual !== entry.expected));

    await assert.rejects(verifyImage(join(outDir, 'missing.iso')), NotFoundError);
    const bare = join(outDir, 'bare.iso');
    await copyFile(outputPath, bare);
    await assert.rejects(verifyImage(bare), (error: unknown) => error instanceof NotFoundError && error.code === 'sidecars_not_found');
    await writeFile(`${bare}.md5`, 'not a checksum\n');
    await assert.rejects(verifyImage(bare), { code: 'sidecar_invalid' });
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
});

test('an existing image, a .part without map, or a map of another size is refused without touching anything', async () => {
  const outDir = await scratchDir('engine-conflict');
  try {
    const source = { path: loop.path, sizeBytes: iso.sizeBytes };
    const existing = join(outDir, 'existing.iso');
    await writeFile(existing, 'keep me');
    await assert.rejects(runImaging(imagingRequest(source, existing)), (error: unknown) => error instanceof ConflictError && error.code === 'output_exists');
    assert.equal(await readFile(existing, 'utf8'), 'keep me');

    const orphan = join(outDir, 'orphan.iso');
    await writeFile(`${orphan}.part`, 'partial');
    await assert.rejects(runImaging(imagingRequest(source, orphan)), { code: 'map_missing' });
    assert.equal(await readFile(`${orphan}.part`, 'utf8'), 'partial');

    const other = join(outDir, 'other.iso');
    await writeFile(`${other}.part`, '');
    await writeFile(`${other}.map`, '0x00000000 ? 1\n0x00000000 0x00100000 ?\n');
    await assert.rejects(runImaging(imagingRequest(source, other)), { code: 'map_size_mismatch' });

    await assert.rejects(
      runImaging(imagingRequest({ path: join(outDir, 'no-such-device'), sizeBytes: iso.sizeBytes }, join(outDir, 'nodev.iso'))),
      (error: unknown) => error instanceof UnavailableError && error.code === 'source_unreadable',
    );
    assert.deepEqual((await readdir(outDir)).sort(), ['existing.iso', 'orphan.iso.part', 'other.iso.map', 'other.iso.part']);
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
});

test('stopping during verification keeps the finished image and records no verdict', async () => {
  const outDir = await scratchDir('engine-verify-stop');
  try {
    const outputPath = join(outDir, 'stop.iso');
    const controller = new AbortController();
    const request = imagingRequest({ path: loop.path, sizeBytes: iso.sizeBytes }, outputPath, {
      options: { verify: true },
      signal: controller.signal,
      onProgress: (event) => {
        if (event.phase === 'verifying') controller.abort('pause');
      },
    });
    const result = await runImaging(request);
    assert.equal(result.outcome, 'completed');
    assert.equal(result.verified, null);
    assert.equal(await sha256File(outputPath), iso.sha256);
    const json = JSON.parse(await readFile(`${outputPath}.json`, 'utf8')) as { verification: unknown };
    assert.equal(json.verification, null);
    assert.ok(
      request.logs.some((line) => /^warning: verification of stop.iso was stopped/.test(line)),
      request.logs.join('\n'),
    );
    await assert.rejects(verifyImage(outputPath, { signal: controller.signal }), { code: 'verification_stopped' });
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
});

test('invalid requests are refused before anything happens', async () => {
  const outDir = await scratchDir('engine-invalid');
  try {
    const source = { path: loop.path, sizeBytes: iso.sizeBytes };
    for (const overrides of [{ source: { ...source, sectorSize: 1000 } }, { source: { ...source, sizeBytes: -1, sectorSize: SECTOR } }]) {
      await assert.rejects(runImaging({ ...imagingRequest(source, join(outDir, 'x.iso')), ...overrides }), { code: 'validation_failed' });
    }
    await assert.rejects(runImaging(imagingRequest(source, join(outDir, 'x.iso'), { options: { checksums: [] } })), { code: 'validation_failed' });
    await assert.rejects(runImaging(imagingRequest(source, join(outDir, 'x.iso'), { options: { clusterSectors: 0 } })), { code: 'validation_failed' });
    await assert.rejects(runImaging(imagingRequest(source, join(outDir, 'missing-dir', 'x.iso'))), { code: 'output_dir_not_found' });
    assert.deepEqual(await readdir(outDir), []);
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
});
