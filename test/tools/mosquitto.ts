import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type MqttClient, connectAsync } from 'mqtt';
import { requireTool, run } from './exec.js';

/** Not a test assertion: only keeps a broker that never comes up from hanging the run. */
const START_DEADLINE_MS = 15_000;

export interface Mosquitto {
  /** `mqtt://127.0.0.1:PORT` */
  url: string;
  port: number;
  output(): string;
  stop(): Promise<void>;
}

/** A port nobody listens on right now (the kernel's choice for port 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Debian's mosquitto on 127.0.0.1 and a free port, from a generated config in a temp dir: no
 * anonymous clients, the given users in a password file made by mosquitto_passwd, no persistence.
 */
export async function startMosquitto(users: Record<string, string>): Promise<Mosquitto> {
  const mosquitto = await requireTool('mosquitto', 'mosquitto');
  const mosquittoPasswd = await requireTool('mosquitto_passwd', 'mosquitto');
  const dir = await mkdtemp(join(tmpdir(), 'disk2iso-mosquitto-'));
  const passwordFile = join(dir, 'passwd');
  await writeFile(passwordFile, '', { mode: 0o600 });
  for (const [user, password] of Object.entries(users)) await run(mosquittoPasswd, ['-b', passwordFile, user, password]);
  const port = await freePort();
  const configFile = join(dir, 'mosquitto.conf');
  // `user root`: started as root, mosquitto would otherwise switch to the user mosquitto, who cannot read the temp dir.
  await writeFile(
    configFile,
    [`listener ${port} 127.0.0.1`, 'allow_anonymous false', `password_file ${passwordFile}`, 'persistence false', 'user root', 'log_dest stderr', ''].join(
      '\n',
    ),
  );
  const child: ChildProcess = spawn(mosquitto, ['-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const deadline = Date.now() + START_DEADLINE_MS;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`mosquitto did not start:\n${output}`);
    }
    await sleep(50);
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    output: () => output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface ReceivedMessage {
  topic: string;
  payload: string;
  retain: boolean;
}

export interface Observer {
  client: MqttClient;
  messages: ReceivedMessage[];
  /** The messages on one topic, in order. */
  on(topic: string): ReceivedMessage[];
  close(): Promise<void>;
}

/** A client that subscribes to `topics` and keeps every message it gets, as Home Assistant would see them. */
export async function observe(url: string, credentials: { username: string; password: string }, topics: string[]): Promise<Observer> {
  const client = await connectAsync(url, { ...credentials, reconnectPeriod: 0 });
  const messages: ReceivedMessage[] = [];
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString('utf8'), retain: packet.retain }));
  await client.subscribeAsync(topics, { qos: 1 });
  return {
    client,
    messages,
    on: (topic) => messages.filter((message) => message.topic === topic),
    close: () => client.endAsync(),
  };
}
