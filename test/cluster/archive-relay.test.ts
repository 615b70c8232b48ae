import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { createArchiveRelay } from '../../src/cluster/archive-relay.js';
import { checkCall, createNodeCaller } from '../../src/cluster/node-calls.js';
import type { NodeView } from '../../src/cluster/registry.js';
import { UnavailableError } from '../../src/errors.js';
import { relayFromNode } from '../../src/http/relay.js';
import { until } from './support.js';

/**
 * The web instance's side of a download from another node, against a node that streams without
 * end: the client's Range reaches the node signed, the node's headers come back, and a client that
 * goes away ends the call to the node, so it stops reading its disk.
 */
const SECRET = 'k'.repeat(40);
const CHUNK = Buffer.alloc(64 * 1024, 7);

describe('relaying a download from another node', () => {
  let node: ReturnType<typeof createServer>;
  let nodeUrl: string;
  let web: FastifyInstance;
  let webUrl: string;
  const calls: Array<{ headers: IncomingHttpHeaders; url: string; refusal: string | null }> = [];
  let nodeStreamsClosed = 0;
  let online = true;

  before(async () => {
    node = createServer((request, response) => {
      const refusal = checkCall(SECRET, 'tower-a', { method: request.method ?? '', url: request.url ?? '', headers: request.headers }, new Date());
      calls.push({ headers: request.headers, url: request.url ?? '', refusal: refusal?.message ?? null });
      response.writeHead(206, { 'content-type': 'application/octet-stream', 'content-range': 'bytes 0-999999999/1000000000', etag: '"on-the-node"' });
      // Endless, as a very large image read at disk speed: only the client's going away ends it.
      const timer = setInterval(() => response.write(CHUNK), 5);
      response.on('close', () => {
        clearInterval(timer);
        nodeStreamsClosed += 1;
      });
    });
    await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve));
    nodeUrl = `http://127.0.0.1:${(node.address() as AddressInfo).port}`;
    const view = (): NodeView => ({
      id: 'tower-a',
      role: 'worker',
      version: 'test',
      hostname: 'tower-a',
      pid: 1,
      startedAt: new Date().toISOString(),
      heartbeatAt: new Date().toISOString(),
      internalUrl: nodeUrl,
      drives: [],
      online,
      heartbeatAgeSeconds: 0,
      versionMismatch: false,
      self: false,
    });
    const relay = createArchiveRelay({
      placement: { node: 'front', shared: false },
      holderOf: async () => 'tower-a',
      callNode: createNodeCaller({ secret: () => SECRET, nodes: async () => [view()], clock: () => new Date() }),
    });
    web = Fastify();
    web.get('/download', async (request, reply) => relayFromNode(request, reply, relay, 'tower-a', '/internal/v1/archives/archive_1/image'));
    // The service maps its error classes to statuses in src/http/errors.ts; here only the one this test provokes.
    web.setErrorHandler(async (error, _request, reply) =>
      error instanceof UnavailableError ? reply.status(503).send({ code: error.code }) : reply.status(500).send({ code: 'internal_error' }),
    );
    webUrl = await web.listen({ port: 0, host: '127.0.0.1' });
    assert.equal(await relay.remoteHolder('archive_1'), 'tower-a');
  });

  after(async () => {
    await web?.close();
    node?.closeAllConnections();
    await new Promise((resolve) => node?.close(resolve));
  });

  it('passes the Range on signed, the node’s headers back, and ends the node’s stream when the client goes away', async () => {
    const received = await new Promise<{ status: number; headers: IncomingHttpHeaders; bytes: number }>((resolve, reject) => {
      const request = get(`${webUrl}/download`, { headers: { range: 'bytes=0-', 'if-range': '"on-the-node"' } }, (response) => {
        let bytes = 0;
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          // A few chunks in, the client gives up.
          if (bytes >= CHUNK.length * 4) {
            request.destroy();
            resolve({ status: response.statusCode ?? 0, headers: response.headers, bytes });
          }
        });
      });
      request.on('error', (error) => {
        if (!request.destroyed) reject(error);
      });
    });
    assert.equal(received.status, 206);
    assert.equal(received.headers['content-range'], 'bytes 0-999999999/1000000000');
    assert.equal(received.headers.etag, '"on-the-node"');
    const [call] = calls;
    assert.ok(call);
    assert.equal(call.refusal, null, 'the call is signed for the node');
    assert.equal(call.url, '/internal/v1/archives/archive_1/image');
    assert.equal(call.headers.range, 'bytes=0-');
    assert.equal(call.headers['if-range'], '"on-the-node"');
    await until(() => nodeStreamsClosed === 1, 'the node’s stream to end after the client went away');
  });

  it('answers 503 naming the node once the node is offline, without calling it', async () => {
    online = false;
    const before = calls.length;
    const answer = await fetch(`${webUrl}/download`);
    assert.equal(answer.status, 503);
    assert.deepEqual(await answer.json(), { code: 'node_offline' });
    assert.equal(calls.length, before);
  });
});
