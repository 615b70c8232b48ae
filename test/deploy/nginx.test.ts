import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type IncomingHttpHeaders, type IncomingMessage, request as httpRequest } from 'node:http';
import { type ClientHttp2Session, connect as connectHttp2 } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as connectTls } from 'node:tls';
import WebSocket from 'ws';
import { localActor } from '../../src/auth/principal.js';
import { CONTENT_SECURITY_POLICY } from '../../src/http/security-headers.js';
import { TEST_PASSWORD, type TestServer, startTestServer, waitFor } from '../http/support.js';
import { type Certificates, NGINX_SITE, acceptsTls, makeCertificates, renderShipped } from '../support/nginx-site.js';
import { NGINX_HTTP_PART, type NginxProcess, freePorts, startNginx } from '../support/nginx-upstream.js';
import { run } from '../tools/exec.js';
import { type MadeIso, makeIso } from '../tools/iso.js';

const HSTS = 'max-age=31536000; includeSubDomains';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** Name, value, name, value … as received: duplicates show here. */
  rawHeaders: string[];
  body: Buffer;
}

function collect(response: IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('error', reject);
    response.on('end', () =>
      resolve({ status: response.statusCode ?? 0, headers: response.headers, rawHeaders: response.rawHeaders, body: Buffer.concat(chunks) }),
    );
  });
}

/** How often a header arrived (case-insensitive). */
function headerCount(answer: Answer, name: string): number {
  return answer.rawHeaders.filter((value, index) => index % 2 === 0 && value.toLowerCase() === name).length;
}

describe('nginx in front of the service (deploy/nginx)', () => {
  let work: string;
  let iso: MadeIso;
  let certificates: Certificates;
  let service: TestServer;
  let nginx: NginxProcess | undefined;
  let httpsPort: number;
  let httpPort: number;
  let origin: string;
  let archiveId: string;

  /** One HTTPS (HTTP/1.1) request through nginx, trusting only the test CA. */
  function send(path: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const request = httpsRequest(
        { host: '127.0.0.1', port: httpsPort, path, method: options.method ?? 'GET', headers: options.headers ?? {}, ca: certificates.ca, agent: false },
        (response) => collect(response).then(resolve, reject),
      );
      request.on('error', reject);
      request.end(options.body);
    });
  }

  /** An HTTP/2 session to nginx from `localAddress` (each loopback address is a client of its own to the rate limit). */
  async function http2Session(localAddress = '127.0.0.1'): Promise<ClientHttp2Session> {
    const session = connectHttp2(origin, {
      createConnection: () =>
        connectTls({ socket: connectTcp({ host: '127.0.0.1', port: httpsPort, localAddress }), host: '127.0.0.1', ca: certificates.ca, ALPNProtocols: ['h2'] }),
    });
    await once(session, 'connect');
    return session;
  }

  function http2Get(
    session: ClientHttp2Session,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const stream = session.request({ ':path': path, ...headers });
      const chunks: Buffer[] = [];
      let responseHeaders: Record<string, unknown> = {};
      stream.on('response', (received) => {
        responseHeaders = received;
      });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('end', () => resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, body: Buffer.concat(chunks) }));
    });
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-nginx-'));
    // nginx's workers run as www-data, as on Debian; they must reach the socket's directory
    // (startNginx opens the directory to them).
    const wwwData = Number((await run('id', ['-g', 'www-data'])).stdout.trim());
    iso = await makeIso({ dir: work, label: 'PROXIED', dataMiB: 3, files: 2, seed: 5 });
    certificates = await makeCertificates(work);

    // As /run/disk2iso: the service's directory, open to its group, in which nginx's user is.
    const runDir = join(work, 'run');
    await mkdir(runDir, { mode: 0o750 });
    await chown(runDir, 0, wwwData);
    const socket = join(runDir, 'disk2iso.sock');
    service = await startTestServer({ devices: [iso.path], env: { DISK2ISO_SERVER_SOCKET: socket } });
    // The service creates its socket 0660 with its own group; here that group is nginx's.
    await chown(socket, 0, wwwData);

    [httpsPort = 0, httpPort = 0] = await freePorts(2);
    origin = `https://127.0.0.1:${httpsPort}`;
    const site = renderShipped(NGINX_SITE, await readFile(NGINX_SITE, 'utf8'), [
      ['listen 443 ssl http2;', `listen 127.0.0.1:${httpsPort} ssl http2;`, 1],
      ['listen [::]:443 ssl http2;', `listen [::1]:${httpsPort} ssl http2;`, 1],
      ['listen 80;', `listen 127.0.0.1:${httpPort};`, 1],
      ['listen [::]:80;', `listen [::1]:${httpPort};`, 1],
      ['/etc/ssl/certs/disk2iso.crt', certificates.cert, 2],
      ['/etc/ssl/private/disk2iso.key', certificates.key, 2],
      ['/run/disk2iso/disk2iso.sock', socket, 2],
    ]);
    await writeFile(join(work, 'disk2iso.conf'), site);
    nginx = await startNginx({
      dir: work,
      includes: [NGINX_HTTP_PART, join(work, 'disk2iso.conf')],
      isListening: () => acceptsTls(httpsPort, certificates.ca),
    });
  });

  after(async () => {
    await nginx?.stop();
    await service?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('passes nginx -t without a warning, with the http part included as documented', async () => {
    assert.ok(nginx);
    const checked = await run(nginx.command, ['-t', ...nginx.args, '-g', `pid ${join(work, 'nginx-t.pid')};`]);
    assert.match(checked.stderr, /syntax is ok/);
    assert.match(checked.stderr, /test is successful/);
    assert.doesNotMatch(checked.stderr, /\[(warn|emerg|alert|crit)\]/, checked.stderr);
  });

  it('sends plain HTTP to HTTPS, passing nothing on without TLS', async () => {
    const answer = await new Promise<Answer>((resolve, reject) => {
      const request = httpRequest({ host: '127.0.0.1', port: httpPort, path: '/api/v1/health?x=1', agent: false }, (response) =>
        collect(response).then(resolve, reject),
      );
      request.on('error', reject);
      request.end();
    });
    assert.equal(answer.status, 301);
    assert.equal(answer.headers.location, 'https://127.0.0.1/api/v1/health?x=1');
    assert.equal(answer.headers.server, 'nginx', 'no version number');
  });

  it('speaks TLS 1.3 and 1.2 with forward-secret AEAD suites only, and HTTP/2 by ALPN', async () => {
    const handshake = (options: { minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2'; maxVersion?: 'TLSv1.1' | 'TLSv1.2'; ciphers?: string }) =>
      new Promise<{ protocol: string | null; cipher: string }>((resolve, reject) => {
        const socket = connectTls({ host: '127.0.0.1', port: httpsPort, ca: certificates.ca, ...options }, () => {
          resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name });
          socket.destroy();
        });
        socket.on('error', reject);
      });
    assert.equal((await handshake({})).protocol, 'TLSv1.3');
    assert.deepEqual(await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }), {
      protocol: 'TLSv1.2',
      cipher: 'ECDHE-RSA-AES128-GCM-SHA256',
    });
    await assert.rejects(
      handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA:AES128-GCM-SHA256' }),
      { code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' },
      'CBC and static-RSA suites are refused',
    );
    await assert.rejects(
      handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
      { code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' },
      'TLS 1.1 is refused',
    );

    const session = await http2Session();
    try {
      assert.equal(session.alpnProtocol, 'h2');
      const health = await http2Get(session, '/api/v1/health');
      assert.equal(health.status, 200);
      assert.equal(health.headers['strict-transport-security'], HSTS);
    } finally {
      session.close();
    }
  });

  it('sends HSTS and the security headers once each, on the service’s answers and on nginx’s own', async () => {
    const page = await send('/login');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    for (const [name, value] of [
      ['strict-transport-security', HSTS],
      ['x-content-type-options', 'nosniff'],
      ['x-frame-options', 'SAMEORIGIN'],
      ['referrer-policy', 'same-origin'],
      ['content-security-policy', CONTENT_SECURITY_POLICY],
    ]) {
      assert.equal(headerCount(page, name as string), 1, `${name} once`);
      assert.equal(page.headers[name as string], value);
    }
    assert.equal(page.headers.server, 'nginx');

    // Announced, not sent: nginx answers from Content-Length alone, and a body still being written
    // while nginx closes the connection could leave the client waiting forever.
    const tooLarge = await send('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(200 * 1024) },
    });
    assert.equal(tooLarge.status, 413, 'nginx refuses a large body before it reaches the service');
    assert.match(String(tooLarge.headers['content-type']), /^text\/html/, "nginx's own page");
    assert.equal(tooLarge.headers['strict-transport-security'], HSTS);
    assert.equal(tooLarge.headers['x-frame-options'], 'SAMEORIGIN');
  });

  it('signs a browser in with a Secure cookie, by its real address, and passes its Origin checks', async () => {
    await service.server.auth.users.add({ name: 'erin', role: 'operator', password: TEST_PASSWORD }, localActor('test'));
    const login = await send('/api/v1/auth/login', {
      method: 'POST',
      // The client's own X-Forwarded-* headers must not get through nginx.
      headers: { 'content-type': 'application/json', origin, 'x-forwarded-for': '203.0.113.9', 'x-forwarded-host': 'forged.example' },
      body: JSON.stringify({ username: 'erin', password: TEST_PASSWORD }),
    });
    assert.equal(login.status, 200, login.body.toString());
    const setCookie = (login.headers['set-cookie'] ?? []).join('\n');
    assert.match(setCookie, /^disk2iso_session=[A-Za-z0-9_-]{43}; /);
    assert.match(setCookie, /; Secure/);
    assert.match(setCookie, /; HttpOnly/);
    assert.match(setCookie, /; SameSite=Lax/);
    const cookie = setCookie.split(';')[0] ?? '';
    const csrf = (JSON.parse(login.body.toString()) as { csrf_token: string }).csrf_token;
    const [entry] = (await service.server.auth.audit.list({ eventType: 'authentication', action: 'login_success', user: 'erin' })).items;
    assert.equal(entry?.ip_address, '127.0.0.1', 'the address nginx saw, not the one the client claimed');

    const upgrade = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const socket = new WebSocket(`wss://127.0.0.1:${httpsPort}/api/v1/ws/jobs`, { ca: certificates.ca, headers });
        socket.on('unexpected-response', (request, response) => {
          request.destroy();
          resolve(response.statusCode ?? 0);
        });
        socket.on('upgrade', () => {
          socket.close();
          resolve(101);
        });
        socket.on('error', reject);
      });
    assert.equal(await upgrade({ cookie, origin }), 101, 'the browser’s own origin, as nginx passes Host and the scheme on');
    assert.equal(await upgrade({ cookie, origin: 'https://elsewhere.example' }), 403);

    const logout = await send('/api/v1/auth/logout', { method: 'POST', headers: { cookie, origin, 'x-csrf-token': csrf } });
    assert.equal(logout.status, 204, logout.body.toString());
  });

  it('carries the event stream and the WebSocket while a job runs, each event as it happens', async () => {
    const key = { 'x-api-key': service.apiKey };
    let received = '';
    let streamEnded = false;
    const events = httpsRequest({ host: '127.0.0.1', port: httpsPort, path: '/api/v1/events', headers: key, ca: certificates.ca, agent: false });
    const stream = new Promise<IncomingMessage>((resolve, reject) => {
      events.on('response', resolve);
      events.on('error', reject);
    });
    events.end();
    const socket = new WebSocket(`wss://127.0.0.1:${httpsPort}/api/v1/ws/jobs`, { ca: certificates.ca, headers: key });
    // Listened for at once: the WebSocket may open before the event stream answers, and `once` hears no event of the past.
    const opened = once(socket, 'open');
    opened.catch(() => undefined);
    const messages: Array<{ type: string; job_id: string; data: Record<string, unknown> }> = [];
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    try {
      const response = await stream;
      assert.equal(response.statusCode, 200);
      assert.match(String(response.headers['content-type']), /^text\/event-stream/);
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        received += chunk;
      });
      response.on('end', () => {
        streamEnded = true;
      });
      await opened;
      await waitFor('the stream’s first line', () => received.includes(': connected'));

      const devices = JSON.parse((await send('/api/v1/devices', { headers: key })).body.toString()) as { devices: Array<{ id: string }> };
      const created = await send('/api/v1/jobs', {
        method: 'POST',
        headers: { ...key, 'content-type': 'application/json' },
        body: JSON.stringify({ device: devices.devices[0]?.id }),
      });
      assert.equal(created.status, 201, created.body.toString());
      const jobId = (JSON.parse(created.body.toString()) as { id: string }).id;

      await waitFor('the job’s creation on the open event stream', () => received.includes(`"job_id":"${jobId}"`));
      assert.equal(streamEnded, false, 'the event came while the stream stayed open, not when it ended');
      await waitFor('the job’s end on the WebSocket', () => messages.some((message) => message.type === 'job_finished' && message.job_id === jobId));
      const finished = messages.find((message) => message.type === 'job_finished' && message.job_id === jobId);
      assert.equal(finished?.data['status'], 'completed');
      archiveId = String(finished?.data['archive_id']);
      assert.match(archiveId, /^archive_/);
      // The event stream is a connection of its own: its copy of the end may come a moment after the WebSocket's.
      await waitFor('the job’s end on the event stream', () => new RegExp(`event: job_finished\\ndata: \\{[^\\n]*"job_id":"${jobId}"`).test(received));
      assert.equal(streamEnded, false, 'the stream is still open after the job’s end');
    } finally {
      socket.close();
      events.destroy();
    }
  });

  it('downloads the image whole and by Range, over HTTP/1.1 and HTTP/2', async () => {
    const source = await readFile(iso.path);
    const path = `/api/v1/archives/${archiveId}/download`;
    const key = { 'x-api-key': service.apiKey };
    const whole = await send(path, { headers: key });
    assert.equal(whole.status, 200);
    assert.equal(createHash('sha256').update(whole.body).digest('hex'), iso.sha256);
    assert.equal(whole.headers['accept-ranges'], 'bytes');

    const session = await http2Session();
    try {
      const start = 100_000;
      const end = iso.sizeBytes - 12_345;
      const part = await http2Get(session, path, { ...key, range: `bytes=${start}-${end}` });
      assert.equal(part.status, 206);
      assert.equal(part.headers['content-range'], `bytes ${start}-${end}/${iso.sizeBytes}`);
      assert.ok(part.body.equals(source.subarray(start, end + 1)), 'the range is those bytes of the image');
      const tail = await send(path, { headers: { ...key, range: 'bytes=-4096' } });
      assert.equal(tail.status, 206);
      assert.ok(tail.body.equals(source.subarray(source.length - 4096)));
    } finally {
      session.close();
    }
  });

  it('refuses a burst beyond 20 requests with 429 at once, and does not count static assets', async () => {
    const burst = async (localAddress: string, path: string) => {
      const session = await http2Session(localAddress);
      try {
        return await Promise.all(Array.from({ length: 100 }, () => http2Get(session, path)));
      } finally {
        session.close();
      }
    };
    const answers = await burst('127.0.0.2', '/api/v1/health');
    const statuses = answers.map((answer) => answer.status);
    assert.deepEqual([...new Set(statuses)].sort(), [200, 429], statuses.join(' '));
    assert.ok(statuses.filter((status) => status === 200).length >= 21, 'one plus a burst of 20 pass');
    const refused = answers.find((answer) => answer.status === 429);
    assert.match(String(refused?.headers['content-type']), /^text\/html/, "nginx's own answer, not the service's");
    assert.equal(refused?.headers['strict-transport-security'], HSTS);

    const assets = await burst('127.0.0.3', '/static/css/app.css');
    assert.deepEqual([...new Set(assets.map((answer) => answer.status))], [200]);
  });
});
