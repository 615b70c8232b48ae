import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { canOpenTray, cdromCapabilities, parseCdromInfo, readCdromInfo } from '../../src/drives/cdrom-info.js';
import { CDROM_INFO_FIXTURE, SYSFS_FIXTURE } from './fixtures.js';

test('columns follow the "drive name" row (the kernel lists the newest drive first)', async () => {
  const info = parseCdromInfo(await readFile(CDROM_INFO_FIXTURE, 'utf8'));
  assert.deepEqual([...info.keys()], ['sr1', 'sr0']);
  assert.equal(info.get('sr0')?.get('Can read MRW'), '1');
  assert.equal(info.get('sr1')?.get('Can read MRW'), '0');
  assert.equal(info.get('sr0')?.get('drive speed'), '48');
});

test('capabilities: every listed drive reads CDs, the rest from its "Can" rows', async () => {
  const info = await readCdromInfo(CDROM_INFO_FIXTURE);
  assert.deepEqual(cdromCapabilities(info.get('sr0')), ['cd', 'dvd', 'mrw', 'write-cd-r', 'write-cd-rw', 'write-dvd-r', 'write-dvd-ram', 'write-mrw']);
  assert.deepEqual(cdromCapabilities(info.get('sr1')), ['cd', 'dvd', 'write-cd-r', 'write-cd-rw', 'write-dvd-r', 'write-dvd-ram']);
  assert.deepEqual(cdromCapabilities(info.get('sr9')), []);
});

test('tray: only an explicit "Can open tray: 0" makes a drive not ejectable', () => {
  const info = parseCdromInfo('drive name:\tsr1\tsr0\nCan open tray:\t0\t1\n');
  assert.equal(canOpenTray(info.get('sr1')), false);
  assert.equal(canOpenTray(info.get('sr0')), true);
  assert.equal(canOpenTray(undefined), true);
});

test('no cdrom driver loaded (no file): an empty table, no error', async () => {
  assert.equal((await readCdromInfo(`${SYSFS_FIXTURE}/proc/sys/dev/cdrom/missing`)).size, 0);
});
