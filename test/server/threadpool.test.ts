import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packageRoot } from '../../src/config/load.js';
import { READS_IN_FLIGHT } from '../../src/imaging/rescue.js';
import { embeddedTestEnv } from '../http/client.js';

/** A drive tower (bench:scale runs five drives per worker), with room to spare. */
const DRIVES_AT_ONCE = 15;

/**
 * Every read of a drive, and every write of an image, holds one of libuv's threadpool threads for
 * as long as the drive takes: at 1x DVD speed a copy-pass read takes 0.1 s. With Node's default of
 * four threads, a process imaging five slow drives read each at half its speed (bench:scale), so
 * `bin/disk2iso` starts Node with a pool for every read in flight of many drives. The pool's size
 * is fixed when Node starts, so it is the launcher's to set, and this test starts the service as
 * systemd and `npm start` do: `bin/disk2iso` executed itself, through its first line.
 */
describe('the service started by bin/disk2iso', () => {
  let work: string;
  let service: ChildProcess | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-threadpool-'));
  });

  after(async () => {
    if (service !== undefined && service.exitCode === null && service.signalCode === null) {
      const exited = new Promise((resolve) => service?.once('close', resolve));
      service.kill('SIGTERM');
      await exited;
    }
    await rm(work, { recursive: true, force: true });
  });

  it(`has a threadpool thread for every read in flight of ${DRIVES_AT_ONCE} drives imaging at once, besides their writes`, async () => {
    const child = spawn(join(packageRoot(), 'bin', 'disk2iso'), ['serve', '--port', '0'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...embeddedTestEnv(join(work, 'data'), []) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    service = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout?.setEncoding('utf8').on('data', (text: string) => {
        output += text;
        if (output.includes('disk2iso listening on')) resolve();
      });
      child.once('close', (code) => reject(new Error(`the service ended (${code}) before it listened: ${output}`)));
    });
    // The pool starts all its threads with the first file operation, long done once the service listens.
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
    const threads = Number(/^Threads:\s+(\d+)$/m.exec(status)?.[1]);
    const needed = DRIVES_AT_ONCE * (READS_IN_FLIGHT + 1);
    assert.ok(threads >= needed, `the service runs ${threads} threads; ${DRIVES_AT_ONCE} drives need ${needed} in the pool alone`);
  });
});
