import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ArchiveRelay } from '../cluster/archive-relay.js';

/** What the client asks that the node answers: one range, and the conditions on it. */
const PASSED_ON = ['range', 'if-range', 'if-none-match', 'if-modified-since'] as const;
/** What the node's answer says about the bytes, which the client gets as the node sent it. */
const PASSED_BACK = [
  'content-type',
  'content-length',
  'content-range',
  'accept-ranges',
  'etag',
  'last-modified',
  'cache-control',
  'content-disposition',
  'content-security-policy',
  'x-content-type-options',
] as const;

/**
 * Answers a download with another node's answer for it: its status, the headers that describe the
 * bytes, and the body streamed through as the client takes it (never held here). When the client
 * goes away, the call to the node is aborted, so the node stops reading the disk.
 */
export async function relayFromNode(request: FastifyRequest, reply: FastifyReply, relay: ArchiveRelay, node: string, path: string): Promise<FastifyReply> {
  const headers: Record<string, string> = {};
  for (const name of PASSED_ON) {
    const value = request.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  const response = await relay.call(node, { method: request.method === 'HEAD' ? 'HEAD' : 'GET', path, headers, signal: controller.signal });
  reply.status(response.status);
  for (const name of PASSED_BACK) {
    const value = response.headers.get(name);
    if (value !== null) reply.header(name, value);
  }
  if (response.body === null || request.method === 'HEAD') {
    await response.body?.cancel();
    return reply.send();
  }
  // fetch's body is the web stream of node:stream/web; the DOM typing of Response names another type of the same shape.
  return reply.send(Readable.fromWeb(response.body as unknown as NodeReadableStream<Uint8Array>));
}
