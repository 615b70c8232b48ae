import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, requireTool, run } from './exec.js';

export type LoopSectorSize = 512 | 2048 | 4096;

export interface LoopDevice {
  /** `/dev/loopN` */
  path: string;
  /** `loopN`, the name under /sys/block */
  name: string;
  /** Detaches the device; idempotent, retries briefly while the kernel reports it busy. */
  detach(): Promise<void>;
}

export interface AttachLoopOptions {
  /** Logical sector size of the device; default 2048 like an optical disc. */
  sectorSize?: LoopSectorSize;
  /** Default true: the engine must never need write access to a source. */
  readOnly?: boolean;
}

const DETACH_ATTEMPTS = 50;
const DETACH_RETRY_MS = 100;

/**
 * Attaches `file` to a free loop device. Buffered loop I/O (losetup's default, direct I/O off) is
 * what makes a FUSE-backed file work: the loop driver's reads then reach the FUSE daemon one to one.
 */
export async function attachLoop(file: string, opts: AttachLoopOptions = {}): Promise<LoopDevice> {
  const losetup = await requireTool('losetup', 'mount');
  const sectorSize = opts.sectorSize ?? 2048;
  const readOnly = opts.readOnly ?? true;
  const args = ['--find', '--show', ...(readOnly ? ['--read-only'] : []), '--sector-size', String(sectorSize), '--direct-io=off', resolve(file)];
  const { stdout } = await run(losetup, args);
  const path = stdout.trim();
  const match = /^\/dev\/(loop\d+)$/.exec(path);
  if (match?.[1] === undefined) {
    throw new Error(`losetup printed an unexpected device name: ${JSON.stringify(stdout)}`);
  }
  const name = match[1];
  let detached: Promise<void> | undefined;

  async function detachOnce(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await run(losetup, ['--detach', path]);
        return;
      } catch (error) {
        const stderr = error instanceof CommandError ? error.stderr : '';
        // Someone (an earlier detach, autoclear) already released it: the goal is reached.
        if (/No such device or address|No such device|not a loop device/i.test(stderr)) return;
        if (/busy/i.test(stderr) && attempt < DETACH_ATTEMPTS) {
          await sleep(DETACH_RETRY_MS);
          continue;
        }
        throw error;
      }
    }
  }

  return {
    path,
    name,
    detach() {
      detached ??= detachOnce().catch((error: unknown) => {
        detached = undefined;
        throw error;
      });
      return detached;
    },
  };
}
