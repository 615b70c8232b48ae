import { randomBytes } from 'node:crypto';
import { open, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createFlights, createSlots } from '../drives/flights.js';
import { UnavailableError, errnoCode } from '../errors.js';
import { type StorageUsage, storageUsage } from './resources.js';

interface OutputUsage extends StorageUsage {
  /** Used / (used + free), as the imaging engine compares it with storage.stop_threshold_percent. */
  usedPercent: number;
}

/**
 * The output directory as health checks and metrics see it. A hung mount (NFS, a USB disk pulled)
 * would hold a libuv threadpool thread for every call that touches it, and the service has four:
 * so one call at a time touches it, later callers join the one in flight, and every caller waits
 * at most `timeoutMs` (then `output_not_responding`) while the call goes on in the background.
 */
export interface OutputProbe {
  usage(): Promise<OutputUsage>;
  /**
   * Creates a file in the directory and removes it again. A directory not made yet (the first job
   * makes it) is checked at its nearest existing parent, where that job would create it.
   */
  checkWritable(): Promise<void>;
}

/** Long enough for a slow disk to spin up, short enough for a monitoring probe's own timeout. */
const DEFAULT_TIMEOUT_MS = 5000;

export function createOutputProbe(outputDir: () => string, timeoutMs = DEFAULT_TIMEOUT_MS): OutputProbe {
  const flights = createFlights<unknown>(createSlots(1));
  const notResponding = (): Error =>
    new UnavailableError('output_not_responding', `the output directory ${outputDir()} did not answer within ${timeoutMs / 1000} s`);

  return {
    async usage() {
      const usage = (await flights.run('usage', () => storageUsage(outputDir()), timeoutMs, notResponding)) as StorageUsage;
      const usable = usage.usedBytes + usage.freeBytes;
      // A file system that reports no size (ramfs, some FUSE) has nothing to compare, as for the engine.
      return { ...usage, usedPercent: usage.totalBytes === 0 ? 0 : usable === 0 ? 100 : (usage.usedBytes / usable) * 100 };
    },
    async checkWritable() {
      await flights.run(
        'write',
        async () => {
          const dir = await nearestExisting(outputDir());
          const probe = join(dir, `.disk2iso-ready-${process.pid}-${randomBytes(6).toString('hex')}`);
          await (await open(probe, 'wx', 0o600)).close();
          await rm(probe, { force: true });
        },
        timeoutMs,
        notResponding,
      );
    },
  };
}

async function nearestExisting(path: string): Promise<string> {
  for (let current = path; ; current = dirname(current)) {
    try {
      await stat(current);
      return current;
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT' || dirname(current) === current) throw error;
    }
  }
}
