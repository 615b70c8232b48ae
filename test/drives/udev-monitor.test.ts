import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startUdevMonitor } from '../../src/drives/udev-monitor.js';
import { waitFor } from '../http/support.js';
import { attachLoop } from '../tools/loop.js';

describe('the udev monitor', () => {
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-udev-monitor-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('tells the device node of a loop device attached while it runs', { timeout: 60_000 }, async () => {
    const file = join(work, 'disc.img');
    await writeFile(file, Buffer.alloc(1024 * 1024));
    const seen = new Set<string>();
    const problems: string[] = [];
    const monitor = startUdevMonitor({ onDevice: (path) => seen.add(path), onProblem: (message) => problems.push(message) });
    try {
      // The monitor subscribes shortly after it starts; a device attached before that is not seen, so attach until one is.
      let loop = await attachLoop(file, { sectorSize: 512 });
      try {
        for (let attempt = 0; attempt < 20 && !seen.has(loop.path); attempt += 1) {
          await loop.detach();
          loop = await attachLoop(file, { sectorSize: 512 });
          await waitFor(`an event of ${loop.path}`, () => seen.has(loop.path), 10).catch(() => undefined);
        }
        assert.ok(seen.has(loop.path), `events seen: ${[...seen].join(', ')}`);
        assert.deepEqual(problems, []);
      } finally {
        await loop.detach();
      }
    } finally {
      monitor.stop();
    }
  });

  it('says once that it cannot run when udevadm is missing', async () => {
    const problems: string[] = [];
    const monitor = startUdevMonitor({ command: join(work, 'no-udevadm'), onDevice: () => undefined, onProblem: (message) => problems.push(message) });
    await waitFor('the problem', () => problems.length > 0);
    monitor.stop();
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /is missing/);
  });
});
