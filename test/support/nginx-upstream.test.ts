import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type IncomingMessage, request } from 'node:http';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { type FixtureProcess, startFixture } from '../db/fixture-process.js';
import { createNetworkHost } from './netns.js';
import { type UpstreamProxy, startUpstreamProxy } from './nginx-upstream.js';

const BACKEND = new URL('./fixtures/http-backend.js', import.meta.url);
let backends: FixtureProcess[] = [];
let proxy: UpstreamProxy;

before(async () => {
  backends = ['alpha', 'beta'].map((name) => startFixture(BACKEND, [name]));
  const ports = await Promise.all(backends.map((backend) => backend.nextLine()));
  proxy = await startUpstreamProxy({ backends: ports.map((port) => `127.0.0.1:${port}`) });
});

after(async () => {
  await proxy?.stop();
  for (const backend of backends) backend.child.kill('SIGKILL');
  await Promise.all(backends.map((backend) => backend.exited));
});

function send(method: string, path: string, origin = proxy.origin): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sent = request(`${origin}${path}`, { method, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    sent.on('error', reject);
    sent.end(method === 'POST' ? 'x' : undefined);
  });
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    if (check()) return;
    await sleep(20);
  }
  throw new Error(`gave up waiting for ${what}`);
}

test('nginx passes requests to each backend in turn', async () => {
  const answers = [];
  for (let index = 0; index < 4; index++) answers.push(await send('GET', '/who'));
  assert.deepEqual(
    answers.map((answer) => answer.status),
    [200, 200, 200, 200],
  );
  assert.deepEqual([...new Set(answers.map((answer) => answer.body))].sort(), ['alpha GET', 'beta GET']);
});

test('an event stream arrives through nginx event by event, while it stays open', async () => {
  const opened = request(`${proxy.origin}/events`, { agent: false });
  const responded = once(opened, 'response') as Promise<[IncomingMessage]>;
  opened.end();
  const [response] = await responded;
  try {
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], 'text/event-stream');
    let received = '';
    let ended = false;
    response.setEncoding('utf8').on('data', (chunk: string) => {
      received += chunk;
    });
    response.on('end', () => {
      ended = true;
    });
    await until('the stream’s first comment', () => /^: (alpha|beta)\n\n$/.test(received));
    for (const event of ['one', 'two', 'three']) {
      // Only the backend that holds the stream has a listener for it.
      for (const backend of backends) backend.child.stdin.write(`${event}\n`);
      await until(`event ${event}`, () => received.endsWith(`data: ${event}\n\n`));
      assert.equal(ended, false);
    }
  } finally {
    response.destroy();
  }
});

test('a WebSocket upgrades through nginx and carries messages both ways', async () => {
  const socket = new WebSocket(`ws://127.0.0.1:${proxy.port}/socket`);
  try {
    await once(socket, 'open');
    const answered = once(socket, 'message') as Promise<[Buffer]>;
    socket.send('hello');
    const [answer] = await answered;
    assert.match(String(answer), /^(alpha|beta): hello$/);
  } finally {
    socket.close();
  }
});

test('with one backend killed, every request, POST included, is answered by the other', async () => {
  const [alpha] = backends;
  alpha?.child.kill('SIGKILL');
  await alpha?.exited;
  const answers = [];
  for (let index = 0; index < 6; index++) answers.push(await send(index % 2 === 0 ? 'GET' : 'POST', '/who'));
  assert.deepEqual(
    answers.map((answer) => `${answer.status} ${answer.body}`),
    ['200 beta GET', '200 beta POST', '200 beta GET', '200 beta POST', '200 beta GET', '200 beta POST'],
  );
});

test('a backend whose host is cut off is skipped after the connect timeout, and used again once it is back', async () => {
  const host = createNetworkHost({ name: 'web' });
  const inside = host.spawn(process.execPath, [fileURLToPath(BACKEND), 'gamma', host.address], { stdio: ['pipe', 'pipe', 'inherit'] });
  const outside = startFixture(BACKEND, ['delta']);
  let cluster: UpstreamProxy | undefined;
  try {
    assert.ok(inside.stdout !== null);
    const [insidePort] = await createInterface({ input: inside.stdout })
      [Symbol.asyncIterator]()
      .next()
      .then((next) => [String(next.value)]);
    cluster = await startUpstreamProxy({ backends: [`${host.address}:${insidePort}`, `127.0.0.1:${await outside.nextLine()}`] });
    const { origin } = cluster;
    const bodies = async (count: number) => {
      const answers = [];
      for (let index = 0; index < count; index++) answers.push(await send('GET', '/who', origin));
      return answers.map((answer) => `${answer.status} ${answer.body}`);
    };
    assert.deepEqual([...new Set(await bodies(4))].sort(), ['200 delta GET', '200 gamma GET']);

    // Its packets are dropped, not refused: nginx learns of it only from the connect timeout.
    host.cut();
    assert.deepEqual(await bodies(4), ['200 delta GET', '200 delta GET', '200 delta GET', '200 delta GET']);

    host.restore();
    const seen = new Set<string>();
    while (!seen.has('200 gamma GET')) for (const body of await bodies(2)) seen.add(body);
  } finally {
    await cluster?.stop();
    await host.remove();
    outside.child.kill('SIGKILL');
    await outside.exited;
  }
});

test('a stopped proxy refuses connections', async () => {
  await proxy.stop();
  await assert.rejects(send('GET', '/who'), { code: 'ECONNREFUSED' });
  await proxy.stop();
});

test('a backend must be an IPv4 address and a port', async () => {
  for (const backend of ['localhost:80', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:80; server 10.0.0.1:80', '[::1]:80']) {
    await assert.rejects(startUpstreamProxy({ backends: [backend] }), /is not IPv4-address:port/, backend);
  }
  await assert.rejects(startUpstreamProxy({ backends: [] }), /no backend/);
});
