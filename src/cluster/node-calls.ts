import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import { type DomainError, UnauthenticatedError, UnavailableError, errorMessage } from '../errors.js';
import type { NodeView } from './registry.js';

/**
 * Calls between the nodes of a cluster: a web instance asking the worker that holds an image for
 * it. Each call is signed with the cluster's shared key (cluster.secret): an HMAC-SHA256 over the
 * method, the node called, the path with its query, and an expiry a few seconds ahead. A node
 * answers only calls signed for it, before their expiry, with the same key; the internal routes
 * exist only while a key is set.
 */

/** The headers a signed call carries. */
const SIGNATURE_HEADERS = { expires: 'x-disk2iso-expires', signature: 'x-disk2iso-signature' } as const;
/**
 * How long a signature holds: long enough for a request to reach a node on the same network, short enough that one read from a log is useless.
 * @internal exported for its tests
 */
export const SIGNATURE_TTL_SECONDS = 30;
/** How far apart two nodes' clocks may be; an expiry further ahead than the lifetime and this is refused. */
const CLOCK_SKEW_SECONDS = 30;
/** How long a node may take to start answering (the body then streams as long as it takes). */
const ANSWER_TIMEOUT_MS = 15_000;

interface SignedCall {
  method: string;
  /** The node called (cluster.node_name): a signature for one node does not open another. */
  node: string;
  /** The path with its query string, exactly as sent. */
  path: string;
  /** Unix seconds. */
  expires: number;
}

function signatureOf(secret: string, call: SignedCall): Buffer {
  return createHmac('sha256', secret).update(`${call.method.toUpperCase()}\n${call.node}\n${call.path}\n${call.expires}`).digest();
}

/**
 * The headers that sign a call made now.
 * @internal exported for its tests
 */
export function signCall(secret: string, call: Omit<SignedCall, 'expires'>, now: Date): Record<string, string> {
  const expires = Math.floor(now.getTime() / 1000) + SIGNATURE_TTL_SECONDS;
  return { [SIGNATURE_HEADERS.expires]: String(expires), [SIGNATURE_HEADERS.signature]: signatureOf(secret, { ...call, expires }).toString('hex') };
}

/** The parts of a request a signature is checked against. */
interface ReceivedCall {
  method: string;
  /** The path with its query string, as received. */
  url: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

const refused = (reason: string): UnauthenticatedError =>
  new UnauthenticatedError('node_signature_invalid', `the call between nodes is refused: ${reason}`, { reason });

/**
 * Null when the call carries a valid signature for `node` under `secret`, else the error to answer
 * with. An empty secret accepts nothing. The comparison takes the same time wherever the signatures differ.
 */
export function checkCall(secret: string, node: string, call: ReceivedCall, now: Date): DomainError | null {
  if (secret === '') return refused('this node has no cluster.secret');
  const expiresHeader = call.headers[SIGNATURE_HEADERS.expires];
  const signatureHeader = call.headers[SIGNATURE_HEADERS.signature];
  if (typeof expiresHeader !== 'string' || typeof signatureHeader !== 'string') return refused('no signature');
  if (!/^\d{1,12}$/.test(expiresHeader) || !/^[0-9a-f]{64}$/.test(signatureHeader)) return refused('a malformed signature');
  const expires = Number(expiresHeader);
  const nowSeconds = now.getTime() / 1000;
  if (expires < nowSeconds) return refused('the signature has expired');
  if (expires > nowSeconds + SIGNATURE_TTL_SECONDS + CLOCK_SKEW_SECONDS) return refused('the signature holds for too long');
  const expected = signatureOf(secret, { method: call.method, node, path: call.url, expires });
  if (!timingSafeEqual(expected, Buffer.from(signatureHeader, 'hex'))) return refused('a wrong signature');
  return null;
}

export interface NodeCallerDeps {
  /** cluster.secret, read at each call. */
  secret: () => string;
  nodes: () => Promise<NodeView[]>;
  clock: Clock;
  fetch?: typeof fetch;
}

export interface NodeCall {
  method: 'GET' | 'HEAD';
  /** A path of the node's internal routes, with its query. */
  path: string;
  /** Request headers passed on (Range, conditional headers). */
  headers?: Record<string, string>;
  /** Aborts the call, also while its body streams (the client went away). */
  signal?: AbortSignal;
}

/** Makes signed calls to another node: 503 `node_offline` or `node_unreachable` naming the node when it cannot answer. */
export function createNodeCaller(deps: NodeCallerDeps) {
  const send = deps.fetch ?? fetch;
  return async function callNode(nodeId: string, call: NodeCall): Promise<Response> {
    const secret = deps.secret();
    if (secret === '') {
      throw new UnavailableError('cluster_secret_missing', `the image lies on node ${nodeId}, and this node has no cluster.secret to ask it with`, {
        node: nodeId,
      });
    }
    const node = (await deps.nodes()).find((candidate) => candidate.id === nodeId);
    if (node === undefined || !node.online) {
      throw new UnavailableError('node_offline', `node ${nodeId}, which holds the image, is offline`, { node: nodeId });
    }
    if (node.internalUrl === null) {
      throw new UnavailableError('node_unreachable', `node ${nodeId} has no internal endpoint (it runs without cluster.secret)`, { node: nodeId });
    }
    // Its address stays out of the answer: users are told which node, the operator knows where it runs.
    const unreachable = (reason: string) => new UnavailableError('node_unreachable', `node ${nodeId} does not answer: ${reason}`, { node: nodeId });
    // The timeout covers the wait for the answer only: the body of a large image streams as long as the client reads.
    const controller = new AbortController();
    const abort = () => controller.abort();
    if (call.signal?.aborted) abort();
    call.signal?.addEventListener('abort', abort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort();
    }, ANSWER_TIMEOUT_MS);
    let response: Response;
    try {
      response = await send(`${node.internalUrl}${call.path}`, {
        method: call.method,
        // Bytes as they are on disk: a compressed answer would break ranges and lengths.
        headers: { ...call.headers, 'accept-encoding': 'identity', ...signCall(secret, { method: call.method, node: nodeId, path: call.path }, deps.clock()) },
        redirect: 'error',
        signal: controller.signal,
      });
    } catch (error) {
      call.signal?.removeEventListener('abort', abort);
      throw unreachable(timedOut ? `no answer within ${ANSWER_TIMEOUT_MS / 1000} s` : errorMessage(error));
    } finally {
      clearTimeout(timer);
    }
    if (response.status === 401) {
      await response.body?.cancel();
      throw unreachable('it refused the signature (is cluster.secret the same on every node?)');
    }
    return response;
  };
}

export type CallNode = ReturnType<typeof createNodeCaller>;
