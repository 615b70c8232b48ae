import { Worker } from 'node:worker_threads';
import type { HashAlgorithm } from '../config/schema.js';
import { UnavailableError, errnoCode, errorMessage } from '../errors.js';
import type { HashWorkerData, HashWorkerReply, HashWorkerRequest } from './hash-worker.js';
import type { Slot, SlotPool } from './slots.js';
import { type DirectIoMode, openSource } from './source.js';
import type { ReadThrottle } from './throttle.js';

export type Digests = Partial<Record<HashAlgorithm, string>>;

/** Hashes data in worker threads, one per algorithm, fed in order from shared-memory slots. */
export interface Hashers {
  readonly algorithms: readonly HashAlgorithm[];
  /** Bytes fed so far. */
  readonly bytes: number;
  /**
   * Queues `length` bytes at `start` within `slot` for every algorithm. The slot is retained until
   * every worker has hashed them, so the caller may release its own reference right away.
   */
  update(slot: Slot, start: number, length: number): void;
  /** Waits for everything queued and returns the digests (hex), then starts over from zero bytes. */
  digest(): Promise<Digests>;
  /** Why a worker broke, if one did; its queued slots have been released. */
  failure(): Error | undefined;
  close(): Promise<void>;
}

interface HashWorker {
  algorithm: HashAlgorithm;
  worker: Worker;
  /** Slots posted and not yet acknowledged, in posting order (a worker answers in order). */
  queued: Slot[];
  digestWaiters: Array<{ resolve: (hex: string) => void; reject: (error: Error) => void }>;
}

export function createHashers(algorithms: readonly HashAlgorithm[], slots: SlotPool): Hashers {
  let failure: Error | undefined;
  let bytes = 0;
  let closing = false;

  function fail(hashWorker: HashWorker, error: Error): void {
    failure ??= new UnavailableError('hash_failed', `${hashWorker.algorithm} worker failed: ${error.message}`);
    for (const slot of hashWorker.queued.splice(0)) slot.release();
    for (const waiter of hashWorker.digestWaiters.splice(0)) waiter.reject(failure);
  }

  const workers: HashWorker[] = algorithms.map((algorithm) => {
    const data: HashWorkerData = { algorithm, memory: slots.buffer };
    const hashWorker: HashWorker = {
      algorithm,
      worker: new Worker(new URL('./hash-worker.js', import.meta.url), { workerData: data }),
      queued: [],
      digestWaiters: [],
    };
    hashWorker.worker.on('message', (reply: HashWorkerReply) => {
      if (reply.type === 'ack') hashWorker.queued.shift()?.release();
      else hashWorker.digestWaiters.shift()?.resolve(reply.hex);
    });
    hashWorker.worker.on('error', (error) => fail(hashWorker, error));
    hashWorker.worker.on('exit', (code) => {
      if (!closing) fail(hashWorker, new Error(`exited with code ${code}`));
    });
    return hashWorker;
  });

  function post(hashWorker: HashWorker, request: HashWorkerRequest): void {
    hashWorker.worker.postMessage(request);
  }

  return {
    algorithms,
    get bytes() {
      return bytes;
    },
    update(slot, start, length) {
      if (failure !== undefined) throw failure;
      for (const hashWorker of workers) {
        slot.retain();
        hashWorker.queued.push(slot);
        post(hashWorker, { type: 'update', offset: slot.offset + start, length });
      }
      bytes += length;
    },
    async digest() {
      if (failure !== undefined) throw failure;
      const hexes = await Promise.all(
        workers.map(
          (hashWorker) =>
            new Promise<string>((resolve, reject) => {
              hashWorker.digestWaiters.push({ resolve, reject });
              post(hashWorker, { type: 'digest' });
            }),
        ),
      );
      bytes = 0;
      const digests: Digests = {};
      for (const [index, hashWorker] of workers.entries()) digests[hashWorker.algorithm] = hexes[index];
      return digests;
    },
    failure: () => failure,
    async close() {
      closing = true;
      await Promise.all(workers.map((hashWorker) => hashWorker.worker.terminate()));
      for (const hashWorker of workers) for (const slot of hashWorker.queued.splice(0)) slot.release();
    },
  };
}

/** Where the direct-I/O alignment of a file read is satisfied on every Linux file system. */
const FILE_ALIGNMENT = 4096;

export interface HashFileOptions {
  path: string;
  /** First byte to feed; must be a multiple of 4096 unless directIo is `off`. */
  start: number;
  /** End of the range to feed (the file must be at least this long). */
  end: number;
  directIo: DirectIoMode;
  hashers: Hashers;
  slots: SlotPool;
  signal?: AbortSignal | undefined;
  /** Called after each chunk with the position reached. */
  onPosition?: (position: number) => void;
  onFallback?: (reason: string) => void;
  /** Holds each read back to a bandwidth cap (scheduled re-verification). */
  throttle?: ReadThrottle | undefined;
}

/**
 * Reads [start, end) of a file sequentially into slots and feeds it to the hashers. Returns false
 * when the signal stopped it early. Read errors become UnavailableError `image_unreadable`.
 */
export async function hashFile(options: HashFileOptions): Promise<boolean> {
  const { path, start, end, hashers, slots, signal } = options;
  const chunk = Math.floor(slots.slotBytes / FILE_ALIGNMENT) * FILE_ALIGNMENT;
  if (chunk === 0) throw new RangeError(`slots of ${slots.slotBytes} bytes are too small to read files`);
  if (options.directIo !== 'off' && start % FILE_ALIGNMENT !== 0) throw new RangeError(`direct reads need an aligned start, got ${start}`);
  const probeSlot = await slots.acquire();
  let source;
  try {
    source = await openSource(path, {
      directIo: options.directIo,
      probe: probeSlot.view.subarray(0, FILE_ALIGNMENT),
      ...(options.onFallback ? { onFallback: options.onFallback } : {}),
    });
  } catch (error) {
    throw new UnavailableError('image_unreadable', errorMessage(error), { path });
  } finally {
    probeSlot.release();
  }
  try {
    let position = start;
    while (position < end) {
      if (signal?.aborted) return false;
      const failure = hashers.failure();
      if (failure !== undefined) throw failure;
      const length = Math.min(chunk, end - position);
      if (options.throttle !== undefined) {
        await options.throttle.take(length, signal);
        if (signal?.aborted) return false;
      }
      const slot = await slots.acquire();
      try {
        // Direct reads need an aligned length; the file simply ends inside the last one.
        const request = source.buffered ? length : Math.ceil(length / FILE_ALIGNMENT) * FILE_ALIGNMENT;
        let filled = 0;
        while (filled < length) {
          const bytesRead = await source.read(slot.view.subarray(filled, request), position + filled).catch((error: unknown) => {
            throw new UnavailableError('image_unreadable', `cannot read ${path} at byte ${position + filled}: ${errorMessage(error)}`, {
              path,
              errno: errnoCode(error),
            });
          });
          if (bytesRead === 0) throw new UnavailableError('image_unreadable', `${path} ends at byte ${position + filled}, expected ${end}`, { path });
          filled += bytesRead;
        }
        hashers.update(slot, 0, length);
        position += length;
      } finally {
        slot.release();
      }
      options.onPosition?.(position);
    }
    return true;
  } finally {
    await source.close();
  }
}
