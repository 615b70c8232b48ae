import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startFixture } from '../db/fixture-process.js';
import { createNetworkHost } from './netns.js';
import { startPostgres } from './postgres.js';

const PG_CLIENT = fileURLToPath(new URL('./fixtures/pg-client.js', import.meta.url));

function namespaces(): string[] {
  return (JSON.parse(execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }) || '[]') as Array<{ name: string }>).map(({ name }) => name);
}

function links(): string[] {
  return (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string }>).map(({ ifname }) => ifname);
}

/** Gone, or dead and not yet reaped by whoever adopted it. */
function isGone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Sends a line to a process and reads the JSON line it answers with. */
function conversation(child: ChildProcess): (line: string) => Promise<Record<string, unknown>> {
  assert.ok(child.stdin !== null && child.stdout !== null);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const input = child.stdin;
  return async (line) => {
    if (line !== '') input.write(`${line}\n`);
    const next = await lines.next();
    assert.equal(next.done, false, 'the process ended before it answered');
    return JSON.parse(String(next.value)) as Record<string, unknown>;
  };
}

test('a process inside reaches PostgreSQL with its own address, loses it when cut, and connects again when restored', async () => {
  const host = createNetworkHost({ name: 'pg-client' });
  const server = await startPostgres({ listen: [{ address: host.rootAddress, clients: `${host.address}/32` }] });
  try {
    await server.createDatabase('through_the_link');
    const client = host.spawn(process.execPath, [PG_CLIENT, server.url('through_the_link', host.rootAddress)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const ask = conversation(client);
    assert.deepEqual(await ask(''), { ready: true });
    assert.deepEqual(await ask('open'), { address: host.address }, 'the server sees the host’s own address');
    assert.deepEqual(await ask('new'), { address: host.address });

    host.cut();
    assert.deepEqual(await ask('new'), { error: 'ENETUNREACH' }, 'a new connection fails at once');
    assert.deepEqual(await ask('open'), { error: 'Query read timeout' }, 'the open one hangs');
    assert.equal(client.exitCode, null, 'the process lives on');

    host.restore();
    assert.deepEqual(await ask('new'), { address: host.address });

    const exited = once(client, 'exit');
    await host.remove();
    await exited;
    assert.equal(namespaces().includes(host.name), false);
    assert.equal(links().includes(host.rootInterface), false);
  } finally {
    await host.remove();
    await server.stop();
  }
});

test('hosts created side by side each get a network of their own, and reach the root namespace again after a cut', async () => {
  const hosts = [createNetworkHost({ name: 'first' }), createNetworkHost({ name: 'second' })];
  const ports = new Map<string, number>();
  const servers = await Promise.all(
    hosts.map(async (host) => {
      const server = createServer((socket) => socket.end(`${socket.remoteAddress}\n`));
      server.listen(0, host.rootAddress);
      await once(server, 'listening');
      ports.set(host.rootAddress, (server.address() as AddressInfo).port);
      return server;
    }),
  );
  try {
    assert.equal(new Set(hosts.map((host) => host.network)).size, 2);
    assert.equal(new Set(hosts.map((host) => host.name)).size, 2);
    for (const host of hosts) {
      host.cut();
      host.restore();
      // Its own side of the link, and the other host's root side: an address of the root namespace beyond the /30.
      for (const [rootAddress, port] of ports) {
        const connect = `require('net').connect(${port}, '${rootAddress}').pipe(process.stdout)`;
        const child = host.spawn(process.execPath, ['-e', connect], { stdio: ['ignore', 'pipe', 'inherit'] });
        assert.equal(await output(child), `${host.address}\n`, `${host.name} to ${rootAddress}`);
      }
    }
  } finally {
    for (const server of servers) server.close();
    for (const host of hosts) await host.remove();
  }
  for (const host of hosts) assert.equal(namespaces().includes(host.name), false);
});

async function output(child: ChildProcess): Promise<string> {
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0);
  return text;
}

test('the root namespace reaches a server inside by the host’s address, and while cut sends nothing past the link', async () => {
  const host = createNetworkHost({ name: 'server' });
  try {
    const listen = `require('net').createServer((socket) => socket.end('inside')).listen(0, '${host.address}', function () { console.log(this.address().port); })`;
    const server = host.spawn(process.execPath, ['-e', listen], { stdio: ['ignore', 'pipe', 'inherit'] });
    assert.ok(server.stdout !== null);
    const [line] = await createInterface({ input: server.stdout })
      [Symbol.asyncIterator]()
      .next()
      .then((next) => [String(next.value)]);
    const socket = connect(Number(line), host.address);
    socket.setEncoding('utf8');
    const [answer] = (await once(socket, 'data')) as [string];
    assert.equal(answer, 'inside');

    host.cut();
    const [route] = JSON.parse(execFileSync('ip', ['-j', 'route', 'get', host.address], { encoding: 'utf8' })) as Array<{ dev: string }>;
    assert.equal(route?.dev, host.rootInterface, 'the link swallows it; the default route does not carry it off');
  } finally {
    await host.remove();
  }
});

test('a test process that dies of an uncaught exception leaves no namespace, link or process behind', async () => {
  const fixture = startFixture(new URL('./fixtures/network-host.js', import.meta.url), ['throw']);
  const left = JSON.parse(await fixture.nextLine()) as { name: string; rootInterface: string; sleeper: number };
  const { code, stderr } = await fixture.exited;
  assert.equal(code, 1);
  assert.match(stderr, /a test failed without cleaning up/);
  assert.equal(namespaces().includes(left.name), false);
  assert.equal(links().includes(left.rootInterface), false);
  assert.equal(isGone(left.sleeper), true);
});

test('what a test process killed outright leaves, the next host removes', async () => {
  const fixture = startFixture(new URL('./fixtures/network-host.js', import.meta.url), ['wait']);
  const left = JSON.parse(await fixture.nextLine()) as { name: string; rootInterface: string; sleeper: number };
  fixture.child.kill('SIGKILL');
  await fixture.exited;
  // The parent-death signal ends the process inside; the namespace and its link outlive it, until
  // a host is created here (or in a test file running alongside, which is why that is not asserted).
  while (!isGone(left.sleeper)) await sleep(20);

  const next = createNetworkHost({ name: 'next' });
  try {
    assert.equal(namespaces().includes(left.name), false);
    assert.equal(links().includes(left.rootInterface), false);
  } finally {
    await next.remove();
  }
});

test('a host name must be short and plain', () => {
  for (const name of ['', 'Upper', 'a b', '../x', 'x'.repeat(33)]) {
    assert.throws(() => createNetworkHost({ name }), /is not a short lower-case name/, name);
  }
});
