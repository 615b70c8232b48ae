import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { type App, buildApp } from '../../src/http/app.js';
import { silentLogger } from '../../src/log.js';
import { TEST_PASSWORD, type TestServer, startTestServer } from './support.js';

/** Forged by a client that is no proxy: none of it may count. */
const FORGED = { 'x-forwarded-for': '203.0.113.66', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'forged.example' };

interface Seen {
  ip: string | undefined;
  protocol: string;
  host: string;
}

/**
 * An app with one route that looks at the request's client only after the client has hung up. It is
 * a static asset's path, which the rate limiter skips, so nothing has read the peer's address before
 * the connection closed (as for the HSTS decision on an asset whose client left meanwhile).
 */
async function appReportingAfterHangUp(onUnixSocket: boolean): Promise<{ app: App; seen: Promise<Seen> }> {
  let report: (seen: Seen) => void = () => undefined;
  const seen = new Promise<Seen>((resolve) => {
    report = resolve;
  });
  const { app } = await buildApp({
    version: 'test',
    logger: silentLogger(),
    onUnixSocket,
    routes: [
      (scope) => {
        scope.get('/static/peer', async (request) => {
          const socket = request.raw.socket;
          if (!socket.destroyed) await once(socket, 'close');
          report({ ip: request.ip, protocol: request.protocol, host: request.host });
          return {};
        });
      },
    ],
  });
  return { app, seen };
}

/** Sends one request with the forged headers and hangs up at once, without waiting for the answer. */
async function askAndHangUp(target: { port: number } | { path: string }): Promise<void> {
  const socket = connect({ ...target, ...('port' in target ? { host: '127.0.0.1' } : {}) });
  await once(socket, 'connect');
  const forged = Object.entries(FORGED).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.end(`GET /static/peer HTTP/1.1\r\nhost: service.local\r\n${forged.join('')}\r\n`);
  socket.resume();
  await once(socket, 'close');
}

/** Logs in over plain HTTP from `localAddress`; the Set-Cookie answer and the session's recorded address. */
function loginFrom(
  service: TestServer,
  localAddress: string,
  headers: Record<string, string>,
): Promise<{ status: number; setCookie: string; hsts: string | undefined }> {
  const { port } = new URL(service.url);
  const body = JSON.stringify({ username: 'dora', password: TEST_PASSWORD });
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: '127.0.0.1', port, localAddress, method: 'POST', path: '/api/v1/auth/login', headers: { 'content-type': 'application/json', ...headers } },
      (response) => {
        response.resume();
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            setCookie: (response.headers['set-cookie'] ?? []).join('\n'),
            hsts: response.headers['strict-transport-security'],
          }),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

describe('whose X-Forwarded-* headers the service believes', () => {
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-proxy-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  describe('on TCP, with the proxy listed at 127.0.0.2', () => {
    let service: TestServer;
    before(async () => {
      service = await startTestServer({ env: { DISK2ISO_SECURITY_TRUSTED_PROXIES: '127.0.0.2' } });
      await service.server.auth.users.add({ name: 'dora', role: 'viewer', password: TEST_PASSWORD }, localActor('test'));
    });
    after(async () => {
      await service?.close();
    });

    it('ignores them from a client that connects directly, and believes the listed proxy', async () => {
      const direct = await loginFrom(service, '127.0.0.1', FORGED);
      assert.equal(direct.status, 200);
      assert.doesNotMatch(direct.setCookie, /; Secure/, 'a direct client saying https gets no Secure cookie');
      assert.equal(direct.hsts, undefined, 'nor HSTS');
      const proxied = await loginFrom(service, '127.0.0.2', FORGED);
      assert.equal(proxied.status, 200);
      assert.match(proxied.setCookie, /; Secure/, 'the proxy said https');

      const logins = await service.server.auth.audit.list({ eventType: 'authentication', action: 'login_success', user: 'dora', order: 'asc' });
      assert.deepEqual(
        logins.items.map((entry) => entry.ip_address),
        ['127.0.0.1', '203.0.113.66'],
        'the direct client by its own address, the proxy by the client it names',
      );
    });

    it('ignores them from a client that hung up before its request was handled', async () => {
      const { app, seen } = await appReportingAfterHangUp(false);
      try {
        await app.listen({ host: '127.0.0.1', port: 0 });
        const address = app.server.address();
        assert.ok(address !== null && typeof address === 'object');
        await askAndHangUp({ port: address.port });
        assert.deepEqual(await seen, { ip: '127.0.0.1', protocol: 'http', host: 'service.local' });
      } finally {
        await app.close();
      }
    });
  });

  it('believes them on the unix socket, whose only peer is the proxy', async () => {
    const { app, seen } = await appReportingAfterHangUp(true);
    try {
      const path = join(work, 'service.sock');
      await app.listen({ path });
      await askAndHangUp({ path });
      assert.deepEqual(await seen, { ip: '203.0.113.66', protocol: 'https', host: 'forged.example' });
    } finally {
      await app.close();
    }
  });
});
