import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, realpath, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { type DriveServiceDeps, createDriveService } from '../../src/drives/service.js';
import { ConflictError, NotFoundError, UnavailableError } from '../../src/errors.js';
import { type MadeIso, makeIso, sha256File } from '../tools/iso.js';
import { attachLoop } from '../tools/loop.js';
import { CDROM_INFO_FIXTURE, SYSFS_FIXTURE, type UdevRecording, mockUdevLayer } from './fixtures.js';

let workdir: string;
let iso: MadeIso;
let counter = 0;

before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'drives-service-'));
  iso = await makeIso({ dir: workdir, label: 'SERVICE_DISC', dataMiB: 1 });
});

after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

async function scratchDir(name: string): Promise<string> {
  counter += 1;
  const dir = join(workdir, `${counter}-${name}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

function configWith(dataDir: string, drives: Partial<Config['drives']>, inCheckout: boolean): Config {
  const base = loadConfig({ dataDir, env: {} });
  return { ...base, in_checkout: inCheckout, drives: { ...base.drives, ...drives } };
}

interface Ejected {
  paths: string[];
}

/**
 * A service over the fixture sysfs tree. Optical device nodes live in `devRoot` (a scratch
 * directory) so a test can put an image file where the "disc" is; udev is the recorded mock.
 */
async function fixtureService(options: {
  udev: Record<string, UdevRecording>;
  drives?: Partial<Config['drives']>;
  inCheckout?: boolean;
  discs?: Record<string, string>;
}): Promise<{ service: ReturnType<typeof createDriveService>; devRoot: string; dataDir: string; ejected: Ejected; udevCalls: string[] }> {
  const devRoot = await scratchDir('dev');
  const dataDir = await scratchDir('data');
  for (const [name, image] of Object.entries(options.discs ?? {})) await copyFile(image, join(devRoot, name));
  const recordings = Object.fromEntries(Object.entries(options.udev).map(([name, recording]) => [join(devRoot, name), recording]));
  const udev = mockUdevLayer(recordings);
  const ejected: Ejected = { paths: [] };
  const deps: DriveServiceDeps = {
    config: configWith(dataDir, { demo: 'off', ...options.drives }, options.inCheckout ?? true),
    sysfsRoot: SYSFS_FIXTURE,
    procCdromInfo: CDROM_INFO_FIXTURE,
    devRoot,
    udev,
    ejector: async (path) => {
      ejected.paths.push(path);
    },
  };
  return { service: createDriveService(deps), devRoot, dataDir, ejected, udevCalls: udev.calls };
}

describe('optical drives from the fixture sysfs tree', () => {
  test('both drives are listed with identity, capabilities and tray', async () => {
    const { service, devRoot } = await fixtureService({ udev: { sr0: 'sr0-dvd-data', sr1: 'sr1-no-media' } });
    const drives = await service.list();
    assert.deepEqual(
      drives.map((drive) => drive.id),
      ['sr0', 'sr1'],
    );
    const [sr0, sr1] = drives;
    assert.deepEqual(sr0, {
      id: 'sr0',
      path: join(devRoot, 'sr0'),
      kind: 'optical',
      vendor: 'HL-DT-ST',
      model: 'DVDRAM GH24NSD1',
      revision: 'LG00',
      capabilities: [
        'cd',
        'dvd',
        'mrw',
        'write-cd-r',
        'write-cd-rw',
        'write-dvd+r',
        'write-dvd+r-dl',
        'write-dvd+rw',
        'write-dvd-r',
        'write-dvd-ram',
        'write-dvd-rw',
        'write-mrw',
      ],
      ejectable: true,
      description: 'HL-DT-ST DVDRAM GH24NSD1',
    });
    assert.equal(sr1?.description, 'ASUS BW-16D1HT');
    assert.equal(sr1?.revision, '3.10');
    assert.deepEqual(sr1?.capabilities.slice(0, 3), ['cd', 'dvd', 'bd']);
    assert.ok(sr1?.capabilities.includes('write-bd-re'));
    assert.equal(sr1?.capabilities.includes('mrw'), false, 'sr1 reports "Can read MRW: 0" in its column');
  });

  test('probe of a DVD data disc: read from the device, media type from udev, size from the descriptor', async () => {
    const { service, devRoot, udevCalls } = await fixtureService({ udev: { sr0: 'sr0-dvd-data', sr1: 'sr1-no-media' }, discs: { sr0: iso.path } });
    const media = await service.probe('sr0');
    assert.equal(media.present, true);
    assert.equal(media.mediaType, 'dvd');
    assert.equal(media.kind, 'data');
    assert.equal(media.volumeLabel, 'SERVICE_DISC');
    assert.equal(media.deviceSizeBytes, 9180416 * 512, 'what sysfs reports');
    assert.equal(media.imageSizeBytes, iso.sizeBytes, 'what the volume descriptor says');
    assert.equal(media.logicalSectorSize, 2048);
    assert.ok(udevCalls.includes(join(devRoot, 'sr0')));
  });

  test('probe of an empty drive does not read it: a readable image at the node stays unseen', async () => {
    const { service } = await fixtureService({ udev: { sr0: 'sr0-dvd-data', sr1: 'sr1-no-media' }, discs: { sr1: iso.path } });
    const media = await service.probe('sr1');
    assert.equal(media.present, false);
    assert.deepEqual(media.fileSystems, []);
    assert.equal(media.volumeLabel, null);
  });

  test('probe of an audio CD and of a blank BD-R follows udev', async () => {
    const { service } = await fixtureService({ udev: { sr0: 'sr0-audio-cd', sr1: 'sr1-blank-bd-r' }, discs: { sr0: iso.path, sr1: iso.path } });
    const audio = await service.probe('sr0');
    assert.equal(audio.kind, 'audio');
    assert.equal(audio.mediaType, 'cd');
    const blank = await service.probe('sr1');
    assert.equal(blank.kind, 'blank');
    assert.equal(blank.mediaType, 'bd');
    assert.equal(blank.present, true);
  });

  test('unknown ids and raw paths are refused with the known ids in the message', async () => {
    const { service, devRoot } = await fixtureService({ udev: {} });
    for (const id of ['sr9', '/dev/sr0', join(devRoot, 'sr0'), 'SR0', '../sr0', 'sr0 ', '', 'a'.repeat(65)]) {
      await assert.rejects(service.get(id), (error: unknown) => {
        assert.ok(error instanceof NotFoundError, id);
        assert.equal(error.code, 'unknown_device');
        assert.match(error.message, /known devices: sr0, sr1/);
        return true;
      });
      await assert.rejects(service.probe(id), NotFoundError);
      await assert.rejects(service.eject(id), NotFoundError);
    }
  });

  test('eject of an optical drive runs the ejector on its device path', async () => {
    const { service, devRoot, ejected } = await fixtureService({ udev: {} });
    await service.eject('sr1');
    assert.deepEqual(ejected.paths, [join(devRoot, 'sr1')]);
  });

  test('without udevadm the drives are still listed, from sysfs and the cdrom table alone', async () => {
    const dataDir = await scratchDir('data');
    const service = createDriveService({
      config: configWith(dataDir, { demo: 'off' }, true),
      sysfsRoot: SYSFS_FIXTURE,
      procCdromInfo: CDROM_INFO_FIXTURE,
      udev: async () => null,
    });
    const drives = await service.list();
    assert.deepEqual(
      drives.map((drive) => [drive.id, drive.path, drive.description]),
      [
        ['sr0', '/dev/sr0', 'HL-DT-ST DVDRAM GH24NSD1'],
        ['sr1', '/dev/sr1', 'ASUS BW-16D1HT'],
      ],
    );
    assert.equal(drives[1]?.capabilities.includes('bd'), false, 'only udev knows about Blu-ray');
  });

  test('scan_optical off: no optical drives', async () => {
    const { service } = await fixtureService({ udev: {}, drives: { scan_optical: false } });
    assert.deepEqual(await service.list(), []);
  });
});

describe('demo drive', () => {
  test('auto in a checkout without optical drives: offered, its image made on first use', async () => {
    const dataDir = await scratchDir('data');
    const emptySysfs = await scratchDir('sysfs');
    const service = createDriveService({
      config: configWith(dataDir, { demo: 'auto' }, true),
      sysfsRoot: emptySysfs,
      procCdromInfo: CDROM_INFO_FIXTURE,
      udev: async () => null,
    });
    const imagePath = join(dataDir, 'demo', 'disk2iso-demo.iso');

    const drives = await service.list();
    assert.deepEqual(
      drives.map((drive) => [drive.id, drive.kind, drive.path, drive.ejectable]),
      [['demo', 'demo', imagePath, false]],
    );
    assert.match(drives[0]?.description ?? '', /demo disc/i);
    assert.match(drives[0]?.description ?? '', /image file/);
    assert.match(drives[0]?.description ?? '', /not a real drive/);
    await assert.rejects(stat(imagePath), { code: 'ENOENT' }, 'listing alone writes nothing');

    const [first, second] = await Promise.all([service.resolveDemoImage(), service.resolveDemoImage()]);
    assert.equal(first, imagePath);
    assert.equal(second, imagePath);
    const digest = await sha256File(imagePath);

    const media = await service.probe('demo');
    assert.equal(media.volumeLabel, 'DISK2ISO_DEMO');
    assert.equal(media.kind, 'data');
    assert.equal(media.imageSizeBytes, 64 * 1024 * 1024);
    assert.equal(await sha256File(imagePath), digest, 'an existing demo image is reused, not rewritten');

    await assert.rejects(service.eject('demo'), (error: unknown) => {
      assert.ok(error instanceof ConflictError);
      assert.equal(error.code, 'not_ejectable');
      assert.match(error.message, /demo disc/);
      return true;
    });
  });

  test('probe of the demo drive creates its image when nothing else did', async () => {
    const dataDir = await scratchDir('data');
    const service = createDriveService({ config: configWith(dataDir, { demo: 'on', scan_optical: false }, false), udev: async () => null });
    const media = await service.probe('demo');
    assert.equal(media.volumeLabel, 'DISK2ISO_DEMO');
    assert.ok((await stat(join(dataDir, 'demo', 'disk2iso-demo.iso'))).isFile());
  });

  test('a demo image that cannot be written is reported as unavailable, and retried on the next use', async () => {
    const dataDir = await scratchDir('data');
    await writeFile(join(dataDir, 'demo'), 'a file where the demo directory should be');
    const service = createDriveService({ config: configWith(dataDir, { demo: 'on', scan_optical: false }, true), udev: async () => null });
    await assert.rejects(service.probe('demo'), (error: unknown) => error instanceof UnavailableError && error.code === 'demo_unavailable');
    await rm(join(dataDir, 'demo'));
    assert.equal(await service.resolveDemoImage(), join(dataDir, 'demo', 'disk2iso-demo.iso'));
  });

  test('auto: not offered beside an optical drive, nor outside a checkout; on: always; off: never', async () => {
    const ids = async (demo: Config['drives']['demo'], inCheckout: boolean, sysfsRoot: string): Promise<string[]> => {
      const dataDir = await scratchDir('data');
      const service = createDriveService({
        config: configWith(dataDir, { demo }, inCheckout),
        sysfsRoot,
        procCdromInfo: CDROM_INFO_FIXTURE,
        udev: async () => null,
      });
      const listed = (await service.list()).map((drive) => drive.id);
      assert.equal(await service.resolveDemoImage().then((path) => path !== null), listed.includes('demo'));
      return listed;
    };
    const emptySysfs = await scratchDir('sysfs');
    assert.deepEqual(await ids('auto', true, SYSFS_FIXTURE), ['sr0', 'sr1']);
    assert.deepEqual(await ids('auto', false, emptySysfs), []);
    assert.deepEqual(await ids('on', true, SYSFS_FIXTURE), ['sr0', 'sr1', 'demo']);
    assert.deepEqual(await ids('off', true, emptySysfs), []);
  });
});

describe('extra sources from drives.extra', () => {
  test('a real loop device and an image file are listed and probed; unusable entries are skipped with one warning each', async () => {
    const dir = await scratchDir('extra');
    const padded = join(dir, 'padded.iso');
    await copyFile(iso.path, padded);
    await truncate(padded, iso.sizeBytes + 1024 * 1024);
    const imageFile = join(dir, 'image.iso');
    await copyFile(iso.path, imageFile);
    const missing = join(dir, 'missing.iso');
    const loop = await attachLoop(padded, { sectorSize: 2048, readOnly: true });
    try {
      const warnings: Array<{ details: Record<string, unknown>; message: string }> = [];
      const dataDir = await scratchDir('data');
      const service = createDriveService({
        config: configWith(dataDir, { demo: 'off', scan_optical: false, extra: [loop.path, imageFile, missing, dir, loop.path] }, true),
        log: { warn: (details, message) => warnings.push({ details, message }) },
        udev: async () => null,
      });

      const fileId = `file-${createHash('sha1')
        .update(await realpath(imageFile))
        .digest('hex')
        .slice(0, 10)}`;
      const drives = await service.list();
      assert.deepEqual(
        drives.map((drive) => [drive.id, drive.kind, drive.ejectable]),
        [
          [loop.name, 'block', false],
          [fileId, 'file', false],
        ],
      );
      assert.equal(drives[0]?.path, loop.path);
      assert.match(drives[0]?.description ?? '', new RegExp(`Loop device ${loop.path} \\(backing file .*padded\\.iso\\)`));
      assert.match(drives[0]?.backingFile ?? '', /padded\.iso$/, 'the pages describe a loop device by its backing file');
      assert.equal(drives[1]?.backingFile, undefined);
      assert.equal(drives[1]?.path, await realpath(imageFile));
      assert.deepEqual(
        warnings.map((warning) => warning.details['path']),
        [missing, dir],
      );

      await service.list();
      assert.equal(warnings.length, 2, 'a skipped entry is warned about once, not on every listing');

      const block = await service.probe(loop.name);
      assert.equal(block.logicalSectorSize, 2048);
      assert.equal(block.deviceSizeBytes, iso.sizeBytes + 1024 * 1024);
      assert.equal(block.imageSizeBytes, iso.sizeBytes);
      assert.equal(block.volumeLabel, 'SERVICE_DISC');

      const file = await service.probe(fileId);
      assert.equal(file.deviceSizeBytes, iso.sizeBytes);
      assert.equal(file.imageSizeBytes, iso.sizeBytes);
      assert.equal(file.logicalSectorSize, 2048);

      for (const id of [loop.name, fileId]) {
        await assert.rejects(service.eject(id), (error: unknown) => error instanceof ConflictError && error.code === 'not_ejectable');
      }
    } finally {
      await loop.detach();
    }
  });

  test('an image file that appears later is picked up by the next listing', async () => {
    const dir = await scratchDir('later');
    const later = join(dir, 'later.iso');
    const dataDir = await scratchDir('data');
    const service = createDriveService({ config: configWith(dataDir, { demo: 'off', scan_optical: false, extra: [later] }, true), udev: async () => null });
    assert.deepEqual(await service.list(), []);
    await copyFile(iso.path, later);
    const [drive] = await service.list();
    assert.equal(drive?.kind, 'file');
    assert.equal((await service.probe(drive?.id ?? '')).volumeLabel, 'SERVICE_DISC');
  });
});
