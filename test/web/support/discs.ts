import { type ByteRange, type FaultFs, mountFaultFs } from '../../tools/faultfs.js';
import { type MadeIso, makeIso } from '../../tools/iso.js';
import { type LoopDevice, attachLoop } from '../../tools/loop.js';

/** A disc in a drive for the tests: an ISO behind a loop device, optionally slow or with bad sectors (faultfs). */
export interface TestDisc {
  iso: MadeIso;
  loop: LoopDevice;
  /** Present when the disc was made slow or faulty; lets a test change the speed while a job runs. */
  faults: FaultFs | null;
  release(): Promise<void>;
}

export interface TestDiscOptions {
  dir: string;
  label: string;
  dataMiB?: number;
  seed?: number;
  /** Delay per read in milliseconds: a slow drive whose progress can be watched. */
  delayMs?: number;
  badRanges?: ByteRange[];
}

export async function insertTestDisc(options: TestDiscOptions): Promise<TestDisc> {
  const iso = await makeIso({ dir: options.dir, label: options.label, dataMiB: options.dataMiB ?? 4, files: 3, seed: options.seed ?? 1 });
  const faulty = options.delayMs !== undefined || options.badRanges !== undefined;
  const faults = faulty ? await mountFaultFs({ backingFile: iso.path, delayMs: options.delayMs ?? 0, badRanges: options.badRanges ?? [] }) : null;
  let loop: LoopDevice;
  try {
    loop = await attachLoop(faults?.file ?? iso.path, { sectorSize: 2048 });
  } catch (error) {
    await faults?.unmount();
    throw error;
  }
  return {
    iso,
    loop,
    faults,
    async release() {
      try {
        await loop.detach();
      } finally {
        await faults?.unmount();
      }
    },
  };
}
