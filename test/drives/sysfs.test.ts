import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listOpticalNames, readBlockGeometry, readLoopBackingFile, readScsiIdentity } from '../../src/drives/sysfs.js';
import { SYSFS_FIXTURE } from './fixtures.js';

test('optical drives are the sr* block devices, in numeric order', async () => {
  assert.deepEqual(await listOpticalNames(SYSFS_FIXTURE), ['sr0', 'sr1']);
  assert.deepEqual(await listOpticalNames(`${SYSFS_FIXTURE}/no-such-root`), []);
});

test('SCSI identity strings are read through the device link and trimmed', async () => {
  assert.deepEqual(await readScsiIdentity(SYSFS_FIXTURE, 'sr0'), { vendor: 'HL-DT-ST', model: 'DVDRAM GH24NSD1', revision: 'LG00' });
  assert.deepEqual(await readScsiIdentity(SYSFS_FIXTURE, 'sr1'), { vendor: 'ASUS', model: 'BW-16D1HT', revision: '3.10' });
  assert.deepEqual(await readScsiIdentity(SYSFS_FIXTURE, 'loop5'), { vendor: null, model: null, revision: null });
});

test('geometry: size in 512-byte units whatever the sector size; a partition uses its disk queue', async () => {
  assert.deepEqual(await readBlockGeometry(SYSFS_FIXTURE, 'sr0'), { sizeBytes: 9180416 * 512, logicalBlockSize: 2048 });
  assert.deepEqual(await readBlockGeometry(SYSFS_FIXTURE, 'sr1'), { sizeBytes: 0, logicalBlockSize: 2048 });
  assert.deepEqual(await readBlockGeometry(SYSFS_FIXTURE, 'loop5'), { sizeBytes: 1024 * 1024, logicalBlockSize: 2048 });
  assert.deepEqual(await readBlockGeometry(SYSFS_FIXTURE, 'sda1'), { sizeBytes: 1048576 * 512, logicalBlockSize: 4096 });
  assert.deepEqual(await readBlockGeometry(SYSFS_FIXTURE, 'sr7'), { sizeBytes: null, logicalBlockSize: null });
});

test('a loop device names its backing file', async () => {
  assert.equal(await readLoopBackingFile(SYSFS_FIXTURE, 'loop5'), '/srv/images/test-disc.iso');
  assert.equal(await readLoopBackingFile(SYSFS_FIXTURE, 'sr0'), null);
});
