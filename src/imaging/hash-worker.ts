import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

/** What the engine sends: bytes of the shared memory to hash in order, or a request for the digest. */
export type HashWorkerRequest = { type: 'update'; offset: number; length: number } | { type: 'digest' };
export type HashWorkerReply = { type: 'ack' } | { type: 'digest'; hex: string };
export interface HashWorkerData {
  algorithm: string;
  memory: SharedArrayBuffer;
}

// One worker hashes one algorithm, so two algorithms run on two cores. The data never crosses
// the thread boundary by copy: the engine posts where it lies in the shared memory.
// The worker runs at the process's own priority: MD5 is the slowest stage of a clean copy, so a
// niced worker lost the core to any other busy process and the whole copy slowed down with it.
// The event loop stays responsive without nicing: it sleeps most of the time, and the kernel's
// scheduler favours a thread waking from sleep over one that has been running.
const { algorithm, memory } = workerData as HashWorkerData;
const port = parentPort;
if (port === null) throw new Error('hash-worker must run as a worker thread');
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
