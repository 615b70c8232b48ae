import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

// Node has WebAssembly at run time; the project's lib setting (ES2023, no DOM) declares no types for it.
declare const WebAssembly: {
  Memory: new (descriptor: { initial: number; maximum?: number }) => { readonly buffer: ArrayBuffer };
};

const WASM_PAGE_BYTES = 64 * 1024;

/**
 * A zero-filled buffer whose address is aligned to 64 KiB, as O_DIRECT needs. WebAssembly
 * memory is mapped page-aligned by the engine, unlike Buffer.alloc, which gives no guarantee.
 */
export function alignedBuffer(length: number): Buffer {
  const pages = Math.max(1, Math.ceil(length / WASM_PAGE_BYTES));
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  return Buffer.from(memory.buffer, 0, length);
}

/**
 * Reads `length` bytes at `position` with O_DIRECT (bypassing the page cache, so errors of the
 * device reach the caller). Offsets and lengths must be multiples of the device's logical
 * sector size. Returns fewer bytes only at the end of the device; rejects with the read's errno.
 */
export async function readDirect(path: string, position: number, length: number): Promise<Buffer> {
  const buffer = alignedBuffer(length);
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECT);
  try {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return Buffer.from(buffer.subarray(0, done));
  } finally {
    await handle.close();
  }
}
