import { createHash } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';

/** What the engine sends: bytes of the shared memory to hash in order, or a request for the digest. */
export type HashWorkerRequest = { type: 'update'; offset: number; length: number } | { type: 'digest' };
export type HashWorkerReply = { type: 'ack' } | { type: 'digest'; hex: string };
export interface HashWorkerData {
  algorithm: string;
  memory: SharedArrayBuffer;
}

/** How much nicer than the rest of the process a hash worker runs. */
const NICE_INCREMENT = 5;

/**
 * Hashing takes most of the CPU of a run. Below the event loop's priority it takes only what is
 * left, so the loop (progress, the next read, the next write) never waits behind it. On Linux,
 * setpriority() with a thread id renices just that thread; /proc/thread-self names the thread.
 */
function lowerOwnPriority(): void {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop());
    setPriority(threadId, Math.min(19, getPriority(threadId) + NICE_INCREMENT));
  } catch {
    // Not Linux, or not permitted: hashing at the normal priority is still correct.
  }
}

// One worker hashes one algorithm, so two algorithms run on two cores. The data never crosses
// the thread boundary by copy: the engine posts where it lies in the shared memory.
const { algorithm, memory } = workerData as HashWorkerData;
const port = parentPort;
if (port === null) throw new Error('hash-worker must run as a worker thread');
lowerOwnPriority();
let hash = createHash(algorithm);

port.on('message', (request: HashWorkerRequest) => {
  if (request.type === 'update') {
    hash.update(new Uint8Array(memory, request.offset, request.length));
    port.postMessage({ type: 'ack' } satisfies HashWorkerReply);
    return;
  }
  port.postMessage({ type: 'digest', hex: hash.digest('hex') } satisfies HashWorkerReply);
  hash = createHash(algorithm);
});
