import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { packageRoot } from '../../src/config/load.js';
import { requireTool } from '../tools/iso.js';

/** The site's http-block part (deploy/nginx): the map that sends "Connection: upgrade" for WebSockets alone. */
export const NGINX_HTTP_PART = join(packageRoot(), 'deploy', 'nginx', 'disk2iso-http.conf');
const START_TIMEOUT_MS = 30_000;

/** Ports nothing listens on right now. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer();
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      return server;
    }),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export interface NginxProcess {
  /** The nginx binary. */
  readonly command: string;
  /** What points nginx at this instance's files (for `nginx -t` as well). */
  readonly args: readonly string[];
  /** Fast shutdown: open connections (event streams included) are closed, not waited for. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Debian's nginx (workers as www-data) with its files in `dir`: a main configuration like Debian's
 * /etc/nginx/nginx.conf in the parts that matter (its http-wide TLS settings included, which a site
 * must override), with `includes` in its http block. Resolves once `isListening` says so; rejects
 * with nginx's own complaint if it exits first (a taken port). It ends with the test process.
 * Its access log, `dir`/access.log, has a line per request when it ends: the time (Unix seconds),
 * the request line, the status and the upstream addresses tried.
 */
export async function startNginx(options: { dir: string; includes: readonly string[]; isListening: () => Promise<boolean> }): Promise<NginxProcess> {
  const command = await requireTool('nginx', 'nginx');
  const { dir } = options;
  // The workers run as www-data and keep their temporary files under the directory.
  await chmod(dir, 0o755);
  const temp = join(dir, 'nginx-temp');
  await mkdir(temp, { recursive: true });
  const main = `user www-data;
worker_processes 1;
events { worker_connections 512; }
http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    gzip on;
    # Which instance answered each request ($upstream_addr: every one tried, in order), when it ended.
    log_format disk2iso_test '$msec "$request" $status upstream=$upstream_addr';
    access_log ${join(dir, 'access.log')} disk2iso_test;
    client_body_temp_path ${join(temp, 'body')};
    proxy_temp_path ${join(temp, 'proxy')};
    fastcgi_temp_path ${join(temp, 'fastcgi')};
    uwsgi_temp_path ${join(temp, 'uwsgi')};
    scgi_temp_path ${join(temp, 'scgi')};
${options.includes.map((file) => `    include ${file};`).join('\n')}
}
`;
  await writeFile(join(dir, 'nginx.conf'), main);
  const errorLog = join(dir, 'error.log');
  const args = ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', errorLog];
  // setpriv execs nginx in place with a parent-death signal: a test process killed outright takes
  // the master with it, which ends its workers.
  const master = spawn('setpriv', ['--pdeathsig', 'TERM', '--', command, ...args, '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  master.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = once(master, 'exit');
  const running = () => master.exitCode === null && master.signalCode === null;
  const kill = () => {
    if (running()) master.kill('SIGTERM');
  };
  process.once('exit', kill);
  const stop = async () => {
    process.removeListener('exit', kill);
    kill();
    await exited;
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await options.isListening())) {
    if (!running() || Date.now() > deadline) {
      await stop();
      const log = await readFile(errorLog, 'utf8').catch(() => '');
      throw new Error(`nginx did not start: ${stderr}${log}`);
    }
    await sleep(50);
  }
  return { command, args, stop };
}

/** Whether a TCP server accepts connections at 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ host: '127.0.0.1', port }, () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });
}

export interface UpstreamProxy {
  readonly port: number;
  /** `http://127.0.0.1:PORT`, what clients of the cluster talk to. */
  readonly origin: string;
  /** Stops nginx and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** `host:port` of an IPv4 backend, the only form nginx is given (it ends up in its configuration). */
function checkBackend(backend: string): void {
  const [host, port, ...rest] = backend.split(':');
  const number = Number(port);
  if (isIP(host ?? '') !== 4 || rest.length > 0 || !/^\d{1,5}$/.test(port ?? '') || number < 1 || number > 65_535) {
    throw new Error(`startUpstreamProxy: backend ${backend} is not IPv4-address:port`);
  }
}

/**
 * nginx on a free port of 127.0.0.1 in front of several instances of the service over plain HTTP,
 * as a cluster's load balancer: pages, the API, the event stream and the WebSocket passed on
 * unbuffered, with the headers the tested site (deploy/nginx/disk2iso.conf) sends. A request that
 * finds its backend dead (refused, or no answer to the connect within 2 s) goes to the next one;
 * a failed backend is left out for a second, then tried again.
 */
export async function startUpstreamProxy(options: { backends: readonly string[] }): Promise<UpstreamProxy> {
  if (options.backends.length === 0) throw new Error('startUpstreamProxy: no backend');
  for (const backend of options.backends) checkBackend(backend);
  const dir = await mkdtemp(join(tmpdir(), 'disk2iso-nginx-upstream-'));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  // A test file that ends by an uncaught exception skips its after hooks; this still runs.
  process.once('exit', removeDir);
  const servers = options.backends.map((backend) => `    server ${backend} max_fails=1 fail_timeout=1s;`).join('\n');
  let lastError: unknown;
  // A port found free can be taken by someone else before nginx binds it: try again then.
  for (let attempt = 0; attempt < 5; attempt++) {
    const [port = 0] = await freePorts(1);
    const site = `upstream disk2iso_cluster {
${servers}
}
server {
    listen 127.0.0.1:${port};
    server_tokens off;
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host "";
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $disk2iso_connection;
    # Every answer as it is written: the event stream and downloads above all.
    proxy_buffering off;
    proxy_next_upstream error timeout;
    proxy_connect_timeout 2s;
    proxy_read_timeout 1h;
    proxy_send_timeout 1h;
    location / {
        proxy_pass http://disk2iso_cluster;
    }
}
`;
    try {
      await writeFile(join(dir, 'upstream.conf'), site);
      const nginx = await startNginx({ dir, includes: [NGINX_HTTP_PART, join(dir, 'upstream.conf')], isListening: () => accepts(port) });
      return {
        port,
        origin: `http://127.0.0.1:${port}`,
        async stop() {
          await nginx.stop();
          process.removeListener('exit', removeDir);
          removeDir();
        },
      };
    } catch (error) {
      lastError = error;
    }
  }
  process.removeListener('exit', removeDir);
  removeDir();
  throw lastError;
}
