import assert from 'node:assert/strict';
import { mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCpuMeter, memoryUsage, storageUsage } from '../../src/system/resources.js';

describe('resource figures for the system status', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-resources-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('takes memory from a cgroup v2 limit, not counting reclaimable file cache', async () => {
    const cgroup = await mkdtemp(join(work, 'cgroup-'));
    await writeFile(join(cgroup, 'memory.max'), '2147483648\n');
    await writeFile(join(cgroup, 'memory.current'), '600000000\n');
    await writeFile(join(cgroup, 'memory.stat'), 'anon 400000000\nfile 200000000\nactive_file 100000000\ninactive_file 100000000\n');
    const usage = await memoryUsage({ cgroupRoot: cgroup, meminfo: join(work, 'no-meminfo') });
    assert.deepEqual(usage, { usedBytes: 500_000_000, totalBytes: Math.min(2_147_483_648, totalmem()), source: 'cgroup' });
  });

  it('falls back to the machine when the cgroup has no limit', async () => {
    const cgroup = await mkdtemp(join(work, 'cgroup-'));
    await writeFile(join(cgroup, 'memory.max'), 'max\n');
    await writeFile(join(cgroup, 'memory.current'), '600000000\n');
    const meminfo = join(work, 'meminfo');
    await writeFile(meminfo, 'MemTotal:        2048000 kB\nMemFree:          100000 kB\nMemAvailable:    1024000 kB\n');
    assert.deepEqual(await memoryUsage({ cgroupRoot: cgroup, meminfo }), { usedBytes: 1_048_576_000, totalBytes: 2_097_152_000, source: 'host' });
  });

  it('reads this machine sensibly', async () => {
    const usage = await memoryUsage();
    assert.ok(usage.totalBytes > 0 && usage.usedBytes > 0 && usage.usedBytes <= usage.totalBytes, JSON.stringify(usage));
  });

  it('measures storage of a directory not created yet at its nearest existing parent', async () => {
    const usage = await storageUsage(join(work, 'not', 'yet', 'there'));
    const fs = await statfs(work);
    assert.equal(usage.totalBytes, fs.blocks * fs.bsize);
    assert.ok(usage.usedBytes > 0 && usage.usedBytes <= usage.totalBytes);
    assert.ok(usage.freeBytes >= 0 && usage.freeBytes <= usage.totalBytes - usage.usedBytes);
  });

  it('reports CPU use between calls as percentages', () => {
    const meter = createCpuMeter();
    const start = process.hrtime.bigint();
    let spin = 0;
    while (process.hrtime.bigint() - start < 1_100_000_000n) spin += 1;
    const usage = meter();
    assert.ok(spin > 0);
    assert.ok(usage.processPercent > 0 && usage.processPercent <= 100, JSON.stringify(usage));
    assert.ok(usage.systemPercent > 0 && usage.systemPercent <= 100, JSON.stringify(usage));
    assert.deepEqual(meter(), usage, 'a call within a second repeats the last figure');
  });
});
