import { copyFile, open, readFile } from 'node:fs/promises';
import { DomainError } from '../../src/errors.js';
import { openImage } from '../../src/media/image-reader.js';
import { IMAGE_ERROR_CODES } from '../../src/media/image-tree.js';

/**
 * Mutation fuzzing of the image reader: a real image's metadata area (volume descriptors,
 * directories, file entries; never the bulk of file data) gets a few random bytes changed, then
 * the whole tree is walked and the start of every file read. Anything but the reader's typed
 * errors is a finding. Work per iteration is bounded by the reader's own limits, so a run is
 * bounded by its iteration count, not by a clock.
 */

interface FuzzFinding {
  iteration: number;
  error: string;
}

export interface FuzzReport {
  iterations: number;
  typedErrors: number;
  clean: number;
  findings: FuzzFinding[];
  /** Largest heap seen after an iteration, in bytes. */
  peakHeapBytes: number;
}

/** mulberry32: small, seedable, good enough to pick bytes. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

/** Walks everything and reads up to 4 KiB of each file, as the API would. */
async function exercise(imagePath: string): Promise<void> {
  const tree = await openImage(imagePath);
  try {
    for await (const entry of tree.walk('')) {
      if (entry.kind !== 'file') continue;
      for await (const _chunk of tree.stream(entry.node, 0, Math.min(entry.size, 4096) - 1)) {
        // Only whether reading throws matters.
      }
    }
  } finally {
    await tree.close();
  }
}

export async function fuzzImage(original: string, scratch: string, options: { seed: number; iterations: number; metadataBytes: number }): Promise<FuzzReport> {
  const pristine = await readFile(original);
  const area = Math.min(options.metadataBytes, pristine.length);
  await copyFile(original, scratch);
  const random = prng(options.seed);
  const report: FuzzReport = { iterations: 0, typedErrors: 0, clean: 0, findings: [], peakHeapBytes: 0 };
  const handle = await open(scratch, 'r+');
  try {
    for (let iteration = 0; iteration < options.iterations; iteration += 1) {
      const changed: number[] = [];
      const count = 1 + Math.floor(random() * 8);
      for (let index = 0; index < count; index += 1) {
        // Half the changes land in the first 64 KiB past the system area, where the descriptors and roots are.
        const position = random() < 0.5 ? 32768 + Math.floor(random() * Math.min(65536, area - 32768)) : Math.floor(random() * area);
        const value = random() < 0.3 ? ([0x00, 0xff, 0x7f, 0x80][Math.floor(random() * 4)] ?? 0) : Math.floor(random() * 256);
        await handle.write(Buffer.from([value]), 0, 1, position);
        changed.push(position);
      }
      try {
        await exercise(scratch);
        report.clean += 1;
      } catch (error) {
        if (error instanceof DomainError && IMAGE_ERROR_CODES.includes(error.code)) report.typedErrors += 1;
        else report.findings.push({ iteration, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      }
      for (const position of changed) await handle.write(pristine, position, 1, position);
      report.iterations += 1;
      report.peakHeapBytes = Math.max(report.peakHeapBytes, process.memoryUsage().heapUsed);
    }
  } finally {
    await handle.close();
  }
  return report;
}
