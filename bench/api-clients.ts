import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { type IncomingMessage, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';

/** Not a measurement: only keeps a process that never says it listens from hanging the run. */
const START_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 15_000;

export interface ServerProcess {
  pid: number;
  /** `http://HOST:PORT` as the process printed it. */
  url: string;
  /** SIGTERM, then SIGKILL if it has not exited in time; idempotent. */
  stop(): Promise<void>;
}

/**
 * Spawns a server process and waits for the line in which it names its address. Its remaining
 * output is read and dropped, so a chatty log never blocks it on a full pipe.
 */
export function startServerProcess(command: string, args: string[], env: NodeJS.ProcessEnv, listening: RegExp): Promise<ServerProcess> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-4096);
  });
  const stop = once(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_DEADLINE_MS);
    await exited;
    clearTimeout(timer);
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let found = false;
    const fail = (reason: string): void => {
      void stop().then(() => reject(new Error(`${command} ${args.join(' ')}: ${reason}\n${stderr}`)));
    };
    const deadline = setTimeout(() => fail('did not report its address in time'), START_DEADLINE_MS);
    const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null): void => fail(`exited early (${code ?? signal})`);
    child.once('exit', onEarlyExit);
    child.stdout?.setEncoding('utf8').on('data', (text: string) => {
      if (found) return;
      stdout += text;
      const match = listening.exec(stdout);
      if (match?.[1] === undefined || child.pid === undefined) return;
      found = true;
      clearTimeout(deadline);
      child.off('exit', onEarlyExit);
      resolve({ pid: child.pid, url: match[1], stop });
    });
  });
}

function once(work: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= work());
}

export interface Response {
  status: number;
  body: string;
}

export function httpRequest(url: string, options: { method?: string; json?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
  const payload = options.json === undefined ? undefined : JSON.stringify(options.json);
  const headers = options.headers ?? {};
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface LoadResult {
  requests: number;
  failures: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * autocannon, the load generator Fastify's own benchmarks use, keeps `connections` keep-alive
 * connections busy against `url`: first for `warmupMs` (discarded), then for `durationMs`. It writes
 * prebuilt requests to its sockets and costs far less CPU per request than Node's http client, and
 * on two cores every bit the generator uses is taken from the server it measures. Latency is from
 * writing a request to the end of its response, in whole milliseconds. `pathOf`, when given, names
 * the path of each request, numbered from 0.
 */
export async function loadTest(
  url: string,
  connections: number,
  warmupMs: number,
  durationMs: number,
  headers: Record<string, string> = {},
  pathOf?: (request: number) => string,
): Promise<LoadResult> {
  let sent = 0;
  const requests = pathOf === undefined ? [{}] : [{ setupRequest: (next: autocannon.Request) => ({ ...next, path: pathOf(sent++) }) }];
  const run = (milliseconds: number): Promise<autocannon.Result> => autocannon({ url, connections, duration: milliseconds / 1000, headers, requests });
  await run(warmupMs);
  const result = await run(durationMs);
  return {
    requests: result.requests.total - result.non2xx,
    failures: result.non2xx + result.errors,
    seconds: result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
  };
}

export interface SseEvent {
  event: string;
  data: string;
  /** performance.now() when the chunk holding the event's end arrived. */
  arrivedAt: number;
}

export interface SseClient {
  /** Resolves when the stream's first bytes (the server's `: connected` comment) have arrived. */
  ready: Promise<void>;
  close(): void;
}

/** Opens one Server-Sent Events stream on its own connection and hands every event to `onEvent`. */
export function openSse(url: string, onEvent: (event: SseEvent) => void, headers: Record<string, string> = {}): SseClient {
  let response: IncomingMessage | undefined;
  const req = request(url, { agent: false, headers: { ...headers, accept: 'text/event-stream' } });
  const ready = new Promise<void>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      response = res;
      if (res.statusCode !== 200) {
        reject(new Error(`GET ${url}: status ${res.statusCode}`));
        return;
      }
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        const arrivedAt = performance.now();
        resolve();
        buffered += text;
        let end = buffered.indexOf('\n\n');
        while (end >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          end = buffered.indexOf('\n\n');
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length > 0) onEvent({ event, data: data.join('\n'), arrivedAt });
        }
      });
    });
  });
  req.end();
  return {
    ready,
    close() {
      response?.destroy();
      req.destroy();
    },
  };
}

/** Resident set size of a process in bytes, from /proc/PID/status. */
export async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kib) * 1024;
}
