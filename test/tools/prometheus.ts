import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireTool } from './exec.js';

/** A port nothing listens on right now (the kernel's choice), for a program that cannot report the one it got. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface PrometheusTarget {
  /** `127.0.0.1:PORT` */
  address: string;
  /** Sent as `Authorization: Bearer KEY`; none when the target lets the scraper in by its address. */
  bearerKey?: string;
}

interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface RunningPrometheus {
  url: string;
  /** An instant query through the HTTP API. */
  query(expression: string): Promise<PromSample[]>;
  /** The scrape targets as Prometheus sees them (health, last error). */
  targets(): Promise<Array<{ health: string; lastError: string; scrapeUrl: string }>>;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Debian's Prometheus server, started in a scratch directory with one scrape job for `target`,
 * scraping every second. The real thing: its scraper parses our exposition, its HTTP API answers queries.
 */
export async function startPrometheus(target: PrometheusTarget): Promise<RunningPrometheus> {
  const binary = await requireTool('prometheus', 'prometheus');
  const dir = await mkdtemp(join(tmpdir(), 'disk2iso-prometheus-'));
  const keyFile = join(dir, 'key');
  const authorization = target.bearerKey === undefined ? '' : `    authorization:\n      type: Bearer\n      credentials_file: ${keyFile}\n`;
  if (target.bearerKey !== undefined) await writeFile(keyFile, target.bearerKey, { mode: 0o600 });
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    '  - job_name: disk2iso',
    '    metrics_path: /metrics',
    `${authorization}    static_configs:`,
    `      - targets: ['${target.address}']`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    binary,
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };

  try {
    for (let attempt = 0; ; attempt += 1) {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}:\n${output}`);
      const ready = await fetch(`${url}/-/ready`).then(
        (response) => response.ok,
        () => false,
      );
      if (ready) break;
      // A bound against a broken start, not a speed requirement.
      if (attempt > 600) throw new Error(`prometheus did not get ready:\n${output}`);
      await sleep(100);
    }
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    url,
    async query(expression) {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expression)}`);
      const body = (await response.json()) as { status: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (body.status !== 'success' || body.data === undefined) throw new Error(`query ${expression} failed: ${JSON.stringify(body)}`);
      return body.data.result.map((sample) => ({ metric: sample.metric, value: Number(sample.value[1]) }));
    },
    async targets() {
      const response = await fetch(`${url}/api/v1/targets`);
      const body = (await response.json()) as { data: { activeTargets: Array<{ health: string; lastError: string; scrapeUrl: string }> } };
      return body.data.activeTargets;
    },
    output: () => output,
    stop,
  };
}

/** `promtool check metrics` on an exposition: what it prints (nothing when clean) and its exit code. */
export async function promtoolCheck(exposition: string): Promise<{ code: number; problems: string }> {
  const promtool = await requireTool('promtool', 'prometheus');
  return new Promise((resolve, reject) => {
    const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let problems = '';
    child.stdout.on('data', (chunk: Buffer) => {
      problems += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      problems += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, problems }));
    child.stdin.end(exposition);
  });
}
