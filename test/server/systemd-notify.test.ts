import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packageRoot } from '../../src/config/load.js';
import { testEnv, waitFor } from '../http/support.js';
import { attachTestDatabase, detachTestDatabase } from '../support/database.js';

/**
 * A stand-in for systemd's notification socket (Node cannot bind a unix datagram socket): prints
 * each datagram as a JSON string on a line, and closes the descriptors a BARRIER=1 brings, which is
 * how systemd tells systemd-notify that it has read everything sent before.
 */
const LISTENER = `
import json, os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
while True:
    data, fds, _flags, _address = socket.recv_fds(sock, 65536, 16)
    for fd in fds:
        os.close(fd)
    print(json.dumps(data.decode()), flush=True)
`;

interface Listener {
  process: ChildProcess;
  /** Each datagram, as its lines of KEY=VALUE. */
  messages: string[][];
}

async function listen(path: string): Promise<Listener> {
  const process = spawn('python3', ['-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[][] = [];
  let pending = '';
  process.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) messages.push(String(JSON.parse(line)).split('\n'));
  });
  await waitFor('the notification socket', () => messages.length > 0);
  messages.length = 0;
  return { process, messages };
}

describe('telling systemd: READY once listening, WATCHDOG while running, STOPPING on SIGTERM', () => {
  let work: string;
  let listener: Listener;
  let service: ChildProcess | null = null;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-notify-'));
    listener = await listen(join(work, 'notify.sock'));
    await attachTestDatabase(join(work, 'data'));
  });

  after(async () => {
    service?.kill('SIGKILL');
    listener.process.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
    await detachTestDatabase(join(work, 'data'));
  });

  it('sends READY=1 with the address it listens on, feeds the watchdog, and sends STOPPING=1 before it exits', async () => {
    const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'disk2iso'), 'serve', '--port', '0'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...testEnv(join(work, 'data'), []),
        NOTIFY_SOCKET: join(work, 'notify.sock'),
        // Pings every 100 ms, as systemd would ask with WatchdogSec=200ms.
        WATCHDOG_USEC: '200000',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    service = child;
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const sent = (key: string): number => listener.messages.findIndex((lines) => lines.includes(key));

    await waitFor('READY=1', () => sent('READY=1') >= 0, 600);
    const ready = listener.messages[sent('READY=1')] ?? [];
    const status = ready.find((line) => line.startsWith('STATUS='));
    // --port 0: the real port is known only once the service listens, so READY came after that.
    const url = /^STATUS=listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(status ?? '');
    assert.ok(url?.[1] && Number(url[2]) > 0, JSON.stringify(ready));
    const health = await fetch(`${url[1]}/api/v1/health`);
    assert.equal(health.status, 200);

    const watchdogsAfterReady = (): number => listener.messages.slice(sent('READY=1')).filter((lines) => lines.includes('WATCHDOG=1')).length;
    await waitFor('three watchdog pings', () => watchdogsAfterReady() >= 3);

    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    service = null;
    assert.ok(sent('STOPPING=1') > sent('READY=1'), JSON.stringify(listener.messages));
  });
});
